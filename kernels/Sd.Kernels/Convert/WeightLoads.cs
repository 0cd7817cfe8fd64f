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

/// <summary>Float32 weights, loaded as they are.</summary>
internal readonly unsafe struct F32Weights : IWeightLoad<Vector512<float>>, IWeightLoad<Vector256<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> IWeightLoad<Vector512<float>>.Load(byte* source, nint at) => Vector512.Load((float*)source + at);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> IWeightLoad<Vector256<float>>.Load(byte* source, nint at) => Vector256.Load((float*)source + at);
}

/// <summary>16-bit weights, widened in registers by <typeparamref name="TWiden"/>.</summary>
internal readonly unsafe struct SixteenBitWeights<TWiden> : IWeightLoad<Vector512<float>>, IWeightLoad<Vector256<float>>
    where TWiden : struct, IRegisterWiden
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> IWeightLoad<Vector512<float>>.Load(byte* source, nint at) => TWiden.Widen(Vector256.Load((ushort*)source + at));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> IWeightLoad<Vector256<float>>.Load(byte* source, nint at) => TWiden.Widen(Vector128.Load((ushort*)source + at));
}

/// <summary>A 16-bit format's exact widening of one vector to float32.</summary>
internal interface IRegisterWiden
{
    static abstract Vector512<float> Widen(Vector256<ushort> half);

    static abstract Vector256<float> Widen(Vector128<ushort> half);
}

/// <summary>Finite F16 (packing refuses Inf/NaN).</summary>
internal readonly struct FiniteF16Widen : IRegisterWiden
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Widen(Vector256<ushort> half) => WidenKernels.FiniteF16ToF32(half.AsInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen(Vector128<ushort> half) => WidenKernels.FiniteF16ToF32(half.AsInt16());
}

internal readonly struct BF16Widen : IRegisterWiden
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Widen(Vector256<ushort> half) => WidenKernels.BF16ToF32(half);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen(Vector128<ushort> half) => WidenKernels.BF16ToF32(half);
}
