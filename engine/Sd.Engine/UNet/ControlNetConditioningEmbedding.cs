using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.UNet;

/// <summary>
/// The small network that brings a ControlNet's conditioning image down to the latents' size: conv_in and SiLU, then
/// per stage a 3x3 convolution and a stride-2 3x3 convolution, each followed by SiLU, then conv_out to conv_in's
/// width of the UNet. It depends on the image alone, so a sampling loop runs it once (see <see cref="ControlNetModel"/>).
/// Reference: diffusers ControlNetConditioningEmbedding (controlnet.py, 0.27).
/// </summary>
internal sealed unsafe class ControlNetConditioningEmbedding : IDisposable
{
    private readonly Conv2d _convIn;
    private readonly Conv2d[] _blocks;
    private readonly Conv2d _convOut;

    public ControlNetConditioningEmbedding(WeightBinder binder, int imageChannels, int[] stages, int outChannels)
    {
        _convIn = new Conv2d(binder.Child("conv_in"), imageChannels, stages[0]);
        _blocks = new Conv2d[2 * (stages.Length - 1)];
        for (int i = 0; i < stages.Length - 1; i++)
        {
            _blocks[2 * i] = new Conv2d(binder.Child("blocks").Child(2 * i), stages[i], stages[i]);
            _blocks[2 * i + 1] = new Conv2d(binder.Child("blocks").Child(2 * i + 1), stages[i], stages[i + 1], stride: 2);
        }
        _convOut = new Conv2d(binder.Child("conv_out"), stages[^1], outChannels);
    }

    /// <summary>Declares the Winograd scratch of every layer for an image batch of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public void Plan(Workspace workspace, int batch, int height, int width)
    {
        _convIn.Plan(workspace, batch, height, width);
        foreach (Conv2d conv in _blocks)
        {
            conv.Plan(workspace, batch, height, width);
            if (conv.Template.StrideH == 2) (height, width) = (OutSize(height), OutSize(width));
        }
        _convOut.Plan(workspace, batch, height, width);
    }

    /// <summary>
    /// output [batch, H / 2^(stages - 1), W / 2^(stages - 1), outChannels] = embedding(image [batch, H, W, channels]).
    /// The activations between layers live in two blocks allocated for the call: it runs once per conditioning image.
    /// </summary>
    public void Forward(float* image, int batch, int height, int width, float* output, Workspace ws)
    {
        long largest = (long)batch * height * width * _convIn.OutChannels;
        int h = height, w = width;
        foreach (Conv2d conv in _blocks)
        {
            if (conv.Template.StrideH == 2) (h, w) = (OutSize(h), OutSize(w));
            largest = Math.Max(largest, (long)batch * h * w * conv.OutChannels);
        }
        using var a = new NativeBlock(largest, zero: false);
        using var b = new NativeBlock(largest, zero: false);
        float* current = a.Pointer, next = b.Pointer;
        (h, w) = (height, width);
        _convIn.Forward(image, batch, h, w, current, ws);
        Pointwise.Apply(Activation.Silu, current, current, (nint)((long)batch * h * w * _convIn.OutChannels));
        foreach (Conv2d conv in _blocks)
        {
            conv.Forward(current, batch, h, w, next, ws);
            if (conv.Template.StrideH == 2) (h, w) = (OutSize(h), OutSize(w));
            Pointwise.Apply(Activation.Silu, next, next, (nint)((long)batch * h * w * conv.OutChannels));
            float* done = next;
            next = current;
            current = done;
        }
        _convOut.Forward(current, batch, h, w, output, ws);
    }

    /// <summary>A stride-2 3x3 convolution padded by 1: ceil(size / 2).</summary>
    private static int OutSize(int size) => (size + 1) / 2;

    public void Dispose()
    {
        _convIn.Dispose();
        foreach (Conv2d conv in _blocks) conv.Dispose();
        _convOut.Dispose();
    }
}
