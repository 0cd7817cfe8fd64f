using Sd.Engine.Text;
using Sd.Loaders.Embeddings;
using Sd.Loaders.Layout;

namespace Sd.Engine.Tests;

/// <summary>
/// Prompts as text-encoder rows (ClipTokenizer.Tokenize) on the byte-level tokenizer, where every byte of a word is
/// one token, so positions are easy to place: AUTOMATIC1111's tokenize_line (chunks of 75, the comma backtrack, whole
/// textual inversions, BREAK) and diffusers' single truncated row.
/// </summary>
public sealed class PromptChunkTests
{
    private const long Bos = 512, Eos = 513;
    private static readonly ClipTokenizer Tokenizer = ClipTokenizer.ByteLevel();

    [Theory]
    [InlineData(PromptSyntax.Chunked)]
    [InlineData(PromptSyntax.Weighted)]
    public void A_short_prompt_without_syntax_is_the_plain_row_with_weights_of_1(PromptSyntax syntax)
    {
        TokenizedPrompt plain = Tokenizer.Tokenize("a castle, on a hill", PromptSyntax.Plain);
        PromptChunk chunk = Assert.Single(Tokenizer.Tokenize("a castle, on a hill", syntax).Chunks);
        Assert.Equal(Assert.Single(plain.Chunks).Ids, chunk.Ids);
        Assert.All(chunk.Weights, weight => Assert.Equal(1f, weight));
        Assert.False(chunk.IsWeighted);
        Assert.Equal([Bos, Eos, .. Enumerable.Repeat(Eos, 75)], Assert.Single(Tokenizer.Tokenize("", syntax).Chunks).Ids);
    }

    [Fact]
    public void Plain_keeps_one_row_and_counts_what_it_cuts()
    {
        TokenizedPrompt plain = Tokenizer.Tokenize(new string('x', 80), PromptSyntax.Plain);
        Assert.Equal(5, plain.DroppedTokens);
        Assert.Equal(Tokenizer.EncodeForPipeline(new string('x', 80), out _), Assert.Single(plain.Chunks).Ids);
        Assert.Equal(0, Tokenizer.Tokenize(new string('x', 80), PromptSyntax.Chunked).DroppedTokens);
    }

    [Fact]
    public void A_full_chunk_ends_after_a_comma_at_most_20_tokens_back()
    {
        // 69 x's and a comma (tokens 0..69), then 10 y's: at the 76th token the comma is 6 back.
        IReadOnlyList<PromptChunk> chunks = Chunk(new string('x', 69) + ", " + new string('y', 10));
        Assert.Equal(2, chunks.Count);
        Assert.Equal([Bos, .. Word('x', 69), Token(',', true), Eos], chunks[0].Ids[..72]);
        Assert.Equal([Bos, .. Word('y', 10), Eos], chunks[1].Ids[..12]);

        // Exactly 20 back still moves; 21 back does not (the chunk is cut at 75).
        Assert.Equal(56, Text(Chunk(new string('x', 55) + "," + new string('y', 30))[0]));
        Assert.Equal(75, Text(Chunk(new string('x', 54) + "," + new string('y', 30))[0]));
    }

    [Fact]
    public void A_textual_inversion_that_does_not_fit_moves_whole_to_the_next_chunk()
    {
        float[] vectors = new float[3 * DemoModel.TextEncoder.HiddenSize];
        AddedTokens added = AddedTokens.Create([new TextualInversion("test", "<e>", 3, DemoModel.TextEncoder.HiddenSize, vectors)], DemoModel.TextEncoder);
        ClipTokenizer tokenizer = Tokenizer.WithAddedTokens(added);
        IReadOnlyList<PromptChunk> chunks = tokenizer.Tokenize(new string('x', 73) + " <e>", PromptSyntax.Chunked).Chunks;
        Assert.Equal(2, chunks.Count);
        Assert.Equal(73, Text(chunks[0]));
        Assert.Equal([Bos, 514, 515, 516, Eos], chunks[1].Ids[..5]);
    }

    [Fact]
    public void Break_starts_a_chunk_in_the_weighted_syntax_only()
    {
        IReadOnlyList<PromptChunk> chunks = Tokenizer.Tokenize("a BREAK b", PromptSyntax.Weighted).Chunks;
        Assert.Equal(2, chunks.Count);
        Assert.Equal([Bos, Token('a', true), Eos], chunks[0].Ids[..3]);
        Assert.Equal([Bos, Token('b', true), Eos], chunks[1].Ids[..3]);
        Assert.Single(Tokenizer.Tokenize("a BREAK b", PromptSyntax.Chunked).Chunks);
        // A leading BREAK ends the empty chunk before it, as in the reference.
        IReadOnlyList<PromptChunk> leading = Tokenizer.Tokenize("BREAK b", PromptSyntax.Weighted).Chunks;
        Assert.Equal(2, leading.Count);
        Assert.Equal([Bos, Eos, Eos], leading[0].Ids[..3]);
    }

    [Fact]
    public void Each_token_carries_its_weight_as_float32_and_bos_eos_and_padding_1()
    {
        PromptChunk chunk = Assert.Single(Tokenizer.Tokenize("(a) [bc] d", PromptSyntax.Weighted).Chunks);
        Assert.Equal(Tokenizer.EncodeForPipeline("a bc d", out _), chunk.Ids);
        Assert.Equal([1f, (float)1.1, (float)(1 / 1.1), (float)(1 / 1.1), 1f, 1f], chunk.Weights[..6]);
        Assert.True(chunk.IsWeighted);
        Assert.All(chunk.Weights[6..], weight => Assert.Equal(1f, weight));
    }

    [Fact]
    public void A_prompt_past_the_chunk_limit_or_a_weight_past_float32_is_refused()
    {
        Assert.Equal(ClipTokenizer.MaxChunks, Tokenizer.Tokenize(new string('x', 75 * ClipTokenizer.MaxChunks), PromptSyntax.Chunked).Chunks.Count);
        Assert.Contains("it takes more than 32 chunks of 75 tokens",
            Assert.Throws<ArgumentException>(() => Tokenizer.Tokenize(new string('x', 75 * ClipTokenizer.MaxChunks + 1), PromptSyntax.Chunked)).Message);
        Assert.Contains("its emphasis weights come to 1E+40, which is not a finite float32",
            Assert.Throws<ArgumentException>(() => Tokenizer.Tokenize("(a:1" + new string('0', 40) + ")", PromptSyntax.Weighted)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Tokenize("a", (PromptSyntax)7));
    }

    private static IReadOnlyList<PromptChunk> Chunk(string prompt) => Tokenizer.Tokenize(prompt, PromptSyntax.Chunked).Chunks;

    /// <summary>The text tokens of a chunk: those between bos and the first eos.</summary>
    private static int Text(PromptChunk chunk) => Array.IndexOf(chunk.Ids, Eos) - 1;

    /// <summary>The byte-level id of a printable ASCII character, in its end-of-word form or not.</summary>
    private static long Token(char c, bool endOfWord) => c - 33 + (endOfWord ? 256 : 0);

    private static long[] Word(char c, int length) =>
        [.. Enumerable.Repeat(Token(c, false), length - 1), Token(c, true)];
}
