using Sd.Engine.Tensors;
using Sd.Kernels.Convolution;
using Sd.Kernels.Gemm;

namespace Sd.Engine.Modules;

/// <summary>
/// A 2-D convolution over NHWC activations, its algorithm chosen at load from the shape: 1x1 as a GEMM, 3x3 stride 1
/// as Winograd F(4x4,3x3) when both channel counts make the GEMMs worthwhile (with stored transformed weights when
/// the caller allows their memory, else transforming the loaded weights per call for calls of enough tiles), at most
/// 8 outputs (conv_out) as dot products, everything else (strided, few input channels, tiny images) as implicit
/// GEMM. Reference: torch.nn.Conv2d.
/// </summary>
public sealed unsafe class Conv2d : IDisposable
{
    /// <summary>Below this many input or output channels Winograd's transforms cost more than they save.</summary>
    private const int WinogradMinChannels = 16;

    private readonly PackedWeights? _gemm;
    private readonly WinogradWeights? _winograd;
    private readonly FewOutputsWeights? _fewOutputs;

    /// <summary>
    /// A Winograd-shaped layer without stored transformed weights runs Winograd with its weights transformed per call
    /// (<see cref="WinogradConv.RunStreamed"/>) from this many 4x4 tiles per call; below, implicit GEMM is faster
    /// (SD 1.5's 1280-channel layers, 2 threads: 8 tiles (8x8 latents, batch 2) 9.4 vs 10.9 ms, 2560 -> 1280 channels
    /// 19.6 vs 24.2 ms; 4 tiles 10.3 vs 7.0 ms).
    /// </summary>
    private const int StreamedMinTiles = 8;

    private readonly bool _streamed;
    private readonly NativeBlock _bias;

    /// <param name="winograd">
    /// false keeps the 3x3 weights as loaded (stored transformed weights would take 4x the float32 memory): the layer
    /// then runs streamed Winograd, or implicit GEMM on small images.
    /// </param>
    public Conv2d(WeightBinder binder, int inChannels, int outChannels, int kernel = 3, int stride = 1,
        int padTop = -1, int padLeft = -1, int padBottom = -1, int padRight = -1, bool winograd = true)
    {
        int pad = kernel / 2;
        Template = new ConvShape(1, 1, 1, inChannels, outChannels, kernel, kernel, stride, stride,
            padTop < 0 ? pad : padTop, padLeft < 0 ? pad : padLeft, padBottom < 0 ? pad : padBottom, padRight < 0 ? pad : padRight);
        long[] shape = [outChannels, inChannels, kernel, kernel];
        _bias = binder.Load("bias", [outChannels]);
        bool winogradShape = Template.IsWinogradCandidate && inChannels >= WinogradMinChannels && outChannels >= WinogradMinChannels;
        if (winograd && winogradShape)
        {
            // Transformed weights are float32 whatever the stored format: 16-bit would not hold U = G g G^T exactly.
            _winograd = WinogradWeights.Create(binder.Stage(["weight"], shape), outChannels, inChannels, GemmKernels.PanelWidth);
        }
        else if (outChannels <= FewOutputsConv.MaxOutChannels && !Template.IsPointwise && kernel * kernel <= FewOutputsConv.MaxTaps)
        {
            _fewOutputs = new FewOutputsWeights(binder.Stage(["weight"], shape), outChannels, inChannels, kernel, kernel);
        }
        else
        {
            void* w = binder.StageNative(["weight"], shape, out WeightFormat format);
            _gemm = ImplicitGemmConv.PackWeights(w, format, outChannels, inChannels, kernel, kernel, GemmKernels.PanelWidth);
            _streamed = winogradShape;
        }
    }

    /// <summary>Channels, kernel, stride and padding (batch and size are per call).</summary>
    public ConvShape Template { get; }

    public int InChannels => Template.InChannels;

    public int OutChannels => Template.OutChannels;

    public float* Bias => _bias.Pointer;

    public ConvShape Shape(int batch, int height, int width) => Template with { Batch = batch, Height = height, Width = width };

    /// <summary>Declares this layer's workspace needs for a run shape.</summary>
    public void Plan(Workspace workspace, int batch, int height, int width)
    {
        if (_winograd != null)
        {
            workspace.Need(Scratch.Winograd, WinogradConv.WorkspaceFloats(batch, height, width, InChannels, OutChannels));
        }
        else if (Streams(batch, height, width))
        {
            workspace.Need(Scratch.Winograd, WinogradConv.StreamedWorkspaceFloats(batch, height, width, InChannels, OutChannels));
        }
    }

    /// <summary>
    /// y [N, OH, OW, Cout] = conv(x [N, H, W, Cin]) + bias (+ residual, same layout as y; may be y itself). x's pixels
    /// are <paramref name="inputStride"/> floats apart (0: Cin) and y's <paramref name="outputStride"/> (0: Cout), so
    /// either may be a channel slice of a wider tensor.
    /// <paramref name="bias"/> defaults to the layer's own; with <paramref name="biasPerImage"/> it holds one
    /// Cout vector per image (a ResNet's conv bias + time embedding). <paramref name="activation"/> applies to the
    /// result: in the Winograd output transform's store (a separate pass over y cost an upscaler 2-4%), else after it.
    /// Only Winograd layers use the workspace.
    /// </summary>
    public void Forward(float* x, int batch, int height, int width, float* y, Workspace? workspace,
        float* residual = null, float* bias = null, bool biasPerImage = false, int inputStride = 0, int outputStride = 0,
        ConvActivation activation = default)
    {
        ConvShape shape = Shape(batch, height, width) with { InputStride = inputStride }; // each kernel checks the strides
        int ldx = shape.PixelStride;
        int ldy = outputStride == 0 ? OutChannels : outputStride;
        bias = bias == null ? _bias.Pointer : bias;
        if (_winograd != null || Streams(batch, height, width))
        {
            float* scratch = (workspace ?? throw new InvalidOperationException("a Winograd convolution needs a planned workspace"))[Scratch.Winograd];
            if (_winograd != null)
            {
                WinogradConv.Run(GemmKernels.Selected, batch, height, width, x, _winograd, bias, biasPerImage, residual, ldy, y, ldy, scratch, ldx, activation);
            }
            else
            {
                WinogradConv.RunStreamed(GemmKernels.Selected, batch, height, width, x, _gemm!, bias, biasPerImage, residual, ldy, y, ldy, scratch, ldx, activation);
            }
            return;
        }
        if (_fewOutputs != null)
        {
            FewOutputsConv.Run(shape, x, _fewOutputs, bias, biasPerImage, residual, ldy, y, ldy);
        }
        else if (!shape.IsPointwise)
        {
            ImplicitGemmConv.Run(GemmKernels.Selected, shape, x, _gemm!, bias, biasPerImage, residual, ldy, y, ldy);
        }
        else if (!biasPerImage)
        {
            Pointwise(batch * height * width, x, ldx, bias, residual, y, ldy);
        }
        else
        {
            // One GEMM per image, so each gets its own bias vector.
            long inImage = (long)height * width * ldx, outImage = (long)height * width * ldy;
            for (int n = 0; n < batch; n++)
            {
                Pointwise(height * width, x + n * inImage, ldx, bias + (long)n * OutChannels, residual == null ? null : residual + n * outImage, y + n * outImage, ldy);
            }
        }
        activation.ApplyTo(y, (nint)batch * shape.OutHeight * shape.OutWidth, OutChannels, ldy);
    }

    private bool Streams(int batch, int height, int width) => _streamed && (long)batch * ((height + 3) / 4) * ((width + 3) / 4) >= StreamedMinTiles;

    private void Pointwise(int pixels, float* x, int ldx, float* bias, float* residual, float* y, int ldy) =>
        GemmKernels.Multiply(pixels, x, ldx, _gemm!, y, ldy, bias, residual, ldy);

    public long SizeInBytes => (_gemm?.SizeInBytes ?? 0) + (_winograd?.SizeInBytes ?? 0) + (_fewOutputs?.SizeInBytes ?? 0) + _bias.Length * sizeof(float);

    public void Dispose()
    {
        _gemm?.Dispose();
        _winograd?.Dispose();
        _fewOutputs?.Dispose();
        _bias.Dispose();
    }
}
