using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Convert;

/// <summary>
/// F16 and BF16 to F32, exactly (subnormals, infinities and NaN payloads included): both are widening formats, so
/// every 16-bit value has one exact float32. .NET 10 exposes no F16C/VCVTPH2PS intrinsic, so the F16 path uses the
/// integer re-biasing trick: shift exponent+mantissa into place, re-bias the exponent, then fix the two special
/// exponent classes (all-ones: Inf/NaN; zero: renormalize subnormals with one float subtraction).
/// </summary>
public static unsafe class WidenKernels
{
    private const uint ExponentMask = 0x7C00u << 13;   // F16 exponent field after the shift into F32 position
    private const uint Rebias = (127 - 15) << 23;       // F16 bias 15 -> F32 bias 127
    private const uint InfNanRebias = (128 - 16) << 23; // all-ones exponent must stay all-ones
    private const uint SubnormalMagicBits = 113u << 23; // 2^-14 as float32: the F16 subnormal unit * 2^10

    public static void F16ToF32_Scalar(ushort* src, float* dst, nint count)
    {
        for (nint i = 0; i < count; i++)
        {
            dst[i] = F16ToF32(src[i]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16ToF32(ushort h)
    {
        uint bits = (uint)(h & 0x7FFF) << 13;
        uint exponent = bits & ExponentMask;
        bits += Rebias;
        if (exponent == ExponentMask)
        {
            bits += InfNanRebias;
        }
        else if (exponent == 0)
        {
            bits += 1u << 23;
            bits = BitConverter.SingleToUInt32Bits(
                BitConverter.UInt32BitsToSingle(bits) - BitConverter.UInt32BitsToSingle(SubnormalMagicBits));
        }
        return BitConverter.UInt32BitsToSingle(bits | ((uint)(h & 0x8000) << 16));
    }

    public static void F16ToF32_Vector512(ushort* src, float* dst, nint count) =>
        ConvertLoop.Run<ushort, float, F16x16>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void F16Block512(ushort* src, float* dst)
    {
        Vector512<uint> h = Vector512.WidenLower(Vector256.Load(src).ToVector512Unsafe());
        Vector512<uint> bits = (h & Vector512.Create(0x7FFFu)) << 13;
        Vector512<uint> exponent = bits & Vector512.Create(ExponentMask);
        bits += Vector512.Create(Rebias);
        bits += Vector512.Equals(exponent, Vector512.Create(ExponentMask)) & Vector512.Create(InfNanRebias);
        Vector512<uint> isSubnormal = Vector512.Equals(exponent, Vector512<uint>.Zero);
        Vector512<float> renormalized =
            (bits + Vector512.Create(1u << 23)).AsSingle() - Vector512.Create(SubnormalMagicBits).AsSingle();
        bits = Vector512.ConditionalSelect(isSubnormal, renormalized.AsUInt32(), bits);
        (bits | ((h & Vector512.Create(0x8000u)) << 16)).AsSingle().Store(dst);
    }

    public static void F16ToF32_Vector256(ushort* src, float* dst, nint count) =>
        ConvertLoop.Run<ushort, float, F16x8>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void F16Block256(ushort* src, float* dst)
    {
        Vector256<uint> h = Vector256.WidenLower(Vector128.Load(src).ToVector256Unsafe());
        Vector256<uint> bits = (h & Vector256.Create(0x7FFFu)) << 13;
        Vector256<uint> exponent = bits & Vector256.Create(ExponentMask);
        bits += Vector256.Create(Rebias);
        bits += Vector256.Equals(exponent, Vector256.Create(ExponentMask)) & Vector256.Create(InfNanRebias);
        Vector256<uint> isSubnormal = Vector256.Equals(exponent, Vector256<uint>.Zero);
        Vector256<float> renormalized =
            (bits + Vector256.Create(1u << 23)).AsSingle() - Vector256.Create(SubnormalMagicBits).AsSingle();
        bits = Vector256.ConditionalSelect(isSubnormal, renormalized.AsUInt32(), bits);
        (bits | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle().Store(dst);
    }

    /// <summary>
    /// Finite F16 to F32 in four operations, for packed weights widened inside the GEMM: sign-extend, shift the 15
    /// exponent+mantissa bits into F32 position (the sign lands in bit 31, the copies of it in bits 28-30 are
    /// masked off), then multiply by 2^112 to re-bias the exponent, which also normalizes subnormals exactly.
    /// Infinities and NaNs would come out finite: packing refuses them (<see cref="HasNonFiniteF16"/>).
    /// </summary>
    private const uint FiniteMask = 0x8FFF_E000u;
    private const float Rebias112 = 5.192296858534828e33f; // 2^112

    public static void FiniteF16ToF32_Scalar(ushort* src, float* dst, nint count)
    {
        for (nint i = 0; i < count; i++)
        {
            dst[i] = BitConverter.UInt32BitsToSingle((uint)((short)src[i] << 13) & FiniteMask) * Rebias112;
        }
    }

    public static void FiniteF16ToF32_Vector512(ushort* src, float* dst, nint count) =>
        ConvertLoop.Run<ushort, float, FiniteF16x16>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FiniteF16Block512(ushort* src, float* dst) => FiniteF16ToF32(Vector256.Load((short*)src)).Store(dst);

    /// <summary>16 finite F16 values to float32 in registers (see <see cref="FiniteMask"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> FiniteF16ToF32(Vector256<short> half)
    {
        Vector512<int> h = Vector512.WidenLower(half.ToVector512Unsafe());
        return ((h << 13).AsUInt32() & Vector512.Create(FiniteMask)).AsSingle() * Vector512.Create(Rebias112);
    }

    public static void FiniteF16ToF32_Vector256(ushort* src, float* dst, nint count) =>
        ConvertLoop.Run<ushort, float, FiniteF16x8>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FiniteF16Block256(ushort* src, float* dst) => FiniteF16ToF32(Vector128.Load((short*)src)).Store(dst);

    /// <summary>8 finite F16 values to float32 in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FiniteF16ToF32(Vector128<short> half)
    {
        Vector256<int> h = Vector256.WidenLower(half.ToVector256Unsafe());
        return ((h << 13).AsUInt32() & Vector256.Create(FiniteMask)).AsSingle() * Vector256.Create(Rebias112);
    }

    /// <summary>True if any F16 value is Inf or NaN (exponent all ones).</summary>
    public static bool HasNonFiniteF16(ushort* src, nint count)
    {
        nint i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - Vector512<ushort>.Count; i += Vector512<ushort>.Count)
            {
                if (Vector512.EqualsAny(Vector512.Load(src + i) & Vector512.Create((ushort)0x7C00), Vector512.Create((ushort)0x7C00))) return true;
            }
        }
        for (; i < count; i++)
        {
            if ((src[i] & 0x7C00) == 0x7C00) return true;
        }
        return false;
    }

    /// <summary>BF16 is the high half of an F32, so widening is a shift.</summary>
    public static void BF16ToF32_Scalar(ushort* src, float* dst, nint count)
    {
        for (nint i = 0; i < count; i++)
        {
            dst[i] = BitConverter.UInt32BitsToSingle((uint)src[i] << 16);
        }
    }

    public static void BF16ToF32_Vector512(ushort* src, float* dst, nint count) =>
        ConvertLoop.Run<ushort, float, BF16x16>(src, dst, count);

    public static void BF16ToF32_Vector256(ushort* src, float* dst, nint count) =>
        ConvertLoop.Run<ushort, float, BF16x8>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BF16Block512(ushort* src, float* dst) => BF16ToF32(Vector256.Load(src)).Store(dst);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BF16Block256(ushort* src, float* dst) => BF16ToF32(Vector128.Load(src)).Store(dst);

    /// <summary>16 BF16 values to float32 in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> BF16ToF32(Vector256<ushort> half) =>
        (Vector512.WidenLower(half.ToVector512Unsafe()) << 16).AsSingle();

    /// <summary>8 BF16 values to float32 in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> BF16ToF32(Vector128<ushort> half) =>
        (Vector256.WidenLower(half.ToVector256Unsafe()) << 16).AsSingle();

    private struct F16x16 : IConvertBlock<ushort, float>
    {
        public static int Lanes => Vector512<float>.Count;
        public static void Block(ushort* src, float* dst) => F16Block512(src, dst);
        public static void Scalar(ushort* src, float* dst, nint count) => F16ToF32_Scalar(src, dst, count);
    }

    private struct F16x8 : IConvertBlock<ushort, float>
    {
        public static int Lanes => Vector256<float>.Count;
        public static void Block(ushort* src, float* dst) => F16Block256(src, dst);
        public static void Scalar(ushort* src, float* dst, nint count) => F16ToF32_Scalar(src, dst, count);
    }

    private struct FiniteF16x16 : IConvertBlock<ushort, float>
    {
        public static int Lanes => Vector512<float>.Count;
        public static void Block(ushort* src, float* dst) => FiniteF16Block512(src, dst);
        public static void Scalar(ushort* src, float* dst, nint count) => FiniteF16ToF32_Scalar(src, dst, count);
    }

    private struct FiniteF16x8 : IConvertBlock<ushort, float>
    {
        public static int Lanes => Vector256<float>.Count;
        public static void Block(ushort* src, float* dst) => FiniteF16Block256(src, dst);
        public static void Scalar(ushort* src, float* dst, nint count) => FiniteF16ToF32_Scalar(src, dst, count);
    }

    private struct BF16x16 : IConvertBlock<ushort, float>
    {
        public static int Lanes => Vector512<float>.Count;
        public static void Block(ushort* src, float* dst) => BF16Block512(src, dst);
        public static void Scalar(ushort* src, float* dst, nint count) => BF16ToF32_Scalar(src, dst, count);
    }

    private struct BF16x8 : IConvertBlock<ushort, float>
    {
        public static int Lanes => Vector256<float>.Count;
        public static void Block(ushort* src, float* dst) => BF16Block256(src, dst);
        public static void Scalar(ushort* src, float* dst, nint count) => BF16ToF32_Scalar(src, dst, count);
    }
}
