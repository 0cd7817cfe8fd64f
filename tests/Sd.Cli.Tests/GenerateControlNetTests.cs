using Sd.Cli.Commands;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Png;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd generate --controlnet</c> on the tiny fixture model with a random ControlNet of its shape (the numerics are
/// the engine tests'): it steers the picture, is recorded, does nothing at scale 0, and its flags go together.
/// </summary>
public sealed class GenerateControlNetTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string[] Common() =>
        ["--model", Fixtures.Path("tiny/model"), "--prompt", "a cat", "--steps", "2", "--width", "32", "--height", "24", "--seed", "7"];

    /// <summary>A diffusers ControlNet folder for the tiny model (stages 8, 16: pictures twice the latents, as its VAE).</summary>
    private string ControlNetFolder()
    {
        string folder = _dir.File("tiny-controlnet");
        Directory.CreateDirectory(folder);
        string json = """
            {"_class_name": "ControlNetModel", "conditioning_embedding_out_channels": [8, 16], "attention_head_dim": 8,
             "block_out_channels": [32, 64], "cross_attention_dim": 32, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
             "layers_per_block": 2}
            """;
        File.WriteAllText(Path.Combine(folder, "config.json"), json);
        ControlNetConfig config = ControlNetConfig.Load(Path.Combine(folder, "config.json"));
        RandomModelWriter.Weights(DiffusersLayout.ControlNet(config), TensorDType.F32, 3).Save(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        return folder;
    }

    [FixtureFact]
    public void A_controlnet_steers_the_picture_and_is_recorded()
    {
        string controlNet = ControlNetFolder();
        string edges = _dir.File("edges.png");
        var pixels = new byte[20 * 10 * 3];
        new Random(1).NextBytes(pixels);
        PngFile.Write(edges, new PngImage(20, 10, 3, pixels));
        string plain = _dir.File("plain.png"), steered = _dir.File("steered.png"), off = _dir.File("off.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--out", plain], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--controlnet", controlNet, "--control-image", edges, "--control-scale", "0.8",
            "--control-end", "0.5", "--guess-mode", "--out", steered], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--controlnet", controlNet, "--control-image", edges, "--control-scale", "0", "--out", off], TextWriter.Null));

        PngImage a = PngFile.Read(plain), b = PngFile.Read(steered), c = PngFile.Read(off);
        Assert.False(a.Pixels.AsSpan().SequenceEqual(b.Pixels), "the ControlNet changed nothing");
        Assert.True(a.Pixels.AsSpan().SequenceEqual(c.Pixels), "a ControlNet at scale 0 changed the picture");
        Assert.EndsWith("Model: model, ControlNet 0: \"Module: none, Model: tiny-controlnet, Weight: 0.8, Resize Mode: Just Resize, " +
            "Guidance Start: 0, Guidance End: 0.5, Guess Mode: True\"", b.Text["parameters"]);
    }

    [FixtureFact]
    public void ControlNet_flags_go_together()
    {
        string png = _dir.File("x.png");
        Assert.Contains("--control-image goes with --controlnet",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--control-image", png, "--out", png], TextWriter.Null)).Message);
        Assert.Contains("--guess-mode goes with --controlnet",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--guess-mode", "--out", png], TextWriter.Null)).Message);
        Assert.Contains("--control-image is required",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--controlnet", ControlNetFolder(), "--out", png], TextWriter.Null)).Message);
        Assert.False(File.Exists(png));
    }
}
