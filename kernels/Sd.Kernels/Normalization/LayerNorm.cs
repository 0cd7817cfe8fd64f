namespace Sd.Kernels.Normalization;

/// <summary>Entry points for <see cref="LayerNormKernels"/>, dispatched once on <see cref="Simd.Level"/>.</summary>
public static unsafe class LayerNorm
{
    private static readonly delegate*<float*, float*, nint, int, float, float*, float*, void> Kernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &LayerNormKernels.LayerNorm_Vector512,
        SimdLevel.Vector256 => &LayerNormKernels.LayerNorm_Vector256,
        _ => &LayerNormKernels.LayerNorm_Scalar,
    };

    /// <summary>LayerNorm of each of <paramref name="rows"/> rows of <paramref name="channels"/> floats; dst may be src.</summary>
    public static void Apply(float* src, float* dst, nint rows, int channels, float eps, float* gamma, float* beta)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Norm);
        Kernel(src, dst, rows, channels, eps, gamma, beta);
    }

    public static void Apply(ReadOnlySpan<float> src, Span<float> dst, int channels, float eps,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        if (src.Length % channels != 0 || dst.Length != src.Length)
        {
            throw new ArgumentException(
                $"src holds {src.Length} and dst {dst.Length} floats; need equal whole rows of {channels}", nameof(src));
        }
        if (gamma.Length != channels || beta.Length != channels)
        {
            throw new ArgumentException(
                $"gamma holds {gamma.Length} and beta {beta.Length} floats; need {channels} each", nameof(gamma));
        }
        fixed (float* s = src)
        fixed (float* d = dst)
        fixed (float* g = gamma)
        fixed (float* b = beta)
        {
            Kernel(s, d, src.Length / channels, channels, eps, g, b);
        }
    }
}
