using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Layout;

namespace Sd.Engine.Tests;

/// <summary>
/// Weighted and long prompts through the text encoder, the UNet and the pipeline, on the built-in demo model. The
/// oracles: AUTOMATIC1111's emphasis formula written out here; a prompt without syntax must give bit for bit what the
/// plain syntax gives; an image attending to a prefix of its context row must predict bit for bit what it predicts
/// alone with that shorter context.
/// </summary>
public sealed class WeightedPromptTests : IDisposable
{
    private readonly ModelSource _demo = ModelSource.Demo();

    public void Dispose() => _demo.Dispose();

    [Fact]
    public void Emphasis_multiplies_each_token_row_then_restores_the_chunks_mean()
    {
        float[] states = [1f, 2f, 3f, 4f, -1f, 0.5f];
        float[] weights = [1f, 2f, 0.5f];
        float before = (float)((1.0 + 2 + 3 + 4 - 1 + 0.5) / 6);
        float[] weighted = [1f, 2f, 6f, 8f, -0.5f, 0.25f];
        float ratio = before / (float)((1.0 + 2 + 6 + 8 - 0.5 + 0.25) / 6);
        PromptEmphasis.Apply(states, weights, 2);
        Assert.Equal(weighted.Select(v => v * ratio), states);

        Assert.Contains("their mean goes from 0 to 0",
            Assert.Throws<ArgumentException>(() => PromptEmphasis.Apply(new float[] { 1f, -1f, 2f, -2f }, [1f, 0.5f], 2)).Message);
    }

    [Fact]
    public void Encoded_prompts_are_their_chunks_encoded_alone_and_weighted_joined_and_zero_padded()
    {
        using var encoder = new ClipTextModel(DemoModel.TextEncoder, _demo.Weights(ModelComponent.TextEncoder));
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        int width = DemoModel.TextEncoder.HiddenSize;
        TokenizedPrompt shortPrompt = tokenizer.Tokenize("a (red:1.3) cat", PromptSyntax.Weighted);
        TokenizedPrompt longPrompt = tokenizer.Tokenize(new string('x', 100), PromptSyntax.Weighted);
        Assert.Equal(2, longPrompt.Chunks.Count);

        using ClipTextOutput both = encoder.EncodePrompts([shortPrompt, longPrompt]);
        Assert.Equal([2, 154, width], both.Hidden.Shape.ToArray());
        Assert.Equal([77, 154], both.Lengths.ToArray());
        ReadOnlySpan<float> hidden = both.Hidden.Span;
        Assert.True(hidden.Slice(77 * width, 77 * width).IndexOfAnyExcept(0f) < 0, "the short prompt's second chunk is zero");

        // The weighted chunk: the plain encoding of its ids, then A1111's formula.
        using ClipTextOutput plain = encoder.Encode(shortPrompt.Chunks[0].Ids, 1);
        float[] expected = plain.Hidden.Span.ToArray();
        float[] weights = shortPrompt.Chunks[0].Weights;
        float before = (float)expected.Select(v => (double)v).Average();
        for (int i = 0; i < expected.Length; i++) expected[i] *= weights[i / width];
        float ratio = before / (float)expected.Select(v => (double)v).Average();
        Assert.Equal(expected.Select(v => v * ratio), hidden[..(77 * width)].ToArray());
        Assert.True(plain.Pooled.Span.SequenceEqual(both.Pooled.Span[..width]), "the pooled output is not weighted");

        for (int c = 0; c < 2; c++)
        {
            using ClipTextOutput alone = encoder.Encode(longPrompt.Chunks[c].Ids, 1);
            Assert.True(alone.Hidden.Span.SequenceEqual(hidden.Slice((154 + 77 * c) * width, 77 * width)), $"chunk {c}");
        }
    }

    /// <param name="repeatedHalves">Both images share one sample, as classifier-free guidance's do (the layers before
    /// the first cross-attention then run once for both).</param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_image_attending_to_a_prefix_of_its_context_predicts_what_it_does_alone_with_that_context(bool repeatedHalves)
    {
        using var unet = new UNet2DConditionModel(_demo.UNet!, _demo.Weights(ModelComponent.Unet));
        int dim = unet.Config.CrossAttentionDim[0];
        var random = new Random(7);
        using Tensor sample = Tensor.Allocate([2, 8, 8, 4]);
        using Tensor context = Tensor.Allocate([2, 12, dim]);
        UNetTests.Fill(sample.Span, random);
        if (repeatedHalves)
        {
            sample.Span[..256].CopyTo(sample.Span[256..]);
        }
        UNetTests.Fill(context.Span, random);
        float[] timestep = [501f];

        using Tensor both = Tensor.Allocate([2, 8, 8, 4]);
        unet.Forward(sample, timestep, context, [5, 12], both, []);
        for (int image = 0; image < 2; image++)
        {
            int tokens = image == 0 ? 5 : 12;
            using Tensor one = Tensor.Allocate([1, 8, 8, 4]);
            using Tensor itsContext = Tensor.Allocate([1, tokens, dim]);
            sample.Span.Slice(image * 256, 256).CopyTo(one.Span);
            context.Span.Slice(image * 12 * dim, tokens * dim).CopyTo(itsContext.Span);
            using Tensor alone = Tensor.Allocate([1, 8, 8, 4]);
            unet.Forward(one, timestep, itsContext, alone);
            Assert.True(alone.Span.SequenceEqual(both.Span.Slice(image * 256, 256)), $"image {image}");
        }

        // The padding is never read; full lengths are no lengths.
        UNetTests.Fill(context.Span.Slice(5 * dim, 7 * dim), random);
        using Tensor padded = Tensor.Allocate([2, 8, 8, 4]);
        unet.Forward(sample, timestep, context, [5, 12], padded, []);
        Assert.True(padded.Span.SequenceEqual(both.Span));
        using Tensor full = Tensor.Allocate([2, 8, 8, 4]);
        using Tensor unmasked = Tensor.Allocate([2, 8, 8, 4]);
        unet.Forward(sample, timestep, context, [12, 12], full, []);
        unet.Forward(sample, timestep, context, unmasked);
        Assert.True(full.Span.SequenceEqual(unmasked.Span));
        Assert.False(full.Span.SequenceEqual(padded.Span));

        Assert.Contains("context lengths must be one per image (2), got 1",
            Assert.Throws<ArgumentException>(() => unet.Forward(sample, timestep, context, [5], both, [])).Message);
        Assert.Contains("context length 13 is outside [1, 12]",
            Assert.Throws<ArgumentException>(() => unet.Forward(sample, timestep, context, [13, 5], both, [])).Message);
        Assert.Contains("context length 0 is outside [1, 12]",
            Assert.Throws<ArgumentException>(() => unet.Forward(sample, timestep, context, [5, 0], both, [])).Message);
    }

    [Fact]
    public void A_short_negative_prompt_beside_a_long_prompt_acts_as_if_its_chunk_stood_twice()
    {
        // Attending to 77 keys alone or to the same 77 keys twice is the same softmax average, up to rounding; had the
        // short prompt attended to the zero rows that pad it to the long one's 154, the picture would differ by far more.
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest
        {
            Prompt = "a castle on a hill, " + new string('x', 80), Steps = 2, Width = 64, Height = 64, Seed = 9,
            PromptSyntax = PromptSyntax.Weighted,
        };
        using GenerateResult alone = pipeline.Generate(request with { NegativePrompt = "blurry" });
        using GenerateResult twice = pipeline.Generate(request with { NegativePrompt = "blurry BREAK blurry" });
        using GenerateResult other = pipeline.Generate(request with { NegativePrompt = "sharp" });
        Assert.True(Compare.RelativeL2(twice.Latents.Span, alone.Latents.Span) < 1e-5,
            $"relative L2 {Compare.RelativeL2(twice.Latents.Span, alone.Latents.Span):E2}");
        Assert.True(Compare.RelativeL2(other.Latents.Span, alone.Latents.Span) > 1e-3, "a different negative prompt is far away");
    }

    [Theory]
    [InlineData(PromptSyntax.Chunked)]
    [InlineData(PromptSyntax.Weighted)]
    public void A_prompt_without_syntax_generates_bit_for_bit_what_the_plain_syntax_does(PromptSyntax syntax)
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a castle, on a hill", NegativePrompt = "blurry", Steps = 2, Width = 64, Height = 64, Seed = 5 };
        using GenerateResult plain = pipeline.Generate(request);
        using GenerateResult other = pipeline.Generate(request with { PromptSyntax = syntax });
        Assert.True(plain.Latents.Span.SequenceEqual(other.Latents.Span));
    }

    [Fact]
    public void Weights_and_long_prompts_change_the_picture_and_a_long_prompt_is_not_cut()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a castle on a hill", Steps = 2, Width = 64, Height = 64, Seed = 5, PromptSyntax = PromptSyntax.Weighted };
        using GenerateResult plain = pipeline.Generate(request);
        using GenerateResult weighted = pipeline.Generate(request with { Prompt = "a (castle:1.4) on a hill" });
        Assert.False(plain.Latents.Span.SequenceEqual(weighted.Latents.Span));

        // A prompt of two chunks against a negative prompt of one: each half of the guided batch attends to its own.
        string longPrompt = "a castle on a hill, " + new string('x', 80);
        using GenerateResult cut = pipeline.Generate(request with { Prompt = longPrompt, PromptSyntax = PromptSyntax.Plain });
        using GenerateResult whole = pipeline.Generate(request with { Prompt = longPrompt });
        using GenerateResult again = pipeline.Generate(request with { Prompt = longPrompt });
        Assert.False(cut.Latents.Span.SequenceEqual(whole.Latents.Span));
        Assert.True(whole.Latents.Span.SequenceEqual(again.Latents.Span));
        Assert.True(Tensor.AllFinite(whole.Image.Span));
    }

    [Fact]
    public void A_bad_weight_or_a_runaway_prompt_is_refused_naming_which_prompt()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a cat", Steps = 1, Width = 64, Height = 64, PromptSyntax = PromptSyntax.Weighted };
        Assert.Contains("the negative prompt: weight \"1.2.3\" at character 2 is not a finite number",
            Assert.Throws<ArgumentException>(() => pipeline.Generate(request with { NegativePrompt = "(a:1.2.3)" })).Message);
        Assert.Contains("the prompt: it takes more than 32 chunks",
            Assert.Throws<ArgumentException>(() => pipeline.Generate(request with { Prompt = new string('x', 75 * 33) })).Message);
        Assert.Contains("the prompt: it is 40000 characters long; at most 32768 are read",
            Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Prompt = new string('(', 40000) })).Message);
        Assert.Contains("prompt syntax 9 is not Plain, Chunked or Weighted",
            Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { PromptSyntax = (PromptSyntax)9 })).Message);
        Assert.Equal("request", Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { NegativePrompt = "(a:1.2.3)" })).ParamName);
        pipeline.Validate(request with { Prompt = new string('(', 40000), PromptSyntax = PromptSyntax.Plain }); // plain reads any length
        pipeline.Validate(request with { NegativePrompt = "(a:1.2.3)", GuidanceScale = 1 }); // no guidance: the negative prompt is not read
    }
}
