using System.Runtime.InteropServices;
using Sd.Engine.Tensors;

namespace Sd.Engine.UNet;

/// <summary>
/// What a run shape keeps about the text context between passes: a copy of the context whose k|v projections the
/// cross-attention layers hold (see <see cref="TextContext.Unchanged"/>), and each image's attended-token count, filled
/// in place so that a pass allocates nothing.
/// </summary>
internal sealed unsafe class TextContextCache : IDisposable
{
    private readonly int _contextLength;
    private readonly int[] _keyLengths;
    private readonly NativeBlock _projectedContext;
    private bool _projected;

    public TextContextCache(int batch, int contextLength, int contextDim)
    {
        _contextLength = contextLength;
        _keyLengths = new int[batch];
        _projectedContext = new NativeBlock((long)batch * contextLength * contextDim, zero: false);
    }

    /// <summary>Bytes held.</summary>
    public long Bytes => _projectedContext.Length * sizeof(float);

    /// <summary>The context of one pass, as its layers see it (<paramref name="lengths"/>: empty, or each image's attended tokens).</summary>
    public TextContext For(Tensor context, ReadOnlySpan<int> lengths) =>
        new(context.Data, _contextLength, KeyLengths(lengths), HoldsProjectionsOf(context));

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

    /// <summary>
    /// Whether the layers' kept k|v projections are those of <paramref name="context"/>: the previous pass at this
    /// shape completed with the same values, compared bit for bit. If not, the context is saved and the projections
    /// count as stale until <see cref="ProjectionsComplete"/>, so a pass cancelled half-way, which leaves the later
    /// layers with the old projections, makes the next pass compute them all again.
    /// </summary>
    private bool HoldsProjectionsOf(Tensor context)
    {
        Span<float> saved = _projectedContext.Span;
        ReadOnlySpan<float> now = context.Span;
        if (_projected && MemoryMarshal.AsBytes(now).SequenceEqual(MemoryMarshal.AsBytes(saved)))
        {
            return true;
        }
        _projected = false;
        now.CopyTo(saved);
        return false;
    }

    /// <summary>A forward pass finished: every layer now holds the saved context's projections.</summary>
    public void ProjectionsComplete() => _projected = true;

    public void Dispose() => _projectedContext.Dispose();
}
