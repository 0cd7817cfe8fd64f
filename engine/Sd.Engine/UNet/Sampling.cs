using Sd.Engine.Modules;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.UNet;

/// <summary>
/// Nearest up-sampling to a target size (the skip tensor's: 2x, or not quite when a size was odd on the way down,
/// e.g. 7 -> 14 -> 27 for 27-pixel latents), then a 3x3 convolution.
/// Reference: diffusers Upsample2D (upsampling.py) with use_conv and output_size, interpolate(mode="nearest").
/// </summary>
internal sealed unsafe class Upsample2D : IDisposable
{
    private readonly Conv2d _conv;

    public Upsample2D(WeightBinder binder, int channels, bool winograd)
    {
        _conv = new Conv2d(binder.Child("conv"), channels, channels, winograd: winograd);
    }

    public void Plan(Workspace workspace, int batch, int outHeight, int outWidth)
    {
        workspace.Need(Scratch.Upsampled, (long)batch * outHeight * outWidth * _conv.InChannels);
        _conv.Plan(workspace, batch, outHeight, outWidth);
    }

    public void Forward(float* x, int batch, int height, int width, float* y, int outHeight, int outWidth, Workspace ws)
    {
        float* upsampled = ws[Scratch.Upsampled];
        ResizeKernels.Nearest(x, upsampled, batch, height, width, outHeight, outWidth, _conv.InChannels);
        _conv.Forward(upsampled, batch, outHeight, outWidth, y, ws);
    }

    public void Dispose() => _conv.Dispose();
}
