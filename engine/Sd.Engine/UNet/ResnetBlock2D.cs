using Sd.Engine.Modules;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Gemm;

namespace Sd.Engine.UNet;

/// <summary>
/// out = conv2(silu(norm2(conv1(silu(norm1(x))) + proj(temb)))) + shortcut(x). GroupNorm+SiLU run fused; the
/// time embedding joins conv1's bias (one bias vector per image); the shortcut (identity or 1x1 conv) is the residual
/// fused into conv2's output. Also serves the VAE (no time embedding).
/// Reference: diffusers ResnetBlock2D (resnet.py), output_scale_factor 1.
/// </summary>
public sealed unsafe class ResnetBlock2D : IDisposable
{
    private readonly GroupNormModule _norm1;
    private readonly Conv2d _conv1;
    private readonly Linear? _timeEmbProj;
    private readonly GroupNormModule _norm2;
    private readonly Conv2d _conv2;
    private readonly Conv2d? _convShortcut;

    public ResnetBlock2D(WeightBinder binder, int inChannels, int outChannels, int tembChannels, int groups, double eps,
        bool winograd = true)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        _norm1 = new GroupNormModule(binder.Child("norm1"), groups, inChannels, eps);
        _conv1 = new Conv2d(binder.Child("conv1"), inChannels, outChannels, winograd: winograd);
        _timeEmbProj = tembChannels > 0 ? new Linear(binder.Child("time_emb_proj"), tembChannels, outChannels) : null;
        _norm2 = new GroupNormModule(binder.Child("norm2"), groups, outChannels, eps);
        _conv2 = new Conv2d(binder.Child("conv2"), outChannels, outChannels, winograd: winograd);
        _convShortcut = inChannels != outChannels ? new Conv2d(binder.Child("conv_shortcut"), inChannels, outChannels, kernel: 1) : null;
    }

    public int InChannels { get; }

    public int OutChannels { get; }

    public void Plan(Workspace workspace, int batch, int height, int width)
    {
        long pixels = (long)batch * height * width;
        workspace.Need(Scratch.ResnetNorm, pixels * InChannels);
        workspace.Need(Scratch.ResnetHidden, pixels * OutChannels);
        workspace.Need(Scratch.ResnetBias, (long)batch * OutChannels);
        _conv1.Plan(workspace, batch, height, width);
        _conv2.Plan(workspace, batch, height, width);
    }

    /// <summary>
    /// y [N, H, W, Cout] = block(x [N, H, W, Cin], siluTemb [N, temb]); y must not overlap x.
    /// </summary>
    public void Forward(float* x, int batch, int height, int width, float* siluTemb, float* y, Workspace ws)
    {
        int pixels = height * width;
        float* normed = ws[Scratch.ResnetNorm];
        float* hidden = ws[Scratch.ResnetHidden];
        _norm1.Forward(x, normed, batch, pixels, Activation.Silu);
        if (_timeEmbProj != null)
        {
            // bias[n] = conv1.bias + time_emb_proj(silu(temb))[n]
            float* bias = ws[Scratch.ResnetBias];
            for (int n = 0; n < batch; n++)
            {
                new Span<float>(_conv1.Bias, OutChannels).CopyTo(new Span<float>(bias + (long)n * OutChannels, OutChannels));
            }
            GemmKernels.Multiply(batch, siluTemb, _timeEmbProj.InFeatures, _timeEmbProj.Weight, bias, OutChannels,
                _timeEmbProj.BiasPointer, bias, OutChannels);
            _conv1.Forward(normed, batch, height, width, hidden, ws, bias: bias, biasPerImage: true);
        }
        else
        {
            _conv1.Forward(normed, batch, height, width, hidden, ws);
        }
        _norm2.Forward(hidden, hidden, batch, pixels, Activation.Silu);
        float* residual = x;
        if (_convShortcut != null)
        {
            _convShortcut.Forward(x, batch, height, width, y, ws);
            residual = y;
        }
        _conv2.Forward(hidden, batch, height, width, y, ws, residual: residual);
    }

    public void Dispose()
    {
        _norm1.Dispose();
        _conv1.Dispose();
        _timeEmbProj?.Dispose();
        _norm2.Dispose();
        _conv2.Dispose();
        _convShortcut?.Dispose();
    }
}
