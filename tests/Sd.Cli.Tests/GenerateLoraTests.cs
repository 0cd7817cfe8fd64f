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

    [Fact]
    public void Prompt_tags_merge_the_loras_of_the_lora_dir_as_lora_flags_do()
    {
        string folder = _dir.File("loras");
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        Directory.CreateDirectory(Path.Combine(folder, ".hidden"));
        string style = Lora(Path.Combine("loras", "sub", "style.safetensors"), ModelComponent.Unet, "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k.weight");
        // A hidden folder and the extension in another case are found, as A1111 finds them.
        Lora(Path.Combine("loras", ".hidden", "words.SafeTensors"), ModelComponent.TextEncoder, "text_model.encoder.layers.1.self_attn.v_proj.weight");
        string flagged = _dir.File("flag.png"), tagged = _dir.File("tag.png"), split = _dir.File("split.png"), plain = _dir.File("plain.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--lora", style + ":0.5", "--out", flagged], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common[2..], "--prompt", "a boat<lora:style:0.5>", "--lora-dir", folder, "--out", tagged], TextWriter.Null));
        Assert.Equal(PngFile.Read(flagged).Pixels, PngFile.Read(tagged).Pixels);
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--out", plain], TextWriter.Null));
        Assert.NotEqual(PngFile.Read(plain).Pixels, PngFile.Read(flagged).Pixels); // the LoRA shows, so the tag was applied
        Assert.StartsWith("a boat<lora:style:0.5>\nNegative prompt:", PngFile.Read(tagged).Text["parameters"]); // the prompt as given
        Assert.DoesNotContain("Lora:", PngFile.Read(tagged).Text["parameters"]);

        // A multiplier of 0 for the one model a LoRA changes leaves the picture as without it.
        Assert.Equal(0, GenerateCommand.Run([.. Common[2..], "--prompt", "a boat<lora:style:1:0><lora:words:te=0:unet=1>", "--lora-dir", folder, "--out", split], TextWriter.Null));
        Assert.Equal(PngFile.Read(plain).Pixels, PngFile.Read(split).Pixels);
        Assert.Equal(0, GenerateCommand.Run([.. Common[2..], "--prompt", "a boat<lora:words:1:0>", "--lora-dir", folder, "--out", split], TextWriter.Null));
        Assert.NotEqual(PngFile.Read(plain).Pixels, PngFile.Read(split).Pixels);

        // Without --lora-dir the tag is taken out and not applied.
        Assert.Equal(0, GenerateCommand.Run([.. Common[2..], "--prompt", "a boat<lora:style:0.5>", "--out", tagged], TextWriter.Null));
        Assert.Equal(PngFile.Read(plain).Pixels, PngFile.Read(tagged).Pixels);

        // A file renamed after training is found by the name it was trained under (kohya's ss_output_name), as in A1111.
        var renamed = new LoraWriter();
        using (ModelSource demo = ModelSource.Demo())
        {
            Assert.True(demo.Weights(ModelComponent.Unet).TryGet("down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k.weight", out TensorEntry entry));
            renamed.Add(ModelComponent.Unet, "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k.weight", entry.Shape, rank: 4, alpha: null, seed: 7);
        }
        renamed.AddMetadata("ss_output_name", "trained-style");
        renamed.Save(Path.Combine(folder, "style-v2-final.safetensors"));
        File.WriteAllText(Path.Combine(folder, "broken.safetensors"), "not a safetensors file");
        Assert.Equal(0, GenerateCommand.Run([.. Common[2..], "--prompt", "a boat<lora:trained-style:0.5>", "--lora-dir", folder, "--out", tagged], TextWriter.Null));
        Assert.Equal(PngFile.Read(flagged).Pixels, PngFile.Read(tagged).Pixels);

        Assert.Contains("<lora:absent:1>: no absent.safetensors in --lora-dir", Assert.Throws<UsageException>(() => GenerateCommand.Run(
            [.. Common[2..], "--prompt", "a boat<lora:absent:1>", "--lora-dir", folder, "--out", tagged], TextWriter.Null)).Message);
        // A tag in an A1111 comment is none: nothing is looked for, the picture is the one without it.
        Assert.Equal(0, GenerateCommand.Run([.. Common[2..], "--prompt", "a boat# <lora:absent:1> <lora:style:1>", "--lora-dir", folder, "--out", tagged], TextWriter.Null));
        Assert.Equal(PngFile.Read(plain).Pixels, PngFile.Read(tagged).Pixels);
        Assert.Contains("names '../style', which is not a file name", Assert.Throws<UsageException>(() => GenerateCommand.Run(
            [.. Common[2..], "--prompt", "a boat<lora:../style:1>", "--lora-dir", folder, "--out", tagged], TextWriter.Null)).Message);
        Assert.Contains("--lora-dir reads the prompt's <lora:...> tags, which --prompt-syntax plain keeps as text", Assert.Throws<UsageException>(() =>
            GenerateCommand.Run([.. Common, "--prompt-syntax", "plain", "--lora-dir", folder, "--out", tagged], TextWriter.Null)).Message);
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
