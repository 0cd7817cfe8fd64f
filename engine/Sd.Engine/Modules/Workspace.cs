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
    /// <summary>Attention: cross-attention k|v of the text context.</summary>
    ContextProjections,
    /// <summary>Attention output before to_out.</summary>
    AttentionOutput,
    /// <summary>Feed-forward: GEGLU projection (value | gate), gated in place.</summary>
    FeedForward,
    /// <summary>Up-sampled hidden state before the up-sampler's convolution.</summary>
    Upsampled,
    /// <summary>Winograd V/M buffers.</summary>
    Winograd,
}

/// <summary>
/// Activation memory for one run shape: layers first declare the largest size they need per <see cref="Scratch"/>
/// role (a planning walk over the network at that batch and resolution), then one 64-byte aligned block per role
/// is allocated and reused by every call at that shape: no allocation while the network runs.
/// </summary>
public sealed unsafe class Workspace : IDisposable
{
    private static readonly int RoleCount = Enum.GetValues<Scratch>().Length;
    private readonly long[] _sizes = new long[RoleCount];
    private NativeBlock?[] _blocks = new NativeBlock?[RoleCount];

    /// <summary>Planning: role <paramref name="role"/> must hold at least <paramref name="floats"/>.</summary>
    public void Need(Scratch role, long floats) => _sizes[(int)role] = Math.Max(_sizes[(int)role], floats);

    /// <summary>Allocates every role at its planned size; call once after planning.</summary>
    public void Allocate()
    {
        for (int i = 0; i < RoleCount; i++)
        {
            _blocks[i]?.Dispose();
            _blocks[i] = _sizes[i] == 0 ? null : new NativeBlock(_sizes[i], zero: false);
        }
    }

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
            long total = 0;
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
    }
}
