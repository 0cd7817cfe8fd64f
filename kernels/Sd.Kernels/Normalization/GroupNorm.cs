using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Normalization;

/// <summary>Entry points for <see cref="GroupNormKernels"/>, dispatched once on <see cref="Simd.Level"/>.</summary>
public static unsafe class GroupNorm
{
    private static readonly delegate*<float*, float*, int, int, int, int, float, float*, float*, Activation, void> Kernel =
        Simd.Level switch
        {
            SimdLevel.Vector512 => &GroupNormKernels.GroupNorm_Vector512,
            SimdLevel.Vector256 => &GroupNormKernels.GroupNorm_Vector256,
            _ => &GroupNormKernels.GroupNorm_Scalar,
        };

    /// <summary>
    /// GroupNorm of NHWC src [n, hw, channels] into dst (which may be src) with <paramref name="groups"/> groups of
    /// consecutive channels, per-channel gamma/beta, then <paramref name="activation"/> (GroupNorm+SiLU fused).
    /// </summary>
    public static void Apply(float* src, float* dst, int n, int hw, int channels, int groups, float eps,
        float* gamma, float* beta, Activation activation = Activation.None) =>
        Kernel(src, dst, n, hw, channels, groups, eps, gamma, beta, activation);

    public static void Apply(ReadOnlySpan<float> src, Span<float> dst, int n, int hw, int channels, int groups, float eps,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Activation activation = Activation.None)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Norm);
        GroupNormKernels.Validate(n, hw, channels, groups, eps);
        long length = (long)n * hw * channels;
        if (src.Length != length || dst.Length != length)
        {
            throw new ArgumentException(
                $"src holds {src.Length} and dst {dst.Length} floats; [{n}, {hw}, {channels}] needs {length}", nameof(src));
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
            Kernel(s, d, n, hw, channels, groups, eps, g, b, activation);
        }
    }
}
