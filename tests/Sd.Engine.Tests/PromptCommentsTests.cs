using Sd.Engine.Text;

namespace Sd.Engine.Tests;

/// <summary>
/// AUTOMATIC1111's prompt comments: the expected texts are Python's re.sub with A1111's two patterns
/// (modules/processing_scripts/comments.py strip_comments), run on these prompts; then what the tokenizer reads.
/// </summary>
public sealed class PromptCommentsTests
{
    [Theory]
    [InlineData("a cat # <lora:x:1> note\n[day:night:0.5] AND dog :0.5", "a cat \n[day:night:0.5] AND dog :0.5")]
    [InlineData("#whole line\nb", "\nb")]
    [InlineData("#a\n#b\nc", "\n\nc")] // the second line is left to the mid-line pattern, as Python's scan leaves it
    [InlineData("x#y", "x\n")]
    [InlineData("a\n#b", "a\n")]
    [InlineData("a # b\n# c\nd", "a \nd")]
    [InlineData("##\n", "\n")]
    [InlineData("no comment", "no comment")]
    public void Comments_go_as_a1111_strips_them(string prompt, string expected) => Assert.Equal(expected, PromptComments.Strip(prompt));

    /// <summary>The chunked syntaxes read the prompt without its comments: no tag, AND or edit in a comment counts; plain keeps them as text.</summary>
    [Fact]
    public void The_chunked_syntaxes_read_prompts_without_their_comments()
    {
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        TokenizedPrompt commented = tokenizer.Tokenize("a (cat:1.2) # <lora:x:1> (dog:2) AND b\nc", PromptSyntax.Weighted);
        TokenizedPrompt bare = tokenizer.Tokenize("a (cat:1.2) \nc", PromptSyntax.Weighted);
        Assert.Empty(commented.RemovedTags);
        Assert.Equal(bare.Chunks[0].Ids, commented.Chunks[0].Ids);
        Assert.Equal(bare.Chunks[0].Weights, commented.Chunks[0].Weights);

        IReadOnlyList<ComposablePrompt> parts = tokenizer.TokenizeComposable("cat # AND dog\n[red:blue:2]", PromptSyntax.Weighted, 4);
        Assert.Single(parts);
        Assert.Equal(["cat \nred", "cat \nblue"], parts[0].Schedule.Select(s => s.Text));

        // A negative prompt keeps its tags as text but loses its comments too.
        IReadOnlyList<ScheduledTokens> negative = tokenizer.TokenizeSchedule("blurry # <lora:x:1>", PromptSyntax.Weighted, 4, takeTagsOut: false);
        Assert.Equal("blurry \n", Assert.Single(negative).Text);
        Assert.NotEqual(tokenizer.Tokenize("a (cat:1.2) \nc", PromptSyntax.Plain).Chunks[0].Ids, tokenizer.Tokenize("a (cat:1.2) # x\nc", PromptSyntax.Plain).Chunks[0].Ids);
    }
}
