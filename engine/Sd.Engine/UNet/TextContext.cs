using Sd.Engine.Adapters;

namespace Sd.Engine.UNet;

/// <summary>
/// The text context the cross-attention layers attend to, [batch * Length, dim] rows, and whether it holds the
/// same values as the context of the previous completed forward pass at this run shape. Then every layer's k|v
/// projections of it, kept in the run's workspace, still hold and are not computed again: the prompt does not
/// change while sampling, and those projections are ~22 ms of a 64x64 batch-2 SD 1.5 step.
/// <see cref="KeyLengths"/>, when set, says how many of each image's tokens are attended to: the rest are padding.
/// <see cref="ImagePrompts"/> are IP-Adapters' image tokens, which the UNet's cross-attention layers attend to beside
/// the text (null: none; a ControlNet never has them, as in diffusers).
/// </summary>
internal readonly unsafe struct TextContext(float* data, int length, int[]? keyLengths, bool unchanged, IReadOnlyList<ImagePrompt>? imagePrompts = null)
{
    public float* Data { get; } = data;

    /// <summary>Tokens per image.</summary>
    public int Length { get; } = length;

    /// <summary>Each image's attended tokens, the first of its <see cref="Length"/>; null: all of them.</summary>
    public int[]? KeyLengths { get; } = keyLengths;

    /// <summary>The projections kept from the previous pass are this context's.</summary>
    public bool Unchanged { get; } = unchanged;

    /// <summary>IP-Adapters' conditions, each fitting the batch and the UNet's cross-attention layers; null or empty: none.</summary>
    public IReadOnlyList<ImagePrompt>? ImagePrompts { get; } = imagePrompts;
}
