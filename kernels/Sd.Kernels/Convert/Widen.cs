namespace Sd.Kernels.Convert;

/// <summary>Span entry points for <see cref="WidenKernels"/>, dispatched once on <see cref="Simd.Level"/>.</summary>
public static unsafe class Widen
{
    private static readonly delegate*<ushort*, float*, nint, void> F16Kernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &WidenKernels.F16ToF32_Vector512,
        SimdLevel.Vector256 => &WidenKernels.F16ToF32_Vector256,
        _ => &WidenKernels.F16ToF32_Scalar,
    };

    private static readonly delegate*<ushort*, float*, nint, void> BF16Kernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &WidenKernels.BF16ToF32_Vector512,
        SimdLevel.Vector256 => &WidenKernels.BF16ToF32_Vector256,
        _ => &WidenKernels.BF16ToF32_Scalar,
    };

    private static readonly delegate*<ushort*, float*, nint, void> FiniteF16Kernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &WidenKernels.FiniteF16ToF32_Vector512,
        SimdLevel.Vector256 => &WidenKernels.FiniteF16ToF32_Vector256,
        _ => &WidenKernels.FiniteF16ToF32_Scalar,
    };

    /// <summary>
    /// The widening kernel for 16-bit packed weights: BF16, or the finite-only F16 path (packing refuses Inf/NaN).
    /// </summary>
    internal static delegate*<ushort*, float*, nint, void> PanelKernelFor(Gemm.WeightFormat format) =>
        format == Gemm.WeightFormat.BF16 ? BF16Kernel : FiniteF16Kernel;

    /// <summary>IEEE binary16 bit patterns to float32, exact.</summary>
    public static void F16ToF32(ReadOnlySpan<ushort> source, Span<float> destination) =>
        ConvertLoop.Spans(F16Kernel, source, destination);

    /// <summary>bfloat16 bit patterns to float32, exact.</summary>
    public static void BF16ToF32(ReadOnlySpan<ushort> source, Span<float> destination) =>
        ConvertLoop.Spans(BF16Kernel, source, destination);
}
