using Sd.Cli.Commands;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;
using Sd.Loaders.Weights;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd generate --lora FILE[:SCALE]</c>, repeatable, on the built-in demo model: the LoRAs change the picture and
/// are recorded in its parameters; a bad scale is a usage error and a LoRA for another model is refused by name.
/// </summary>
public sealed class GenerateLoraTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string[] Common = ["--prompt", "a boat", "--steps", "2", "--width", "64", "--height", "64", "--seed", "3"];

    [Fact]
    public void Stacked_loras_change_the_picture_and_are_recorded()
    {
        string style = Lora("style.safetensors", ModelComponent.Unet, "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k.weight");
        string words = Lora("words.safetensors", ModelComponent.TextEncoder, "text_model.encoder.layers.1.self_attn.v_proj.weight");
        string plain = _dir.File("plain.png"), changed = _dir.File("lora.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--out", plain], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--lora", style + ":0.5", "--lora", words, "--out", changed], TextWriter.Null));

        PngImage without = PngFile.Read(plain), with = PngFile.Read(changed);
        Assert.False(without.Pixels.AsSpan().SequenceEqual(with.Pixels), "the LoRAs changed the picture");
        Assert.EndsWith("Model: built-in demo (random weights), Lora: \"style: 0.5, words: 1\"", with.Text["parameters"]);
        Assert.DoesNotContain("Lora", without.Text["parameters"]);
    }

    [Fact]
    public void A_bad_scale_or_a_lora_for_another_model_is_refused()
    {
        string lora = Lora("lora.safetensors", ModelComponent.Unet, "down_blocks.2.attentions.0.proj_in.weight");
        var usage = Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common, "--lora", lora + ":1e99", "--out", _dir.File("a.png")], TextWriter.Null));
        Assert.Contains("--lora " + lora + ":1e99: the scale must be a finite number", usage.Message);

        var writer = new LoraWriter();
        writer.Add(ModelComponent.TextEncoder, "text_model.encoder.layers.0.mlp.fc2.weight", [768, 3072], rank: 4, alpha: null, seed: 1);
        string sd15 = writer.Save(_dir.File("sd15.safetensors"));
        var e = Assert.Throws<InvalidFileException>(() => GenerateCommand.Run([.. Common, "--lora", sd15, "--out", _dir.File("b.png")], TextWriter.Null));
        Assert.Contains("does not fit 'text_model.encoder.layers.0.mlp.fc2.weight' of shape [64, 128]", e.Message);
        Assert.False(File.Exists(_dir.File("b.png")));
    }

    [Fact]
    public void A_file_named_like_a_scale_is_taken_whole_and_quotes_stay_inside_the_parameter()
    {
        string odd = Lora("say \"hi\".safetensors:0.5", ModelComponent.Unet, "conv_in.weight");
        string png = _dir.File("odd.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--lora", odd, "--out", png], TextWriter.Null));
        // Scale 1, the whole name without its last extension (".5"), its quotes escaped.
        Assert.EndsWith("Lora: \"say \\\"hi\\\".safetensors:0: 1\"", PngFile.Read(png).Text["parameters"]);
        Assert.Contains("--lora missing.safetensors:0.5: no such file, and 'missing.safetensors' is none to take a scale after ':' either",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common, "--lora", "missing.safetensors:0.5", "--out", png], TextWriter.Null)).Message);
        Assert.Contains("--lora needs a file", Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common, "--lora", "", "--out", png], TextWriter.Null)).Message);
    }

    /// <summary>A rank-4 kohya LoRA changing one weight of the demo model.</summary>
    private string Lora(string name, ModelComponent component, string weight)
    {
        using ModelSource demo = ModelSource.Demo();
        Assert.True(demo.Weights(component).TryGet(weight, out TensorEntry entry), weight);
        var writer = new LoraWriter();
        writer.Add(component, weight, entry.Shape, rank: 4, alpha: null, seed: 7);
        return writer.Save(_dir.File(name));
    }
}
