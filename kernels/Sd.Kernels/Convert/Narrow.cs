namespace Sd.Kernels.Convert;

/// <summary>Span entry points for <see cref="NarrowKernels"/>, dispatched once on <see cref="Simd.Level"/>.</summary>
public static unsafe class Narrow
{
    private static readonly delegate*<float*, ushort*, nint, void> F16Kernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &NarrowKernels.F32ToF16_Vector512,
        SimdLevel.Vector256 => &NarrowKernels.F32ToF16_Vector256,
        _ => &NarrowKernels.F32ToF16_Scalar,
    };

    private static readonly delegate*<float*, ushort*, nint, void> BF16Kernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &NarrowKernels.F32ToBF16_Vector512,
        SimdLevel.Vector256 => &NarrowKernels.F32ToBF16_Vector256,
        _ => &NarrowKernels.F32ToBF16_Scalar,
    };

    /// <summary>float32 to IEEE binary16 bit patterns, rounding to nearest even (beyond 65504: infinity).</summary>
    public static void F32ToF16(ReadOnlySpan<float> source, Span<ushort> destination) =>
        ConvertLoop.Spans(F16Kernel, source, destination);

    /// <summary>float32 to bfloat16 bit patterns, rounding to nearest even.</summary>
    public static void F32ToBF16(ReadOnlySpan<float> source, Span<ushort> destination) =>
        ConvertLoop.Spans(BF16Kernel, source, destination);
}
