using System.Runtime.InteropServices;

namespace Sd.Engine.Tensors;

/// <summary>
/// A copy of the input a kept result was computed from (a context's k|v projections, a ControlNet picture's
/// embedding): <see cref="Holds"/> says whether a new input is the same, bit for bit. When it is not, the new input
/// is saved and the result counts as stale until <see cref="Complete"/>, so a computation cancelled half-way is made
/// again in full the next time.
/// </summary>
internal sealed class KeptInput(long floats) : IDisposable
{
    private readonly NativeBlock _saved = new(floats, zero: false);
    private bool _complete;

    /// <summary>Bytes held.</summary>
    public long Bytes => _saved.Length * sizeof(float);

    /// <summary>Whether the kept result is that of <paramref name="input"/>; if not, the input is saved in its place.</summary>
    public bool Holds(ReadOnlySpan<float> input)
    {
        Span<float> saved = _saved.Span;
        if (_complete && MemoryMarshal.AsBytes(input).SequenceEqual(MemoryMarshal.AsBytes(saved)))
        {
            return true;
        }
        _complete = false;
        input.CopyTo(saved);
        return false;
    }

    /// <summary>Whether the kept result is complete and that of <paramref name="input"/>; nothing is saved.</summary>
    public bool Matches(ReadOnlySpan<float> input) =>
        _complete && MemoryMarshal.AsBytes(input).SequenceEqual(MemoryMarshal.AsBytes(_saved.Span));

    /// <summary>The result of the saved input is now computed in full.</summary>
    public void Complete() => _complete = true;

    public void Dispose() => _saved.Dispose();
}
