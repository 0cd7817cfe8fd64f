using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Memory;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Convolution;

/// <summary>
/// Convolutions with at most <see cref="MaxOutChannels"/> outputs: the UNet's conv_out (4) and the VAE's (3 in the
/// decoder, 8 in the encoder). As a GEMM, N this small fills 4 or 8 of a 32-column panel and ran at 16 GFLOP/s
/// (SD 1.5 UNet conv_out, 64x64 latents, batch 2: 11.8 ms per step). Here each output is a dot product over the
/// patch instead: a block of 4 output pixels x 4 output channels accumulates in 16 vectors along the input
/// channels of every tap, then each vector is summed once. Input and output are NHWC, any size, stride and padding.
/// </summary>
public static unsafe class FewOutputsConv
{
    public const int MaxOutChannels = 8;

    /// <summary>Largest kernel area (kh x kw) handled: each task keeps 4 x taps row pointers on its stack.</summary>
    public const int MaxTaps = 64;

    /// <summary>Output pixels per register block.</summary>
    private const int Pixels = 4;

    /// <summary>Output channels per register block (weights are padded to a multiple with zero rows).</summary>
    private const int Outputs = 4;

    private static readonly delegate*<Job*, int, int, void> Kernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &RunPixels<Vector512<float>, F32x16>,
        SimdLevel.Vector256 => &RunPixels<Vector256<float>, F32x8>,
        _ => &RunPixels_Scalar,
    };

    private struct Job
    {
        public ConvShape Shape;
        public float* Input;
        public float* Weights;
        public float* Bias;
        public bool BiasPerImage;
        public float* Residual;
        public int ResidualStride;
        public float* Output;
        public int OutputStride;
        public int PixelsPerTask;
        public int Pixels;
        public int OutHeight;
        public int OutWidth;
        public float* Zeros; // at least Cin zeros, read by taps in the padding
        public delegate*<Job*, int, int, void> Kernel;
    }

    /// <summary>
    /// output[N, OH, OW, Cout] = conv(input) + bias (one Cout vector, or one per image with
    /// <paramref name="biasPerImage"/>; null for none) + residual (null for none). Pixel rows of the output and the
    /// residual are <paramref name="outputStride"/> / <paramref name="residualStride"/> floats apart.
    /// </summary>
    public static void Run(in ConvShape shape, float* input, FewOutputsWeights weights, float* bias, bool biasPerImage,
        float* residual, int residualStride, float* output, int outputStride) =>
        Run(Kernel, shape, input, weights, bias, biasPerImage, residual, residualStride, output, outputStride);

    /// <summary>The scalar variant (the test oracle for the vector ones).</summary>
    public static void Run_Scalar(in ConvShape shape, float* input, FewOutputsWeights weights, float* bias, bool biasPerImage,
        float* residual, int residualStride, float* output, int outputStride) =>
        Run(&RunPixels_Scalar, shape, input, weights, bias, biasPerImage, residual, residualStride, output, outputStride);

    private static void Run(delegate*<Job*, int, int, void> kernel, in ConvShape shape, float* input, FewOutputsWeights weights,
        float* bias, bool biasPerImage, float* residual, int residualStride, float* output, int outputStride)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.ConvOther,
            new Diagnostics.KernelShape("conv{5}x{5} few outputs {0}x{1}x{2}, {3} to {4} channels", shape.Batch, shape.Height, shape.Width,
                shape.InChannels, shape.OutChannels, shape.KernelH));
        shape.Validate();
        if (weights.OutChannels != shape.OutChannels || weights.InChannels != shape.InChannels
            || weights.KernelH != shape.KernelH || weights.KernelW != shape.KernelW)
        {
            throw new ArgumentException(
                $"weights are [{weights.OutChannels}, {weights.InChannels}, {weights.KernelH}, {weights.KernelW}], convolution {shape} needs [{shape.OutChannels}, {shape.InChannels}, {shape.KernelH}, {shape.KernelW}]",
                nameof(weights));
        }
        if (shape.KernelH * shape.KernelW > MaxTaps)
        {
            throw new ArgumentException($"convolution {shape} has more than {MaxTaps} kernel taps", nameof(shape));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(outputStride, shape.OutChannels);
        if (residual != null)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(residualStride, shape.OutChannels);
        }
        Diagnostics.FlopCounter.Add(shape.DirectFlops);
        int pixels = shape.Batch * shape.OutHeight * shape.OutWidth;
        var job = new Job
        {
            Shape = shape, Input = input, Weights = weights.Data, Bias = bias, BiasPerImage = biasPerImage,
            Residual = residual, ResidualStride = residualStride, Output = output, OutputStride = outputStride,
            Pixels = pixels, OutHeight = shape.OutHeight, OutWidth = shape.OutWidth,
            Zeros = ConvPatches.Zeros(shape.InChannels), Kernel = kernel,
        };
        int tasks = shape.DirectFlops < 1 << 22 ? 1 : Math.Min(WorkerPool.Shared.ThreadCount * 8, (pixels + Pixels - 1) / Pixels);
        job.PixelsPerTask = ((pixels + tasks - 1) / tasks + Pixels - 1) / Pixels * Pixels;
        tasks = (pixels + job.PixelsPerTask - 1) / job.PixelsPerTask;
        if (tasks == 1)
        {
            kernel(&job, 0, pixels);
        }
        else
        {
            WorkerPool.Shared.Run(&RunTask, &job, tasks);
        }
    }

    private static void RunTask(void* state, int index)
    {
        Job* job = (Job*)state;
        int first = index * job->PixelsPerTask;
        job->Kernel(job, first, Math.Min(first + job->PixelsPerTask, job->Pixels));
    }

    /// <summary>Output pixels [first, last): blocks of 4 pixels (the last block repeats its last pixel) x 4 outputs.</summary>
    [SkipLocalsInit]
    private static void RunPixels<TVec, V>(Job* job, int first, int last)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        ConvShape s = job->Shape;
        int taps = s.KernelH * s.KernelW;
        int patch = s.PatchSize;
        float** pixelTaps = stackalloc float*[Pixels * taps];
        float* sums = stackalloc float[Pixels * Outputs];
        for (int m = first; m < last; m += Pixels)
        {
            int count = Math.Min(Pixels, last - m);
            for (int p = 0; p < Pixels; p++)
            {
                GatherTaps(job, m + Math.Min(p, count - 1), pixelTaps + p * taps);
            }
            for (int o = 0; o < s.OutChannels; o += Outputs)
            {
                Block<TVec, V>(pixelTaps, taps, s.InChannels, job->Weights + (nint)o * patch, patch, sums);
                Store(job, m, count, o, sums);
            }
        }
    }

    /// <summary>
    /// sums[p * 4 + o] = the dot product of pixel p's patch (its tap rows in <paramref name="pixelTaps"/>, p-major)
    /// with weight row o (rows <paramref name="patch"/> floats apart).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block<TVec, V>(float** pixelTaps, int taps, int channels, float* w, int patch, float* sums)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        TVec s00 = V.Zero, s01 = V.Zero, s02 = V.Zero, s03 = V.Zero, s10 = V.Zero, s11 = V.Zero, s12 = V.Zero, s13 = V.Zero;
        TVec s20 = V.Zero, s21 = V.Zero, s22 = V.Zero, s23 = V.Zero, s30 = V.Zero, s31 = V.Zero, s32 = V.Zero, s33 = V.Zero;
        int vectorized = channels - channels % V.Count;
        for (int t = 0; t < taps; t++)
        {
            float* x0 = pixelTaps[t], x1 = pixelTaps[taps + t], x2 = pixelTaps[2 * taps + t], x3 = pixelTaps[3 * taps + t];
            float* w0 = w + (nint)t * channels;
            float* w1 = w0 + patch, w2 = w1 + patch, w3 = w2 + patch;
            for (int c = 0; c < vectorized; c += V.Count)
            {
                TVec a0 = V.Load(x0 + c), a1 = V.Load(x1 + c), a2 = V.Load(x2 + c), a3 = V.Load(x3 + c);
                TVec b = V.Load(w0 + c);
                s00 = V.FusedMultiplyAdd(a0, b, s00); s10 = V.FusedMultiplyAdd(a1, b, s10);
                s20 = V.FusedMultiplyAdd(a2, b, s20); s30 = V.FusedMultiplyAdd(a3, b, s30);
                b = V.Load(w1 + c);
                s01 = V.FusedMultiplyAdd(a0, b, s01); s11 = V.FusedMultiplyAdd(a1, b, s11);
                s21 = V.FusedMultiplyAdd(a2, b, s21); s31 = V.FusedMultiplyAdd(a3, b, s31);
                b = V.Load(w2 + c);
                s02 = V.FusedMultiplyAdd(a0, b, s02); s12 = V.FusedMultiplyAdd(a1, b, s12);
                s22 = V.FusedMultiplyAdd(a2, b, s22); s32 = V.FusedMultiplyAdd(a3, b, s32);
                b = V.Load(w3 + c);
                s03 = V.FusedMultiplyAdd(a0, b, s03); s13 = V.FusedMultiplyAdd(a1, b, s13);
                s23 = V.FusedMultiplyAdd(a2, b, s23); s33 = V.FusedMultiplyAdd(a3, b, s33);
            }
        }
        sums[0] = V.Sum(s00); sums[1] = V.Sum(s01); sums[2] = V.Sum(s02); sums[3] = V.Sum(s03);
        sums[4] = V.Sum(s10); sums[5] = V.Sum(s11); sums[6] = V.Sum(s12); sums[7] = V.Sum(s13);
        sums[8] = V.Sum(s20); sums[9] = V.Sum(s21); sums[10] = V.Sum(s22); sums[11] = V.Sum(s23);
        sums[12] = V.Sum(s30); sums[13] = V.Sum(s31); sums[14] = V.Sum(s32); sums[15] = V.Sum(s33);
        // The channels past the last whole vector, after the accumulators are summed: a call while they are live
        // makes the JIT keep all 16 in memory through the loop (no vector register survives a call).
        if (vectorized < channels)
        {
            for (int t = 0; t < taps; t++)
            {
                TailDot(pixelTaps, taps, t, vectorized, channels, w + (nint)t * channels, patch, sums);
            }
        }
    }

    /// <summary>Channels [from, to) of tap t, for every (pixel, output) pair: the remainder after the vectors.</summary>
    private static void TailDot(float** pixelTaps, int taps, int t, int from, int to, float* w0, int patch, float* sums)
    {
        for (int p = 0; p < Pixels; p++)
        {
            float* x = pixelTaps[p * taps + t];
            for (int o = 0; o < Outputs; o++)
            {
                float* w = w0 + (nint)o * patch;
                float sum = 0;
                for (int c = from; c < to; c++)
                {
                    sum += x[c] * w[c];
                }
                sums[p * Outputs + o] += sum;
            }
        }
    }

    /// <summary>The scalar variant of <see cref="RunPixels{TVec, V}"/>: one output at a time, in (tap, channel) order.</summary>
    private static void RunPixels_Scalar(Job* job, int first, int last)
    {
        ConvShape s = job->Shape;
        int taps = s.KernelH * s.KernelW;
        float** pixelTaps = stackalloc float*[taps];
        float* sums = stackalloc float[Pixels * Outputs];
        for (int m = first; m < last; m++)
        {
            GatherTaps(job, m, pixelTaps);
            for (int o = 0; o < s.OutChannels; o++)
            {
                float* w = job->Weights + (nint)o * s.PatchSize;
                float sum = 0;
                for (int t = 0; t < taps; t++)
                {
                    for (int c = 0; c < s.InChannels; c++)
                    {
                        sum += pixelTaps[t][c] * w[t * s.InChannels + c];
                    }
                }
                sums[o % Outputs] = sum;
                if (o % Outputs == Outputs - 1 || o == s.OutChannels - 1)
                {
                    Store(job, m, 1, o - o % Outputs, sums);
                }
            }
        }
    }

    /// <summary>Output pixel m's input row per tap (ky-major), or the zero row where the tap falls in the padding.</summary>
    private static void GatherTaps(Job* job, int m, float** taps)
    {
        ConvPatches.Origin(job->Shape, job->OutHeight, job->OutWidth, m, out int image, out int top, out int left);
        for (int ky = 0; ky < job->Shape.KernelH; ky++)
        {
            for (int kx = 0; kx < job->Shape.KernelW; kx++)
            {
                float* pixel = ConvPatches.Pixel(job->Shape, job->Input, image, top + ky, left + kx);
                *taps++ = pixel == null ? job->Zeros : pixel;
            }
        }
    }

    /// <summary>Pixels [m, m + count) of outputs [o, o + 4) (those below Cout) from sums[p * 4 + o], plus bias and residual.</summary>
    private static void Store(Job* job, int m, int count, int o, float* sums)
    {
        int outputs = Math.Min(Outputs, job->Shape.OutChannels - o);
        int perImage = job->OutHeight * job->OutWidth;
        for (int p = 0; p < count; p++)
        {
            int pixel = m + p;
            float* bias = job->Bias == null ? null : job->Bias + (job->BiasPerImage ? (nint)(pixel / perImage) * job->Shape.OutChannels : 0) + o;
            float* residual = job->Residual == null ? null : job->Residual + (nint)pixel * job->ResidualStride + o;
            float* destination = job->Output + (nint)pixel * job->OutputStride + o;
            for (int j = 0; j < outputs; j++)
            {
                float value = sums[p * Outputs + j];
                if (bias != null) value += bias[j];
                if (residual != null) value += residual[j];
                destination[j] = value;
            }
        }
    }
}

/// <summary>
/// Weights of a <see cref="FewOutputsConv"/> layer: PyTorch's [Cout, Cin, kh, kw] as rows [Cout, kh * kw * Cin] in
/// (ky, kx, ci) order, float32, with zero rows up to a multiple of 4 outputs.
/// </summary>
public sealed unsafe class FewOutputsWeights : IDisposable
{
    private float* _data;

    public FewOutputsWeights(float* weights, int outChannels, int inChannels, int kernelH, int kernelW)
    {
        if (outChannels < 1 || outChannels > FewOutputsConv.MaxOutChannels || inChannels < 1 || kernelH < 1 || kernelW < 1)
        {
            throw new ArgumentException(
                $"a few-outputs convolution takes 1 to {FewOutputsConv.MaxOutChannels} outputs, got [{outChannels}, {inChannels}, {kernelH}, {kernelW}]");
        }
        OutChannels = outChannels;
        InChannels = inChannels;
        KernelH = kernelH;
        KernelW = kernelW;
        int patch = kernelH * kernelW * inChannels;
        int rows = (outChannels + 3) / 4 * 4;
        _data = (float*)AlignedMemory.Allocate((nuint)rows * (nuint)patch * sizeof(float), zero: true);
        for (int o = 0; o < outChannels; o++)
        {
            for (int ci = 0; ci < inChannels; ci++)
            {
                for (int tap = 0; tap < kernelH * kernelW; tap++)
                {
                    _data[(nint)o * patch + tap * inChannels + ci] = weights[((nint)o * inChannels + ci) * kernelH * kernelW + tap];
                }
            }
        }
        SizeInBytes = (long)rows * patch * sizeof(float);
    }

    public int OutChannels { get; }

    public int InChannels { get; }

    public int KernelH { get; }

    public int KernelW { get; }

    public long SizeInBytes { get; }

    public float* Data => _data != null ? _data : throw new ObjectDisposedException(nameof(FewOutputsWeights));

    public void Dispose()
    {
        if (_data != null)
        {
            AlignedMemory.Free(_data);
            _data = null;
        }
    }
}
