using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// The remainder of a vector loop as one masked vector: lanes at or past the end are neither read (masked loads do
/// not fault) nor written. Unlike an overlapping last vector this is safe in place and for non-idempotent ops, and
/// unlike a scalar tail every element goes through the same vector arithmetic wherever it sits. Vector512 implies
/// AVX-512F and Vector256 implies AVX on the x64 machines these paths run on.
/// </summary>
internal static unsafe class MaskedTail
{
    /// <summary>All-ones in lanes [0, count), zero after; count may exceed the width (all lanes on).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Mask512(nint count) =>
        Vector512.LessThan(Vector512<int>.Indices, Vector512.Create((int)Math.Min(count, 16))).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Mask256(nint count) =>
        Vector256.LessThan(Vector256<int>.Indices, Vector256.Create((int)Math.Min(count, 8))).AsSingle();

    /// <summary>Masked-off lanes read as zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(float* source, Vector512<float> mask) =>
        Avx512F.MaskLoad(source, mask, Vector512<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* source, Vector256<float> mask) => Avx.MaskLoad(source, mask);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* destination, Vector512<float> mask, Vector512<float> value) =>
        Avx512F.MaskStore(destination, mask, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* destination, Vector256<float> mask, Vector256<float> value) =>
        Avx.MaskStore(destination, mask, value);
}
