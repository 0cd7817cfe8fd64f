namespace Sd.Engine.Text;

/// <summary>How a prompt's text becomes token rows for the text encoder.</summary>
public enum PromptSyntax
{
    /// <summary>
    /// diffusers: the text as written, one row of 77 tokens; a longer prompt is cut (with a warning) after 75 text
    /// tokens.
    /// </summary>
    Plain,

    /// <summary>
    /// AUTOMATIC1111 with emphasis off: the text as written, in rows of 75 text tokens each encoded on its own and
    /// joined, so no text is cut. A row that fills up moves the words after its last comma (within 20 tokens) to the
    /// next row, and a textual inversion's vectors stay in one row. The pipeline (and
    /// <see cref="ClipTokenizer.TokenizeComposable"/>) reads A1111's prompt editing and AND in this syntax too.
    /// </summary>
    Chunked,

    /// <summary>
    /// AUTOMATIC1111's default: <see cref="Chunked"/>, with the emphasis syntax of <see cref="PromptAttention"/>
    /// (<c>(word:1.2)</c>, <c>(word)</c>, <c>[word]</c>, BREAK). Each row's hidden states are multiplied by their
    /// tokens' weights and then rescaled to the row's former mean.
    /// </summary>
    Weighted,
}

/// <summary>One text-encoder row: bos, text tokens, eos, padding; and each token's emphasis (1 for the special tokens).</summary>
public sealed record PromptChunk(long[] Ids, float[] Weights)
{
    /// <summary>Whether any token has a weight other than 1 (<see cref="ClipTextModel.EncodePrompts"/> leaves the row as it is if not).</summary>
    public bool IsWeighted => Weights.AsSpan().ContainsAnyExcept(1f);
}

/// <summary>A prompt as text-encoder rows.</summary>
/// <param name="DroppedTokens">Text tokens cut off (<see cref="PromptSyntax.Plain"/> only), for the caller to warn about.</param>
public sealed record TokenizedPrompt(IReadOnlyList<PromptChunk> Chunks, int DroppedTokens)
{
    /// <summary>
    /// The extra-network tags (<c>&lt;lora:name:0.8&gt;</c>) taken out of the text (chunked syntaxes only): nothing
    /// here applies them, so a caller says so or merges the LoRAs they name at load.
    /// </summary>
    public IReadOnlyList<ExtraNetworkTag> RemovedTags { get; init; } = [];
}

/// <summary>One text of a prompt's schedule (<see cref="ClipTokenizer.TokenizeSchedule"/>): read by the calls up to
/// <see cref="EndAtStep"/> (see <see cref="PromptSchedule"/>), as <see cref="Tokens"/>.</summary>
public sealed record ScheduledTokens(int EndAtStep, string Text, TokenizedPrompt Tokens);

/// <summary>One part of a prompt composed with AND (<see cref="ClipTokenizer.TokenizeComposable"/>): its guidance
/// weight and its texts over the steps.</summary>
public sealed record ComposablePrompt(double Weight, IReadOnlyList<ScheduledTokens> Schedule);
