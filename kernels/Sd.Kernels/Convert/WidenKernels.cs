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
