using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.Text;
using Sd.Loaders.Layout;

namespace Sd.Engine.Tests;

/// <summary>
/// The built-in demo model end to end. It needs nothing outside the repository, so these always run: its images are
/// noise, but they must be finite, of the requested size, and the same for a seed on every load.
/// </summary>
public sealed class DemoPipelineTests
{
    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a castle on a hill", Steps = 3, Width = 96, Height = 64, Scheduler = "euler-a", Seed = 42,
    };

    private static byte[] Rgb(GenerateResult result) => ImageConversion.ToRgb8(result.Image, 0).Pixels;

    [Fact]
    public void The_demo_makes_a_finite_image_of_the_requested_size()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        using GenerateResult result = pipeline.Generate(Request);

        Assert.Equal([1, 64, 96, 3], result.Image.Shape.ToArray());
        Assert.Equal([1, 8, 12, 4], result.Latents.Shape.ToArray());
        foreach (float v in result.Image.Span)
        {
            Assert.True(float.IsFinite(v));
        }
        byte[] pixels = Rgb(result);
        Assert.True(pixels.Distinct().Count() > 16, "the noise should not be one flat colour");
    }

    [Fact]
    public void A_seed_gives_the_same_bytes_on_every_load_and_another_seed_does_not()
    {
        using var first = StableDiffusionPipeline.LoadDemo();
        using var second = StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions { Memory = PipelineMemory.Sequential });
        using GenerateResult a = first.Generate(Request);
        using GenerateResult b = second.Generate(Request);
        // Sequential mode reloads the components from the in-memory weights: they must survive the first load.
        using GenerateResult again = second.Generate(Request);
        using GenerateResult other = first.Generate(Request with { Seed = 43 });

        Assert.True(a.Latents.Span.SequenceEqual(b.Latents.Span));
        Assert.Equal(Rgb(a), Rgb(b));
        Assert.Equal(Rgb(a), Rgb(again));
        Assert.NotEqual(Rgb(a), Rgb(other));
    }

    [Fact]
    public void The_demo_text_encoder_config_matches_the_byte_level_tokenizer()
    {
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        Sd.Loaders.Config.ClipTextConfig config = DemoModel.TextEncoder;
        Assert.Equal(config.BosTokenId, tokenizer.BosTokenId);
        Assert.Equal(config.EosTokenId, tokenizer.EosTokenId);
        Assert.Equal(config.PadTokenId, tokenizer.PadTokenId);
        Assert.Equal(config.MaxPositionEmbeddings, tokenizer.MaxLength);
        Assert.Equal("<|endoftext|>", tokenizer.Decode([config.VocabSize - 1]));
        Assert.Throws<ArgumentException>(() => tokenizer.Decode([config.VocabSize]));
    }
}
