using Sd.Kernels.Gemm;

namespace Sd.Kernels.Convolution;

/// <summary>
/// Any convolution as a GEMM without materializing im2col: the GEMM's A packer gathers each MR-row micro-panel
/// straight from the NHWC input (row = output pixel, column = (ky, kx, ci)), writing zeros for padding. Weights are
/// packed once with K in the same (ky, kx, ci) order. Used for strided (downsampling) convolutions, layers with
/// few channels (conv_in, conv_out), and as the fast direct-convolution baseline for Winograd.
/// </summary>
public static unsafe class ImplicitGemmConv
{
    /// <summary>
    /// Packs PyTorch weights [Cout, Cin, kh, kw] as W [Cout, kh*kw*Cin] in (ky, kx, ci) order for the selected GEMM.
    /// </summary>
    public static PackedWeights PackWeights(float* weights, int outChannels, int inChannels, int kernelH, int kernelW,
        int panelWidth) =>
        PackWeights(weights, WeightFormat.F32, outChannels, inChannels, kernelH, kernelW, panelWidth);

    /// <summary>As above for weights stored as <paramref name="format"/> (F16/BF16 stay 16-bit).</summary>
    public static PackedWeights PackWeights(void* weights, WeightFormat format, int outChannels, int inChannels,
        int kernelH, int kernelW, int panelWidth) =>
        PackedWeights.PackConvolution(weights, format, outChannels, inChannels, kernelH * kernelW, panelWidth);

    private struct Im2ColSource
    {
        public float* Input;
        public ConvShape Shape;
        public int OutHeight;
        public int OutWidth;
        public float* Zeros; // at least Cin zeros, read by taps in the padding
    }

    /// <summary>
    /// output[N, OH, OW, Cout] = conv(input) (+ bias) (+ residual [N, OH, OW, Cout]). Pixel rows of the output and
    /// the residual are <paramref name="outputStride"/> / <paramref name="residualStride"/> floats apart (>= Cout),
    /// so a convolution can write into, or read from, a channel slice of a wider tensor.
    /// </summary>
    public static void Run(GemmVariant variant, in ConvShape shape, float* input, PackedWeights weights,
        float* bias, float* residual, int residualStride, float* output, int outputStride) =>
        Run(variant, shape, input, weights, bias, false, residual, residualStride, output, outputStride);

    /// <summary>As above; with <paramref name="biasPerImage"/>, <paramref name="bias"/> holds one Cout vector per image.</summary>
    public static void Run(GemmVariant variant, in ConvShape shape, float* input, PackedWeights weights,
        float* bias, bool biasPerImage, float* residual, int residualStride, float* output, int outputStride)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(
            shape.KernelH == 3 && shape.KernelW == 3 && shape.StrideH == 1 ? Diagnostics.KernelKind.Conv3x3 : Diagnostics.KernelKind.ConvOther,
            new Diagnostics.KernelShape("conv{5}x{5} stride {6} implicit GEMM {0}x{1}x{2}, {3} to {4} channels",
                shape.Batch, shape.Height, shape.Width, shape.InChannels, shape.OutChannels, shape.KernelH, shape.StrideH));
        shape.Validate();
        if (weights.N != shape.OutChannels || weights.K != shape.PatchSize)
        {
            throw new ArgumentException($"weights are [{weights.N}, {weights.K}], convolution {shape} needs [{shape.OutChannels}, {shape.PatchSize}]", nameof(weights));
        }
        var source = new Im2ColSource
        {
            Input = input, Shape = shape, OutHeight = shape.OutHeight, OutWidth = shape.OutWidth,
            Zeros = ConvPatches.Zeros(shape.InChannels),
        };
        var args = new GemmArgs
        {
            M = shape.Batch * shape.OutHeight * shape.OutWidth,
            A = new APacker { Pack = &PackIm2Col, State = &source },
            W = new PackedWeightsView(weights),
            C = output,
            Ldc = outputStride,
        };
        GemmKernels.SetEpilogue(ref args, bias, residual, residualStride);
        args.BiasRows = biasPerImage ? shape.OutHeight * shape.OutWidth : 0;
        GemmKernels.Run(variant, ref args);
    }

    /// <summary>Gathers rows [row0, row0+rows) x patch columns [k0, k0+kc) into k-major MR-row micro-panels.</summary>
    private static void PackIm2Col(void* state, int row0, int rows, int k0, int kc, int mr, float* packed)
    {
        Im2ColSource* src = (Im2ColSource*)state;
        int cin = src->Shape.InChannels;
        float** pixels = stackalloc float*[mr];
        int* origins = stackalloc int[3 * mr]; // per row: image, top input row, left input column of its patch
        for (int ir = 0; ir < rows; ir += mr)
        {
            float* panel = packed + ir * kc;
            int r = Math.Min(mr, rows - ir);
            for (int rr = 0; rr < r; rr++)
            {
                int* origin = origins + 3 * rr;
                ConvPatches.Origin(src->Shape, src->OutHeight, src->OutWidth, row0 + ir + rr, out origin[0], out origin[1], out origin[2]);
            }
            // Walk the patch columns in runs of contiguous input channels (one kernel tap each): per run, every row
            // reads one input pixel's channels, or zeros where the tap falls in the padding.
            for (int k = k0; k < k0 + kc;)
            {
                int tap = k / cin;
                int ci = k - tap * cin;
                int run = Math.Min(cin - ci, k0 + kc - k);
                for (int rr = 0; rr < r; rr++)
                {
                    pixels[rr] = TapPixel(src, origins + 3 * rr, tap, ci);
                }
                float* d = panel + (nint)(k - k0) * mr;
                int done = mr == PanelTranspose.Rows ? PanelTranspose.Pack14Rows(pixels, r, run, d) : 0;
                for (int rr = 0; rr < r; rr++)
                {
                    float* pixel = pixels[rr];
                    for (int i = done; i < run; i++) d[(nint)i * mr + rr] = pixel[i];
                }
                k += run;
            }
            GemmKernels.ZeroPadRows(panel, r, mr, kc);
        }
    }

    /// <summary>Input channels from <paramref name="ci"/> on at a tap of the patch at <paramref name="origin"/>, or zeros in the padding.</summary>
    private static float* TapPixel(Im2ColSource* src, int* origin, int tap, int ci)
    {
        int kernelW = src->Shape.KernelW;
        float* pixel = ConvPatches.Pixel(src->Shape, src->Input, origin[0], origin[1] + tap / kernelW, origin[2] + tap % kernelW);
        return pixel == null ? src->Zeros : pixel + ci;
    }
}
