using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Convolution;
using Sd.Loaders.Upscalers;
using Sd.Loaders.Weights;

namespace Sd.Engine.Upscaling;

/// <summary>
/// Real-ESRGAN's compact generator on one NHWC picture (batch 1): a 3x3 convolution and PReLU, then convolution and
/// PReLU pairs at the picture's size, a last convolution to OutChannels x s^2 channels, a pixel shuffle by s, and the
/// picture itself upscaled by nearest neighbour added on. Buffers are planned per input size and kept until the size
/// changes. Reference: BasicSR SRVGGNetCompact (srvgg_arch.py).
/// </summary>
internal sealed unsafe class CompactNet : IUpscaleNetwork
{
    private readonly EsrganConfig _config;
    private readonly Conv2d[] _convs;      // body.0, body.2, ..., body.2B: each followed by PReLU
    private readonly NativeBlock[] _slopes; // body.1, body.3, ..., body.2B+1: [features]
    private readonly Conv2d _last;

    private readonly PlannedBuffers _memory = new();

    public CompactNet(EsrganConfig config, WeightSet weights)
    {
        _config = config;
        using var binder = new WeightBinder(weights);
        WeightBinder body = binder.Child("body");
        int f = config.Features;
        _convs = new Conv2d[config.Blocks + 1];
        _slopes = new NativeBlock[config.Blocks + 1];
        for (int i = 0; i < _convs.Length; i++)
        {
            _convs[i] = new Conv2d(body.Child(2 * i), i == 0 ? config.InChannels : f, f);
            _slopes[i] = body.Child(2 * i + 1).Load("weight", [f]);
        }
        int s = config.PixelShuffle;
        _last = new Conv2d(body.Child(2 * _convs.Length), f, config.OutChannels * s * s);
        binder.RequireAllUsed();
    }

    /// <summary>y [H x s, W x s, C] = the network on x [H, W, C] (NHWC floats). Not thread safe: the buffers are the network's own.</summary>
    public void Forward(float* x, int height, int width, float* y)
    {
        Plan(height, width);
        int f = _config.Features, s = _config.PixelShuffle, c = _config.OutChannels;
        nint pixels = (nint)height * width;
        float* a = _memory.Block.Pointer;     // [pixels, F]
        float* b = a + pixels * f;        // [pixels, F]
        float* shuffled = b + pixels * f; // [pixels, C x s^2]
        float* current = x;
        for (int i = 0; i < _convs.Length; i++)
        {
            float* next = i % 2 == 0 ? a : b;
            _convs[i].Forward(current, 1, height, width, next, _memory.Workspace, activation: ConvActivation.Prelu(_slopes[i].Pointer));
            current = next;
        }
        _last.Forward(current, 1, height, width, shuffled, _memory.Workspace);
        // pixel_shuffle(out)[y s + i, x s + j, k] = out[y, x, k s^2 + i s + j], then + interpolate(x, nearest)[.., k].
        int ow = width * s;
        for (int py = 0; py < height; py++)
        {
            for (int px = 0; px < width; px++)
            {
                float* from = shuffled + ((nint)py * width + px) * c * s * s;
                float* picture = x + ((nint)py * width + px) * c;
                for (int i = 0; i < s; i++)
                {
                    for (int j = 0; j < s; j++)
                    {
                        float* to = y + ((nint)(py * s + i) * ow + px * s + j) * c;
                        for (int k = 0; k < c; k++)
                        {
                            to[k] = from[k * s * s + i * s + j] + picture[k];
                        }
                    }
                }
            }
        }
    }

    private void Plan(int height, int width)
    {
        if (_memory.IsPlannedFor(height, width))
        {
            return;
        }
        _memory.Release();
        foreach (Conv2d conv in _convs) conv.Plan(_memory.Workspace, 1, height, width);
        _last.Plan(_memory.Workspace, 1, height, width);
        long pixels = (long)height * width;
        int s = _config.PixelShuffle;
        _memory.Allocate(height, width, pixels * (2L * _config.Features + _config.OutChannels * s * s));
    }

    public void ReleaseBuffers() => _memory.Release();

    public void Dispose()
    {
        _memory.Dispose();
        foreach (Conv2d conv in _convs) conv.Dispose();
        foreach (NativeBlock slopes in _slopes) slopes.Dispose();
        _last.Dispose();
    }
}
