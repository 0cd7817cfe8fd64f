using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Convert;

/// <summary>
/// One vector of stored weights as float32, for kernels that read packed weights of any <see cref="Gemm.WeightFormat"/>
/// straight into registers instead of through a widened copy: float32 as is, finite F16 and BF16 widened exactly
/// (<see cref="WidenKernels"/>; packing refuses F16 Inf/NaN).
/// </summary>
internal unsafe interface IWeightLoad<TVec>
    where TVec : struct
{
    /// <summary>Elements [at, at + lanes) of the weights that start at <paramref name="source"/>.</summary>
    static abstract TVec Load(byte* source, nint at);
}

internal readonly unsafe struct F32Load512 : IWeightLoad<Vector512<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* source, nint at) => Vector512.Load((float*)source + at);
}

internal readonly unsafe struct F16Load512 : IWeightLoad<Vector512<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* source, nint at) => WidenKernels.FiniteF16ToF32(Vector256.Load((short*)source + at));
}

internal readonly unsafe struct BF16Load512 : IWeightLoad<Vector512<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* source, nint at) => WidenKernels.BF16ToF32(Vector256.Load((ushort*)source + at));
}

internal readonly unsafe struct F32Load256 : IWeightLoad<Vector256<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(byte* source, nint at) => Vector256.Load((float*)source + at);
}

internal readonly unsafe struct F16Load256 : IWeightLoad<Vector256<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(byte* source, nint at) => WidenKernels.FiniteF16ToF32(Vector128.Load((short*)source + at));
}

internal readonly unsafe struct BF16Load256 : IWeightLoad<Vector256<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(byte* source, nint at) => WidenKernels.BF16ToF32(Vector128.Load((ushort*)source + at));
}
