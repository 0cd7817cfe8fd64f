using Sd.Engine.Adapters;
using Sd.Engine.Tensors;

namespace Sd.Engine.UNet;

/// <summary>
/// What a run shape keeps about the text context between passes: a copy of the context whose k|v projections the
/// cross-attention layers hold (see <see cref="TextContext.Unchanged"/>; a pass cancelled half-way leaves the later
/// layers with old projections, so they count as the saved context's only once a pass completes), and each image's
/// attended-token count, filled in place so that a pass allocates nothing.
/// </summary>
internal sealed unsafe class TextContextCache : IDisposable
{
    private readonly int _contextLength;
    private readonly int[] _keyLengths;
    private readonly KeptInput _projectedContext;

    public TextContextCache(int batch, int contextLength, int contextDim)
    {
        _contextLength = contextLength;
        _keyLengths = new int[batch];
        _projectedContext = new KeptInput((long)batch * contextLength * contextDim);
    }

    /// <summary>Bytes held.</summary>
    public long Bytes => _projectedContext.Bytes;

    /// <summary>
    /// The context of one pass, as its layers see it (<paramref name="lengths"/>: empty, or each image's attended
    /// tokens), with the IP-Adapters' image tokens, if any.
    /// </summary>
    public TextContext For(Tensor context, ReadOnlySpan<int> lengths, IReadOnlyList<ImagePrompt>? imagePrompts = null) =>
        new(context.Data, _contextLength, KeyLengths(lengths), _projectedContext.Holds(context.Span), imagePrompts);

    /// <summary>Each image's attended context tokens (<see cref="TextContext.KeyLengths"/>), or null when all attend to every token.</summary>
    private int[]? KeyLengths(ReadOnlySpan<int> given)
    {
        if (given.IsEmpty || !given.ContainsAnyExcept(_contextLength))
        {
            return null;
        }
        given.CopyTo(_keyLengths);
        return _keyLengths;
    }

    /// <summary>A forward pass finished: every layer now holds the saved context's projections.</summary>
    public void ProjectionsComplete() => _projectedContext.Complete();

    public void Dispose() => _projectedContext.Dispose();
}
