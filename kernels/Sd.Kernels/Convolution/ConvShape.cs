namespace Sd.Kernels.Convolution;

/// <summary>
/// A 2-D convolution over NHWC activations: batch, input size, channels, kernel, stride and per-side zero padding
/// (diffusers' VAE encoder downsamples with asymmetric padding (0,1,0,1)). An input pixel's channels may be the first
/// of a wider row (<see cref="InputStride"/>): an ESRGAN dense block convolves a growing prefix of its concatenation.
/// </summary>
public readonly record struct ConvShape(
    int Batch, int Height, int Width, int InChannels, int OutChannels,
    int KernelH = 3, int KernelW = 3, int StrideH = 1, int StrideW = 1,
    int PadTop = 1, int PadLeft = 1, int PadBottom = 1, int PadRight = 1)
{
    /// <summary>Floats from one input pixel to the next: 0 (the default) for <see cref="InChannels"/>, else at least that.</summary>
    public int InputStride { get; init; }

    /// <summary><see cref="InputStride"/> with its default resolved.</summary>
    public int PixelStride => InputStride == 0 ? InChannels : InputStride;

    public int OutHeight => (Height + PadTop + PadBottom - KernelH) / StrideH + 1;

    public int OutWidth => (Width + PadLeft + PadRight - KernelW) / StrideW + 1;

    /// <summary>GEMM depth of the implicit-GEMM form: one row of the im2col matrix.</summary>
    public int PatchSize => KernelH * KernelW * InChannels;

    /// <summary>Multiply-adds x 2 of the direct convolution: the "effective" FLOP count benchmarks report.</summary>
    public long DirectFlops => 2L * Batch * OutHeight * OutWidth * OutChannels * PatchSize;

    /// <summary>3x3, stride 1, padding 1 on all sides: the shape Winograd F(4x4,3x3) handles.</summary>
    public bool IsWinogradCandidate =>
        KernelH == 3 && KernelW == 3 && StrideH == 1 && StrideW == 1 && PadTop == 1 && PadLeft == 1 && PadBottom == 1 && PadRight == 1;

    /// <summary>1x1, stride 1, no padding: a plain GEMM on the activations.</summary>
    public bool IsPointwise =>
        KernelH == 1 && KernelW == 1 && StrideH == 1 && StrideW == 1 && PadTop == 0 && PadLeft == 0 && PadBottom == 0 && PadRight == 0;

    public void Validate()
    {
        if (Batch < 1 || Height < 1 || Width < 1 || InChannels < 1 || OutChannels < 1 || KernelH < 1 || KernelW < 1
            || StrideH < 1 || StrideW < 1 || PadTop < 0 || PadLeft < 0 || PadBottom < 0 || PadRight < 0
            || OutHeight < 1 || OutWidth < 1 || (InputStride != 0 && InputStride < InChannels))
        {
            throw new ArgumentException($"invalid convolution {this}");
        }
    }
}
