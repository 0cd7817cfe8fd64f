using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Normalization;

namespace Sd.Engine.Modules;

/// <summary>LayerNorm over the last dimension. Reference: torch.nn.LayerNorm.</summary>
public sealed unsafe class LayerNormModule : IDisposable
{
    private readonly NativeBlock _gamma;
    private readonly NativeBlock _beta;

    public LayerNormModule(WeightBinder binder, int channels, double eps)
    {
        Channels = channels;
        Eps = (float)eps;
        _gamma = binder.Load("weight", [channels]);
        _beta = binder.Load("bias", [channels]);
    }

    public int Channels { get; }

    public float Eps { get; }

    /// <summary>dst[rows, C] = LayerNorm(src[rows, C]); dst may equal src.</summary>
    public void Forward(float* src, float* dst, int rows) =>
        LayerNorm.Apply(src, dst, rows, Channels, Eps, _gamma.Pointer, _beta.Pointer);

    public void Dispose()
    {
        _gamma.Dispose();
        _beta.Dispose();
    }
}

/// <summary>
/// GroupNorm over NHWC activations with an optional fused activation (GroupNorm + SiLU is the ResNet block's
/// pre-activation). Reference: torch.nn.GroupNorm.
/// </summary>
public sealed unsafe class GroupNormModule : IDisposable
{
    private readonly NativeBlock _gamma;
    private readonly NativeBlock _beta;

    public GroupNormModule(WeightBinder binder, int groups, int channels, double eps)
    {
        Groups = groups;
        Channels = channels;
        Eps = (float)eps;
        _gamma = binder.Load("weight", [channels]);
        _beta = binder.Load("bias", [channels]);
    }

    public int Groups { get; }

    public int Channels { get; }

    public float Eps { get; }

    /// <summary>dst[n, hw, C] = act(GroupNorm(src)); dst may equal src.</summary>
    public void Forward(float* src, float* dst, int batch, int pixels, Activation activation) =>
        GroupNorm.Apply(src, dst, batch, pixels, Channels, Groups, Eps, _gamma.Pointer, _beta.Pointer, activation);

    public void Dispose()
    {
        _gamma.Dispose();
        _beta.Dispose();
    }
}
