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

    public static void F16ToF32_Vector512(ushort* src, float* dst, nint count)
    {
        if (count < Vector512<uint>.Count)
        {
            F16ToF32_Scalar(src, dst, count);
            return;
        }
        nint last = count - Vector512<uint>.Count;
        for (nint i = 0; i < last; i += Vector512<uint>.Count)
        {
            F16Block512(src + i, dst + i);
        }
        // Overlapping last vector: src and dst never alias, so recomputing a few elements is harmless.
        F16Block512(src + last, dst + last);
    }

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

    public static void F16ToF32_Vector256(ushort* src, float* dst, nint count)
    {
        if (count < Vector256<uint>.Count)
        {
            F16ToF32_Scalar(src, dst, count);
            return;
        }
        nint last = count - Vector256<uint>.Count;
        for (nint i = 0; i < last; i += Vector256<uint>.Count)
        {
            F16Block256(src + i, dst + i);
        }
        F16Block256(src + last, dst + last);
    }

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

    public static void FiniteF16ToF32_Vector512(ushort* src, float* dst, nint count)
    {
        if (count < Vector512<int>.Count)
        {
            FiniteF16ToF32_Scalar(src, dst, count);
            return;
        }
        nint last = count - Vector512<int>.Count;
        for (nint i = 0; i < last; i += Vector512<int>.Count)
        {
            FiniteF16Block512(src + i, dst + i);
        }
        FiniteF16Block512(src + last, dst + last);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FiniteF16Block512(ushort* src, float* dst)
    {
        Vector512<int> h = Vector512.WidenLower(Vector256.Load((short*)src).ToVector512Unsafe());
        (((h << 13).AsUInt32() & Vector512.Create(FiniteMask)).AsSingle() * Vector512.Create(Rebias112)).Store(dst);
    }

    public static void FiniteF16ToF32_Vector256(ushort* src, float* dst, nint count)
    {
        if (count < Vector256<int>.Count)
        {
            FiniteF16ToF32_Scalar(src, dst, count);
            return;
        }
        nint last = count - Vector256<int>.Count;
        for (nint i = 0; i < last; i += Vector256<int>.Count)
        {
            FiniteF16Block256(src + i, dst + i);
        }
        FiniteF16Block256(src + last, dst + last);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FiniteF16Block256(ushort* src, float* dst)
    {
        Vector256<int> h = Vector256.WidenLower(Vector128.Load((short*)src).ToVector256Unsafe());
        (((h << 13).AsUInt32() & Vector256.Create(FiniteMask)).AsSingle() * Vector256.Create(Rebias112)).Store(dst);
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

    public static void BF16ToF32_Vector512(ushort* src, float* dst, nint count)
    {
        if (count < Vector512<uint>.Count)
        {
            BF16ToF32_Scalar(src, dst, count);
            return;
        }
        nint last = count - Vector512<uint>.Count;
        for (nint i = 0; i < last; i += Vector512<uint>.Count)
        {
            (Vector512.WidenLower(Vector256.Load(src + i).ToVector512Unsafe()) << 16).AsSingle().Store(dst + i);
        }
        (Vector512.WidenLower(Vector256.Load(src + last).ToVector512Unsafe()) << 16).AsSingle().Store(dst + last);
    }

    public static void BF16ToF32_Vector256(ushort* src, float* dst, nint count)
    {
        if (count < Vector256<uint>.Count)
        {
            BF16ToF32_Scalar(src, dst, count);
            return;
        }
        nint last = count - Vector256<uint>.Count;
        for (nint i = 0; i < last; i += Vector256<uint>.Count)
        {
            (Vector256.WidenLower(Vector128.Load(src + i).ToVector256Unsafe()) << 16).AsSingle().Store(dst + i);
        }
        (Vector256.WidenLower(Vector128.Load(src + last).ToVector256Unsafe()) << 16).AsSingle().Store(dst + last);
    }
}
