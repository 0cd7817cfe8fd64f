using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Convert;

/// <summary>
/// F32 to F16 and BF16, rounding to nearest even, as PyTorch's <c>.half()</c> / <c>.bfloat16()</c> do: for weights
/// merged in float32 and stored back in their 16-bit format. The scalar references are System.Half's conversion and
/// the BF16 carry rule; the vector paths give the same bits for every non-NaN input (NaN stays a quiet NaN of its
/// sign). .NET 10 exposes no F16C/VCVTPS2PH intrinsic, so F16 is bit arithmetic: normal results re-bias the exponent
/// and round with the round-half-to-even carry, subnormal ones let one float addition of 0.5 do the rounding (0.5's
/// unit in the last place is F16's smallest subnormal, 2^-24), and |x| &gt;= 65520 becomes infinity.
/// </summary>
public static unsafe class NarrowKernels
{
    private const uint AbsMask = 0x7FFF_FFFFu;
    private const uint F32Infinity = 0x7F80_0000u;
    private const uint F16Overflow = 0x477F_F000u;   // 65520: the halfway point above F16's largest value, 65504
    private const uint F16MinNormal = 0x3880_0000u;  // 2^-14
    private const uint Half = 0x3F00_0000u;          // 0.5f
    private const uint F16Rebias = unchecked((uint)((15 - 127) << 23)) + 0xFFFu; // exponent bias 127 -> 15, plus the carry less one

    public static void F32ToF16_Scalar(float* src, ushort* dst, nint count)
    {
        for (nint i = 0; i < count; i++)
        {
            dst[i] = BitConverter.HalfToUInt16Bits((System.Half)src[i]);
        }
    }

    public static void F32ToF16_Vector512(float* src, ushort* dst, nint count) => ConvertLoop.Run<float, ushort, F16x16>(src, dst, count);

    public static void F32ToF16_Vector256(float* src, ushort* dst, nint count) => ConvertLoop.Run<float, ushort, F16x8>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> ToF16(Vector512<uint> bits)
    {
        Vector512<uint> magnitude = bits & Vector512.Create(AbsMask);
        Vector512<uint> normal = (magnitude + Vector512.Create(F16Rebias) + ((magnitude >> 13) & Vector512<uint>.One)) >> 13;
        Vector512<uint> subnormal = (magnitude.AsSingle() + Vector512.Create(Half).AsSingle()).AsUInt32() - Vector512.Create(Half);
        Vector512<uint> result = Vector512.ConditionalSelect(Vector512.LessThan(magnitude, Vector512.Create(F16MinNormal)), subnormal, normal);
        result = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(F16Overflow)), Vector512.Create(0x7C00u), result);
        result |= Vector512.GreaterThan(magnitude, Vector512.Create(F32Infinity)) & Vector512.Create(0x7E00u);
        return result | ((bits >> 16) & Vector512.Create(0x8000u));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> ToF16(Vector256<uint> bits)
    {
        Vector256<uint> magnitude = bits & Vector256.Create(AbsMask);
        Vector256<uint> normal = (magnitude + Vector256.Create(F16Rebias) + ((magnitude >> 13) & Vector256<uint>.One)) >> 13;
        Vector256<uint> subnormal = (magnitude.AsSingle() + Vector256.Create(Half).AsSingle()).AsUInt32() - Vector256.Create(Half);
        Vector256<uint> result = Vector256.ConditionalSelect(Vector256.LessThan(magnitude, Vector256.Create(F16MinNormal)), subnormal, normal);
        result = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(F16Overflow)), Vector256.Create(0x7C00u), result);
        result |= Vector256.GreaterThan(magnitude, Vector256.Create(F32Infinity)) & Vector256.Create(0x7E00u);
        return result | ((bits >> 16) & Vector256.Create(0x8000u));
    }

    /// <summary>Round to nearest even by carrying into the kept half; NaN is kept quiet (a carry could make it Inf).</summary>
    public static void F32ToBF16_Scalar(float* src, ushort* dst, nint count)
    {
        for (nint i = 0; i < count; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(src[i]);
            dst[i] = float.IsNaN(src[i]) ? (ushort)((bits >> 16) | 0x40) : (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
        }
    }

    public static void F32ToBF16_Vector512(float* src, ushort* dst, nint count) => ConvertLoop.Run<float, ushort, BF16x16>(src, dst, count);

    public static void F32ToBF16_Vector256(float* src, ushort* dst, nint count) => ConvertLoop.Run<float, ushort, BF16x8>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> ToBF16(Vector512<uint> bits)
    {
        Vector512<uint> rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
        Vector512<uint> isNaN = Vector512.GreaterThan(bits & Vector512.Create(AbsMask), Vector512.Create(F32Infinity));
        return Vector512.ConditionalSelect(isNaN, (bits >> 16) | Vector512.Create(0x40u), rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> ToBF16(Vector256<uint> bits)
    {
        Vector256<uint> rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) >> 16;
        Vector256<uint> isNaN = Vector256.GreaterThan(bits & Vector256.Create(AbsMask), Vector256.Create(F32Infinity));
        return Vector256.ConditionalSelect(isNaN, (bits >> 16) | Vector256.Create(0x40u), rounded);
    }

    private struct F16x16 : IConvertBlock<float, ushort>
    {
        public static int Lanes => Vector512<float>.Count;
        public static void Block(float* src, ushort* dst) => Vector512.Narrow(ToF16(Vector512.Load((uint*)src)), Vector512<uint>.Zero).GetLower().Store(dst);
        public static void Scalar(float* src, ushort* dst, nint count) => F32ToF16_Scalar(src, dst, count);
    }

    private struct F16x8 : IConvertBlock<float, ushort>
    {
        public static int Lanes => Vector256<float>.Count;
        public static void Block(float* src, ushort* dst) => Vector256.Narrow(ToF16(Vector256.Load((uint*)src)), Vector256<uint>.Zero).GetLower().Store(dst);
        public static void Scalar(float* src, ushort* dst, nint count) => F32ToF16_Scalar(src, dst, count);
    }

    private struct BF16x16 : IConvertBlock<float, ushort>
    {
        public static int Lanes => Vector512<float>.Count;
        public static void Block(float* src, ushort* dst) => Vector512.Narrow(ToBF16(Vector512.Load((uint*)src)), Vector512<uint>.Zero).GetLower().Store(dst);
        public static void Scalar(float* src, ushort* dst, nint count) => F32ToBF16_Scalar(src, dst, count);
    }

    private struct BF16x8 : IConvertBlock<float, ushort>
    {
        public static int Lanes => Vector256<float>.Count;
        public static void Block(float* src, ushort* dst) => Vector256.Narrow(ToBF16(Vector256.Load((uint*)src)), Vector256<uint>.Zero).GetLower().Store(dst);
        public static void Scalar(float* src, ushort* dst, nint count) => F32ToBF16_Scalar(src, dst, count);
    }
}
