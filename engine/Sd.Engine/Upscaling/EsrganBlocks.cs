using Sd.Engine.Modules;
using Sd.Kernels.Convolution;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Upscaling;

/// <summary>
/// Five 3x3 convolutions over a growing concatenation: conv_k reads [x, x1, .., x(k-1)] and adds G channels (LeakyReLU
/// 0.2), conv5 maps all of them back to F, and the block returns x5 * 0.2 + x. The concatenation is never copied: one
/// dense buffer [pixels, F + 4G] holds x in its first F channels and each xk in the next G, every convolution reads a
/// prefix of its pixels (input pixel stride F + 4G) and writes its own slice.
/// Reference: BasicSR ResidualDenseBlock (rrdbnet_arch.py).
/// </summary>
internal sealed unsafe class ResidualDenseBlock : IDisposable
{
    public const float ResidualScale = 0.2f;

    /// <summary>LeakyReLU with slope 0.2, as every RRDBNet convolution but the last of each block applies it.</summary>
    public static ConvActivation Activation => ConvActivation.LeakyRelu(0.2f);

    private readonly Conv2d[] _convs = new Conv2d[5];
    private readonly int _features;
    private readonly int _growth;

    public ResidualDenseBlock(WeightBinder binder, int features, int growth)
    {
        _features = features;
        _growth = growth;
        for (int k = 0; k < 4; k++)
        {
            _convs[k] = new Conv2d(binder.Child($"conv{k + 1}"), features + k * growth, growth);
        }
        _convs[4] = new Conv2d(binder.Child("conv5"), features + 4 * growth, features);
    }

    public int DenseChannels => _features + 4 * _growth;

    public void Plan(Workspace workspace, int height, int width)
    {
        foreach (Conv2d conv in _convs) conv.Plan(workspace, 1, height, width);
    }

    /// <summary>dense[:, :F] = block(dense[:, :F]); the growth channels and <paramref name="t"/> [pixels, F] are scratch.</summary>
    public void Forward(float* dense, int height, int width, float* t, Workspace workspace)
    {
        int ld = DenseChannels;
        nint pixels = (nint)height * width;
        for (int k = 0; k < 4; k++)
        {
            float* slice = dense + _features + k * _growth; // [pixels, G] of stride ld: x(k+1)
            _convs[k].Forward(dense, 1, height, width, slice, workspace, inputStride: ld, outputStride: ld, activation: Activation);
        }
        _convs[4].Forward(dense, 1, height, width, t, workspace, inputStride: ld);
        FeatureMapKernels.ScaledAdd(t, _features, ResidualScale, dense, ld, dense, ld, pixels, _features);
    }

    public void Dispose()
    {
        foreach (Conv2d conv in _convs) conv.Dispose();
    }
}

/// <summary>
/// Three residual dense blocks and an outer residual: rdb3(rdb2(rdb1(x))) * 0.2 + x, in the dense buffer's first F
/// channels. Reference: BasicSR RRDB (rrdbnet_arch.py).
/// </summary>
internal sealed unsafe class Rrdb : IDisposable
{
    private readonly ResidualDenseBlock[] _blocks = new ResidualDenseBlock[3];
    private readonly int _features;

    public Rrdb(WeightBinder binder, int features, int growth)
    {
        _features = features;
        for (int i = 0; i < 3; i++)
        {
            _blocks[i] = new ResidualDenseBlock(binder.Child($"rdb{i + 1}"), features, growth);
        }
    }

    public void Plan(Workspace workspace, int height, int width)
    {
        foreach (ResidualDenseBlock block in _blocks) block.Plan(workspace, height, width);
    }

    /// <summary>dense[:, :F] = rrdb(dense[:, :F]); <paramref name="t"/> and <paramref name="input"/> ([pixels, F] each) are scratch.</summary>
    public void Forward(float* dense, int height, int width, float* t, float* input, Workspace workspace)
    {
        int ld = _blocks[0].DenseChannels;
        nint pixels = (nint)height * width;
        FeatureMapKernels.CopyColumns(dense, ld, input, _features, pixels, _features);
        foreach (ResidualDenseBlock block in _blocks)
        {
            block.Forward(dense, height, width, t, workspace);
        }
        FeatureMapKernels.ScaledAdd(dense, ld, ResidualDenseBlock.ResidualScale, input, _features, dense, ld, pixels, _features);
    }

    public void Dispose()
    {
        foreach (ResidualDenseBlock block in _blocks) block.Dispose();
    }
}
