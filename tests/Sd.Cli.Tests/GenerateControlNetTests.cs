using Sd.Cli.Commands;
using Sd.Loaders.Png;
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

    private string ControlNetFolder() => TinyControlNet.Write(_dir.File("tiny-controlnet"));

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

    /// <summary>
    /// Two ControlNets, the second a weights file alone (its config inferred from the shapes): their residuals add up,
    /// so with the second at scale 0 the picture is the first's alone, and each is recorded.
    /// </summary>
    [FixtureFact]
    public void Several_controlnets_add_up_and_are_each_recorded()
    {
        string folder = ControlNetFolder();
        string alone = _dir.File("alone");
        Directory.CreateDirectory(alone);
        string file = Path.Combine(alone, "tiny-cn.safetensors");
        File.Copy(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), file);
        string edges = Picture("edges.png", 1), depth = Picture("depth.png", 2);
        string first = _dir.File("first.png"), both = _dir.File("both.png"), second = _dir.File("second.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--controlnet", folder, "--control-image", edges, "--control-scale", "0.7", "--out", first], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--controlnet", folder, "--control-image", edges, "--controlnet", file, "--control-image", depth,
            "--control-scale", "0.7", "--control-scale", "0", "--control-end", "0.5", "--control-end", "1", "--out", both], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--controlnet", folder, "--control-image", edges, "--controlnet", file, "--control-image", depth,
            "--control-scale", "0.7", "--out", second], TextWriter.Null));

        PngImage a = PngFile.Read(first), b = PngFile.Read(both), c = PngFile.Read(second);
        Assert.False(a.Pixels.AsSpan().SequenceEqual(b.Pixels), "--control-end 0.5 for the first ControlNet changed nothing");
        Assert.False(a.Pixels.AsSpan().SequenceEqual(c.Pixels), "the second ControlNet changed nothing");
        Assert.EndsWith("ControlNet 0: \"Module: none, Model: tiny-controlnet, Weight: 0.7, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 0.5\", " +
            "ControlNet 1: \"Module: none, Model: tiny-cn, Weight: 0, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1\"", b.Text["parameters"]);

        // The second at scale 0 adds exact zeros: the run is the first's with the same window.
        string windowed = _dir.File("windowed.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--controlnet", folder, "--control-image", edges, "--control-scale", "0.7", "--control-end", "0.5",
            "--out", windowed], TextWriter.Null));
        Assert.True(PngFile.Read(windowed).Pixels.AsSpan().SequenceEqual(b.Pixels), "a second ControlNet at scale 0 changed the picture");
    }

    /// <summary>--control-mode: A1111's Control Mode, per unit, recorded as A1111 names it; not with --guess-mode.</summary>
    [FixtureFact]
    public void Control_modes_change_the_picture_and_are_recorded()
    {
        string folder = ControlNetFolder(), edges = Picture("edges.png", 1);
        string balanced = _dir.File("balanced.png"), prompt = _dir.File("prompt.png"), control = _dir.File("control.png");
        string[] unit = [.. Common(), "--controlnet", folder, "--control-image", edges];
        Assert.Equal(0, GenerateCommand.Run([.. unit, "--control-mode", "balanced", "--out", balanced], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. unit, "--control-mode", "prompt", "--out", prompt], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. unit, "--control-mode", "controlnet", "--control-resize-mode", "crop", "--out", control], TextWriter.Null));
        PngImage a = PngFile.Read(balanced), b = PngFile.Read(prompt), c = PngFile.Read(control);
        Assert.False(a.Pixels.AsSpan().SequenceEqual(b.Pixels), "\"My prompt is more important\" changed nothing");
        Assert.False(b.Pixels.AsSpan().SequenceEqual(c.Pixels), "\"ControlNet is more important\" is the prompt's mode");
        Assert.EndsWith("Guidance Start: 0, Guidance End: 1\"", a.Text["parameters"]);
        Assert.EndsWith("Guidance End: 1, Control Mode: My prompt is more important\"", b.Text["parameters"]);
        Assert.EndsWith("Resize Mode: Crop and Resize, Guidance Start: 0, Guidance End: 1, Control Mode: ControlNet is more important\"", c.Text["parameters"]);

        string png = _dir.File("x.png");
        Assert.Contains("--guess-mode (diffusers') and --control-mode (A1111's) each weight the residuals their own way",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. unit, "--control-mode", "prompt", "--guess-mode", "--out", png], TextWriter.Null)).Message);
        Assert.Contains("generate: --control-resize-mode expects just, crop or fill, got 'stretch'",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. unit, "--control-resize-mode", "stretch", "--out", png], TextWriter.Null)).Message);
        Assert.Contains("generate: --control-mode is balanced, prompt, controlnet, got 'Balanced'",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. unit, "--control-mode", "Balanced", "--out", png], TextWriter.Null)).Message);
        Assert.False(File.Exists(png));
    }

    /// <summary>
    /// One ControlNet given twice with two pictures shares its loaded model (the conditioning embedding is made again
    /// when the picture changes): the run is bit for bit the one with a copy of the folder as the second.
    /// </summary>
    [FixtureFact]
    public void A_controlnet_given_twice_gives_the_run_of_two_copies()
    {
        string folder = ControlNetFolder(), copy = _dir.File("copy");
        Directory.CreateDirectory(copy);
        foreach (string file in Directory.GetFiles(folder)) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        string edges = Picture("edges.png", 1), depth = Picture("depth.png", 2);
        string shared = _dir.File("shared.png"), separate = _dir.File("separate.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--controlnet", folder, "--control-image", edges, "--controlnet", folder, "--control-image", depth,
            "--control-scale", "0.6", "--out", shared], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--controlnet", folder, "--control-image", edges, "--controlnet", copy, "--control-image", depth,
            "--control-scale", "0.6", "--out", separate], TextWriter.Null));
        Assert.True(PngFile.Read(shared).Pixels.AsSpan().SequenceEqual(PngFile.Read(separate).Pixels), "the shared model steers otherwise than two");
    }

    private string Picture(string name, int seed)
    {
        string path = _dir.File(name);
        var pixels = new byte[20 * 10 * 3];
        new Random(seed).NextBytes(pixels);
        PngFile.Write(path, new PngImage(20, 10, 3, pixels));
        return path;
    }

    [FixtureFact]
    public void ControlNet_flags_go_together()
    {
        string png = _dir.File("x.png");
        Assert.Contains("--control-image goes with --controlnet",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--control-image", png, "--out", png], TextWriter.Null)).Message);
        Assert.Contains("--guess-mode goes with --controlnet",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--guess-mode", "--out", png], TextWriter.Null)).Message);
        string folder = ControlNetFolder(), edges = Picture("edges.png", 1);
        Assert.Contains("1 --controlnet need as many --control-image (one each, in order), got 0",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--controlnet", folder, "--out", png], TextWriter.Null)).Message);
        Assert.Contains("2 --controlnet need as many --control-image (one each, in order), got 1",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--controlnet", folder, "--controlnet", folder, "--control-image", edges,
                "--out", png], TextWriter.Null)).Message);
        Assert.Contains("--control-start is given 3 times; give it once (for every ControlNet) or once per --controlnet (2)",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--controlnet", folder, "--control-image", edges, "--controlnet", folder,
                "--control-image", edges, "--control-start", "0", "--control-start", "0.1", "--control-start", "0.2", "--out", png], TextWriter.Null)).Message);
        Assert.Contains("--control-scale expects a number, got 'x'",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common(), "--controlnet", folder, "--control-image", edges, "--control-scale", "x",
                "--out", png], TextWriter.Null)).Message);
        Assert.False(File.Exists(png));
    }
}
