using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Convolution;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Upscalers;
using Sd.Loaders.Weights;

namespace Sd.Engine.Upscaling;

/// <summary>
/// ESRGAN's generator on one NHWC picture (batch 1): conv_first, the residual-in-residual trunk and conv_body with a
/// long skip, then per upsampling a 2x nearest-neighbour resize, conv_upK and LeakyReLU, then conv_hr, LeakyReLU and
/// conv_last. Real-ESRGAN's x2 / x1 models take the picture pixel-unshuffled (see <see cref="EsrganUpscaler"/>).
/// Buffers are planned per input size and kept until the size changes.
/// Reference: BasicSR RRDBNet (rrdbnet_arch.py); spandrel's ESRGAN for the older layouts.
/// </summary>
internal sealed unsafe class RrdbNet : IUpscaleNetwork
{
    private readonly EsrganConfig _config;
    private readonly Conv2d _first;
    private readonly Rrdb[] _trunk;
    private readonly Conv2d _body;
    private readonly Conv2d[] _ups;
    private readonly Conv2d _hr;
    private readonly Conv2d _last;

    private readonly PlannedBuffers _memory = new();

    public RrdbNet(EsrganConfig config, WeightSet weights)
    {
        _config = config;
        using var binder = new WeightBinder(weights);
        int f = config.Features;
        _first = new Conv2d(binder.Child("conv_first"), config.FirstConvInChannels, f);
        _trunk = new Rrdb[config.Blocks];
        for (int i = 0; i < _trunk.Length; i++)
        {
            _trunk[i] = new Rrdb(binder.Child("body").Child(i), f, config.GrowthChannels);
        }
        _body = new Conv2d(binder.Child("conv_body"), f, f);
        _ups = new Conv2d[config.Upsamplings];
        for (int i = 0; i < _ups.Length; i++)
        {
            _ups[i] = new Conv2d(binder.Child($"conv_up{i + 1}"), f, f);
        }
        _hr = new Conv2d(binder.Child("conv_hr"), f, f);
        _last = new Conv2d(binder.Child("conv_last"), f, config.OutChannels);
        binder.RequireAllUsed();
    }

    /// <summary>
    /// y [H x 2^U, W x 2^U, Cout] = the network on x [H, W, conv_first's input channels] (NHWC floats). Not thread safe:
    /// the buffers are the network's own.
    /// </summary>
    public void Forward(float* x, int height, int width, float* y)
    {
        Plan(height, width);
        int f = _config.Features;
        int dense = f + 4 * _config.GrowthChannels;
        nint pixels = (nint)height * width;
        float* feat = _memory.Block.Pointer;               // [pixels, F]: conv_first's output, the long skip
        float* denseBuffer = feat + pixels * f;        // [pixels, F + 4G]
        float* t = denseBuffer + pixels * dense;       // [pixels, F]
        float* input = t + pixels * f;                 // [pixels, F]
        float* a = input + pixels * f;                 // [pixels x 4^U, F]
        float* b = a + (pixels << (2 * _ups.Length)) * f;
        _first.Forward(x, 1, height, width, feat, _memory.Workspace);
        FeatureMapKernels.CopyColumns(feat, f, denseBuffer, dense, pixels, f);
        foreach (Rrdb block in _trunk)
        {
            block.Forward(denseBuffer, height, width, t, input, _memory.Workspace);
        }
        _body.Forward(denseBuffer, 1, height, width, feat, _memory.Workspace, residual: feat, inputStride: dense);
        float* current = feat;
        int h = height, w = width;
        foreach (Conv2d up in _ups)
        {
            FeatureMapKernels.Upsample2xNearest(current, 1, h, w, f, a); // [2h, 2w, F]
            h *= 2;
            w *= 2;
            up.Forward(a, 1, h, w, b, _memory.Workspace, activation: ResidualDenseBlock.Activation);
            current = b;
        }
        _hr.Forward(current, 1, h, w, a, _memory.Workspace, activation: ResidualDenseBlock.Activation);
        _last.Forward(a, 1, h, w, y, _memory.Workspace);
    }

    private void Plan(int height, int width)
    {
        if (_memory.IsPlannedFor(height, width))
        {
            return;
        }
        _memory.Release();
        _first.Plan(_memory.Workspace, 1, height, width);
        foreach (Rrdb block in _trunk) block.Plan(_memory.Workspace, height, width);
        _body.Plan(_memory.Workspace, 1, height, width);
        int h = height, w = width;
        foreach (Conv2d up in _ups)
        {
            h *= 2;
            w *= 2;
            up.Plan(_memory.Workspace, 1, h, w);
        }
        _hr.Plan(_memory.Workspace, 1, h, w);
        _last.Plan(_memory.Workspace, 1, h, w);
        long pixels = (long)height * width;
        int f = _config.Features;
        long floats = pixels * (3L * f + f + 4L * _config.GrowthChannels) + 2 * (pixels << (2 * _ups.Length)) * f;
        _memory.Allocate(height, width, floats);
    }

    /// <summary>Frees the activation buffers (hundreds of MB for a 192-pixel tile); the next call plans them again.</summary>
    public void ReleaseBuffers() => _memory.Release();

    public void Dispose()
    {
        _memory.Dispose();
        _first.Dispose();
        foreach (Rrdb block in _trunk) block.Dispose();
        _body.Dispose();
        foreach (Conv2d up in _ups) up.Dispose();
        _hr.Dispose();
        _last.Dispose();
    }
}
