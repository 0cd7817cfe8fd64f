using Sd.Engine.Modules;
using Sd.Engine.UNet;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Vae;

/// <summary>
/// The VAE's ResNet stacks: each resolution level of the encoder (resnets, then a stride-2 downsampler that pads
/// only right and bottom) or decoder (resnets, then 2x nearest up-sampling and a convolution), and the mid block
/// (resnet, attention, resnet). No time embedding; GroupNorm eps 1e-6. Buffers alternate between two ping-pong
/// blocks; each call returns the one holding its output.
/// Reference: diffusers DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D (unet_2d_blocks.py).
/// </summary>
internal sealed unsafe class VaeLevel : IDisposable
{
    private const double Eps = 1e-6;
    private readonly ResnetBlock2D[] _resnets;
    private readonly Conv2d? _downsampler;
    private readonly Conv2d? _upsampler;
    private readonly VaeAttention? _attention;

    private VaeLevel(ResnetBlock2D[] resnets, Conv2d? downsampler, Conv2d? upsampler, VaeAttention? attention)
    {
        _resnets = resnets;
        _downsampler = downsampler;
        _upsampler = upsampler;
        _attention = attention;
    }

    public int OutChannels => _resnets[^1].OutChannels;

    public static VaeLevel Encoder(WeightBinder binder, int inChannels, int outChannels, int layers, int groups, bool downsample)
    {
        ResnetBlock2D[] resnets = Resnets(binder, inChannels, outChannels, layers, groups);
        Conv2d? down = downsample
            ? new Conv2d(binder.Child("downsamplers").Child(0).Child("conv"), outChannels, outChannels, 3, 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1)
            : null;
        return new VaeLevel(resnets, down, null, null);
    }

    public static VaeLevel Decoder(WeightBinder binder, int inChannels, int outChannels, int layers, int groups, bool upsample)
    {
        ResnetBlock2D[] resnets = Resnets(binder, inChannels, outChannels, layers, groups);
        Conv2d? up = upsample ? new Conv2d(binder.Child("upsamplers").Child(0).Child("conv"), outChannels, outChannels) : null;
        return new VaeLevel(resnets, null, up, null);
    }

    public static VaeLevel Mid(WeightBinder binder, int channels, int groups, bool attention)
    {
        var resnets = new[]
        {
            new ResnetBlock2D(binder.Child("resnets").Child(0), channels, channels, 0, groups, Eps),
            new ResnetBlock2D(binder.Child("resnets").Child(1), channels, channels, 0, groups, Eps),
        };
        return new VaeLevel(resnets, null, null, attention ? new VaeAttention(binder.Child("attentions").Child(0), channels, groups) : null);
    }

    private static ResnetBlock2D[] Resnets(WeightBinder binder, int inChannels, int outChannels, int layers, int groups)
    {
        var resnets = new ResnetBlock2D[layers];
        for (int j = 0; j < layers; j++)
        {
            resnets[j] = new ResnetBlock2D(binder.Child("resnets").Child(j), j == 0 ? inChannels : outChannels, outChannels, 0, groups, Eps);
        }
        return resnets;
    }

    /// <summary>Output size of this level for an input of height x width.</summary>
    public (int Height, int Width) OutputSize(int height, int width)
    {
        if (_downsampler != null)
        {
            Sd.Kernels.Convolution.ConvShape shape = _downsampler.Shape(1, height, width);
            return (shape.OutHeight, shape.OutWidth);
        }
        return _upsampler != null ? (2 * height, 2 * width) : (height, width);
    }

    /// <summary>Declares workspace needs and the largest ping-pong buffer (floats) this level uses.</summary>
    public long Plan(Workspace workspace, int batch, int height, int width)
    {
        long largest = 0;
        foreach (ResnetBlock2D resnet in _resnets)
        {
            resnet.Plan(workspace, batch, height, width);
            largest = Math.Max(largest, (long)batch * height * width * resnet.OutChannels);
        }
        _attention?.Plan(workspace, batch, height, width);
        (int outH, int outW) = OutputSize(height, width);
        if (_downsampler != null)
        {
            _downsampler.Plan(workspace, batch, height, width);
        }
        if (_upsampler != null)
        {
            workspace.Need(Scratch.Upsampled, (long)batch * outH * outW * OutChannels);
            _upsampler.Plan(workspace, batch, outH, outW);
        }
        return Math.Max(largest, (long)batch * outH * outW * OutChannels);
    }

    /// <summary>Runs the level on x (which may be pingA or pingB or another buffer); returns the output buffer.</summary>
    public float* Forward(float* x, int batch, int height, int width, float* pingA, float* pingB, Workspace ws)
    {
        for (int j = 0; j < _resnets.Length; j++)
        {
            float* output = x == pingA ? pingB : pingA;
            _resnets[j].Forward(x, batch, height, width, null, output, ws);
            x = output;
            if (j == 0 && _attention != null)
            {
                _attention.Forward(x, batch, height, width, ws);
            }
        }
        if (_downsampler != null)
        {
            float* output = x == pingA ? pingB : pingA;
            _downsampler.Forward(x, batch, height, width, output, ws);
            x = output;
        }
        if (_upsampler != null)
        {
            float* upsampled = ws[Scratch.Upsampled];
            ResizeKernels.Nearest(x, upsampled, batch, height, width, 2 * height, 2 * width, OutChannels);
            float* output = x == pingA ? pingB : pingA;
            _upsampler.Forward(upsampled, batch, 2 * height, 2 * width, output, ws);
            x = output;
        }
        return x;
    }

    public void Dispose()
    {
        foreach (ResnetBlock2D resnet in _resnets) resnet.Dispose();
        _downsampler?.Dispose();
        _upsampler?.Dispose();
        _attention?.Dispose();
    }
}
