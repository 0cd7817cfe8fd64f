using Sd.Engine.Tensors;

namespace Sd.Engine.Modules;

/// <summary>Scratch buffer roles shared by the layers of a network; each layer uses them only during its call.</summary>
public enum Scratch
{
    /// <summary>Concatenated [hidden | skip] input of an up-block resnet.</summary>
    Concat,
    /// <summary>ResNet: GroupNorm+SiLU of the input.</summary>
    ResnetNorm,
    /// <summary>ResNet: conv1 output (then GroupNorm+SiLU in place).</summary>
    ResnetHidden,
    /// <summary>Per-image conv1 bias (conv bias + time embedding projection), [batch, channels].</summary>
    ResnetBias,
    /// <summary>Transformer: GroupNorm output, then LayerNorm outputs.</summary>
    TransformerNorm,
    /// <summary>Transformer: the token sequence after proj_in.</summary>
    TransformerTokens,
    /// <summary>Attention: fused q|k|v (self) or q (cross) projections.</summary>
    AttentionProjections,
    /// <summary>Attention output before to_out.</summary>
    AttentionOutput,
    /// <summary>Feed-forward: GEGLU projection (value | gate), gated in place.</summary>
    FeedForward,
    /// <summary>Up-sampled hidden state before the up-sampler's convolution.</summary>
    Upsampled,
    /// <summary>Winograd V/M buffers.</summary>
    Winograd,
    /// <summary>A ControlNet's 1x1 convolution output before it is scaled into the residuals.</summary>
    ControlNetOutput,
}

/// <summary>
/// Activation memory for one run shape: layers first declare the largest size they need per <see cref="Scratch"/>
/// role (a planning walk over the network at that batch and resolution), then one 64-byte aligned block per role
/// is allocated and reused by every call at that shape: no allocation while the network runs. A layer that keeps
/// something between calls (a cache) asks for a kept block of its own instead.
/// </summary>
public sealed unsafe class Workspace : IDisposable
{
    private static readonly int RoleCount = Enum.GetValues<Scratch>().Length;
    private readonly long[] _sizes = new long[RoleCount];
    private NativeBlock?[] _blocks = new NativeBlock?[RoleCount];
    private readonly List<long> _keptOffsets = new();
    private long _keptFloats;
    private NativeBlock? _kept;

    /// <summary>Planning: role <paramref name="role"/> must hold at least <paramref name="floats"/>.</summary>
    public void Need(Scratch role, long floats) => _sizes[(int)role] = Math.Max(_sizes[(int)role], floats);

    /// <summary>
    /// Planning: a block of <paramref name="floats"/> that belongs to one layer and keeps its contents from one call
    /// at this shape to the next; returns the handle for <see cref="Kept"/>.
    /// </summary>
    public int Keep(long floats)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(floats);
        _keptOffsets.Add(_keptFloats);
        _keptFloats += (floats + 15) & ~15L; // each block starts on a cache line
        return _keptOffsets.Count - 1;
    }

    /// <summary>Allocates every role at its planned size and the kept blocks; call once after planning.</summary>
    public void Allocate()
    {
        for (int i = 0; i < RoleCount; i++)
        {
            _blocks[i]?.Dispose();
            _blocks[i] = _sizes[i] == 0 ? null : new NativeBlock(_sizes[i], zero: false);
        }
        _kept?.Dispose();
        _kept = _keptFloats == 0 ? null : new NativeBlock(_keptFloats, zero: false);
    }

    /// <summary>The kept block <paramref name="handle"/> (from <see cref="Keep"/>).</summary>
    public float* Kept(int handle) =>
        _kept != null && (uint)handle < (uint)_keptOffsets.Count
            ? _kept.Pointer + _keptOffsets[handle]
            : throw new InvalidOperationException($"kept block {handle} was not planned");

    public float* this[Scratch role]
    {
        get
        {
            NativeBlock? block = _blocks[(int)role];
            return block != null ? block.Pointer : throw new InvalidOperationException($"workspace role {role} was not planned");
        }
    }

    public long Size(Scratch role) => _sizes[(int)role];

    public long TotalBytes
    {
        get
        {
            long total = _keptFloats * sizeof(float);
            foreach (long size in _sizes) total += size * sizeof(float);
            return total;
        }
    }

    public void Dispose()
    {
        foreach (NativeBlock? block in _blocks)
        {
            block?.Dispose();
        }
        _blocks = new NativeBlock?[RoleCount];
        _kept?.Dispose();
        _kept = null;
    }
}
