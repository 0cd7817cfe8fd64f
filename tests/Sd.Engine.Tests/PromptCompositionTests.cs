using Sd.Engine.Pipelines;
using Sd.Engine.Text;
using Sd.Loaders;

namespace Sd.Engine.Tests;

/// <summary>
/// AUTOMATIC1111's AND (composable diffusion). The split against Python's re.split(r"\bAND\b") and re_weight of A1111's
/// prompt_parser (commit 28bd8e1), run on these prompts; the pipeline against <see cref="GuidedLoop"/>.
/// </summary>
public sealed class PromptCompositionTests : IDisposable
{
    private readonly ModelSource _demo = ModelSource.Demo();

    public void Dispose() => _demo.Dispose();

    public static TheoryData<string, string> Splits() => new()
    {
        { "a cat AND a dog", "a cat@1| a dog@1" },
        { "a cat :1.2 AND a dog:0.5", "a cat@1.2| a dog@0.5" },
        { "BAND of AND_x", "BAND of AND_x@1" },
        { "AND", "@1|@1" },
        { "x AND", "x@1|@1" },
        { "(a:1.2) AND b", "(a:1.2)@1| b@1" },
        { "a : .5 ", "a@0.5" },
        { "a:1.", "a@1" },
        { "a:-2", "a@-2" },
        { "a:+.5e1", "a:+.5e1@1" },
        { "a:\u0663", "a@3" },
        { "a\n:2\n", "a@2" },
        { "a:1:2", "a:1@2" },
        { "\u00e9AND b", "\u00e9AND b@1" },
        { "a AND\u00e9", "a AND\u00e9@1" },
        { "a ANDAND b", "a ANDAND b@1" },
        { "a:1.5.5", "a:1.5.5@1" },
        { "a: 1 2", "a: 1 2@1" },
    };

    [Theory]
    [MemberData(nameof(Splits))]
    public void The_parts_and_weights_are_a1111s(string prompt, string expected)
    {
        IReadOnlyList<PromptPart> parts = PromptComposition.Split(prompt);
        Assert.Equal(expected, string.Join("|", parts.Select(p => $"{p.Text}@{p.Weight.ToString(System.Globalization.CultureInfo.InvariantCulture)}")));
    }

    [Fact]
    public void A_weight_float_overflows_is_refused_where_a1111_would_guide_by_infinity()
    {
        var e = Assert.Throws<ArgumentException>(() => PromptComposition.Split("a AND b:" + new string('9', 400)));
        Assert.Equal("prompt", e.ParamName);
        Assert.Contains("is not a finite number", e.Message);
    }

    [Fact]
    public void Each_part_guides_against_the_unconditioned_prediction_by_its_weight()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = GuidedLoop.Request("a red boat AND [a green tree:a blue sky:2] :0.7", "blurry", 4, "euler", 5);
        using GenerateResult composed = pipeline.Generate(request);
        // Rows [uncond, part 1, part 2]; part 2 edits itself after call 2 (its own schedule, as A1111 reads each part's).
        float[] expected = GuidedLoop.Latents(_demo, request, ["blurry", "a red boat", " a green tree", " a blue sky"],
            [_ => 0, _ => 1, call => call <= 2 ? 2 : 3], [1.0, 0.7]);
        Assert.Equal(expected, composed.Latents.Span.ToArray());

        // One part is plain guidance, bit for bit; AND in the negative prompt or in the plain syntax is text.
        using GenerateResult one = pipeline.Generate(request with { Prompt = "a red boat :1" });
        using GenerateResult boat = pipeline.Generate(request with { Prompt = "a red boat" });
        Assert.True(one.Latents.Span.SequenceEqual(boat.Latents.Span));
        using GenerateResult negative = pipeline.Generate(request with { Prompt = "a red boat", NegativePrompt = "blurry AND dark" });
        Assert.False(negative.Latents.Span.SequenceEqual(boat.Latents.Span));
        Assert.Equal(GuidedLoop.Latents(_demo, request, ["blurry AND dark", "a red boat"], [_ => 0, _ => 1], [1.0]), negative.Latents.Span.ToArray());
        using GenerateResult plain = pipeline.Generate(request with { Prompt = "a red boat AND a green tree", PromptSyntax = PromptSyntax.Plain });
        Assert.Equal(GuidedLoop.Latents(_demo, request with { PromptSyntax = PromptSyntax.Plain }, ["blurry", "a red boat AND a green tree"], [_ => 0, _ => 1], [1.0]),
            plain.Latents.Span.ToArray());
    }

    [Fact]
    public void A_shorter_part_is_padded_with_copies_of_its_last_token_vector()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        string longText = string.Join(", ", Enumerable.Repeat("a tall red boat on the sea", 14));
        var request = GuidedLoop.Request("a boat AND " + longText, "blurry", 3, "euler", 2);
        using GenerateResult composed = pipeline.Generate(request);

        // A1111's stack_conds: the parts of a call stacked to the longest, a shorter one repeating its last vector (its
        // last padding token's), attended like any other; the unconditioned row is a pass of its own (masked here).
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        TokenizedPrompt[] texts = [.. new[] { "blurry", "a boat", " " + longText }.Select(t => tokenizer.Tokenize(t, PromptSyntax.Weighted))];
        GuidedLoop.Bank bank = GuidedLoop.Encode(_demo, texts);
        int tokens = bank.Tokens, width = bank.Width;
        Assert.True(tokens > 77);
        for (int t = 77; t < tokens; t++)
        {
            Array.Copy(bank.States, (tokens + 76) * width, bank.States, (tokens + t) * width, width);
        }
        float[] expected = GuidedLoop.Latents(_demo, request, bank, [_ => 0, _ => 1, _ => 2], [_ => 77, _ => tokens, _ => tokens], [1.0, 1.0]);
        Assert.Equal(expected, composed.Latents.Span.ToArray());
    }

    [Fact]
    public void Parts_need_guidance_and_are_bounded()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a AND b", PromptSyntax = PromptSyntax.Weighted };
        Assert.Contains("composed of 2 parts with AND, which guide against the unconditioned prediction: that needs classifier-free guidance (a guidance scale above 1)",
            Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { GuidanceScale = 1f })).Message);
        Assert.Contains("at most 8 are run",
            Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Prompt = string.Join(" AND ", Enumerable.Range(0, 9)) })).Message);
        Assert.Contains("rescales one conditioned prediction",
            Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { GuidanceRescale = 0.7f })).Message);
        pipeline.Validate(request);
    }
}
