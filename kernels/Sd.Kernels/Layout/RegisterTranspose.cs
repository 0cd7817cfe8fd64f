using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sd.Kernels.Layout;

/// <summary>
/// Square transposes of one vector width's worth of rows, every intermediate in a register: v[i] = row i on entry,
/// column i on exit. The caller's buffer is read once and written once; shared by attention's query-lane layout and
/// GEMM's A packing (a version of the latter with its intermediates in stack arrays made every shuffle a load and a
/// store and packed at a third of the speed).
/// </summary>
internal static unsafe class RegisterTranspose
{
    /// <summary>
    /// A 16x16 transpose: 32-bit and 64-bit interleaves within 128-bit lanes, then two rounds of 128-bit lane
    /// shuffles (64 shuffles for 256 elements).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose16x16(Vector512<float>* v)
    {
        Vector512<float> t0 = Avx512F.UnpackLow(v[0], v[1]), t1 = Avx512F.UnpackHigh(v[0], v[1]);
        Vector512<float> t2 = Avx512F.UnpackLow(v[2], v[3]), t3 = Avx512F.UnpackHigh(v[2], v[3]);
        Vector512<float> t4 = Avx512F.UnpackLow(v[4], v[5]), t5 = Avx512F.UnpackHigh(v[4], v[5]);
        Vector512<float> t6 = Avx512F.UnpackLow(v[6], v[7]), t7 = Avx512F.UnpackHigh(v[6], v[7]);
        Vector512<float> t8 = Avx512F.UnpackLow(v[8], v[9]), t9 = Avx512F.UnpackHigh(v[8], v[9]);
        Vector512<float> t10 = Avx512F.UnpackLow(v[10], v[11]), t11 = Avx512F.UnpackHigh(v[10], v[11]);
        Vector512<float> t12 = Avx512F.UnpackLow(v[12], v[13]), t13 = Avx512F.UnpackHigh(v[12], v[13]);
        Vector512<float> t14 = Avx512F.UnpackLow(v[14], v[15]), t15 = Avx512F.UnpackHigh(v[14], v[15]);

        Vector512<float> u0 = Low64(t0, t2), u1 = High64(t0, t2), u2 = Low64(t1, t3), u3 = High64(t1, t3);
        Vector512<float> u4 = Low64(t4, t6), u5 = High64(t4, t6), u6 = Low64(t5, t7), u7 = High64(t5, t7);
        Vector512<float> u8 = Low64(t8, t10), u9 = High64(t8, t10), u10 = Low64(t9, t11), u11 = High64(t9, t11);
        Vector512<float> u12 = Low64(t12, t14), u13 = High64(t12, t14), u14 = Low64(t13, t15), u15 = High64(t13, t15);

        // 0x88 picks 128-bit lanes (a0, a2, b0, b2), 0xDD picks (a1, a3, b1, b3).
        t0 = Avx512F.Shuffle4x128(u0, u4, 0x88);
        t1 = Avx512F.Shuffle4x128(u1, u5, 0x88);
        t2 = Avx512F.Shuffle4x128(u2, u6, 0x88);
        t3 = Avx512F.Shuffle4x128(u3, u7, 0x88);
        t4 = Avx512F.Shuffle4x128(u0, u4, 0xDD);
        t5 = Avx512F.Shuffle4x128(u1, u5, 0xDD);
        t6 = Avx512F.Shuffle4x128(u2, u6, 0xDD);
        t7 = Avx512F.Shuffle4x128(u3, u7, 0xDD);
        t8 = Avx512F.Shuffle4x128(u8, u12, 0x88);
        t9 = Avx512F.Shuffle4x128(u9, u13, 0x88);
        t10 = Avx512F.Shuffle4x128(u10, u14, 0x88);
        t11 = Avx512F.Shuffle4x128(u11, u15, 0x88);
        t12 = Avx512F.Shuffle4x128(u8, u12, 0xDD);
        t13 = Avx512F.Shuffle4x128(u9, u13, 0xDD);
        t14 = Avx512F.Shuffle4x128(u10, u14, 0xDD);
        t15 = Avx512F.Shuffle4x128(u11, u15, 0xDD);

        v[0] = Avx512F.Shuffle4x128(t0, t8, 0x88);
        v[1] = Avx512F.Shuffle4x128(t1, t9, 0x88);
        v[2] = Avx512F.Shuffle4x128(t2, t10, 0x88);
        v[3] = Avx512F.Shuffle4x128(t3, t11, 0x88);
        v[4] = Avx512F.Shuffle4x128(t4, t12, 0x88);
        v[5] = Avx512F.Shuffle4x128(t5, t13, 0x88);
        v[6] = Avx512F.Shuffle4x128(t6, t14, 0x88);
        v[7] = Avx512F.Shuffle4x128(t7, t15, 0x88);
        v[8] = Avx512F.Shuffle4x128(t0, t8, 0xDD);
        v[9] = Avx512F.Shuffle4x128(t1, t9, 0xDD);
        v[10] = Avx512F.Shuffle4x128(t2, t10, 0xDD);
        v[11] = Avx512F.Shuffle4x128(t3, t11, 0xDD);
        v[12] = Avx512F.Shuffle4x128(t4, t12, 0xDD);
        v[13] = Avx512F.Shuffle4x128(t5, t13, 0xDD);
        v[14] = Avx512F.Shuffle4x128(t6, t14, 0xDD);
        v[15] = Avx512F.Shuffle4x128(t7, t15, 0xDD);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Low64(Vector512<float> a, Vector512<float> b) =>
        Avx512F.UnpackLow(a.AsDouble(), b.AsDouble()).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> High64(Vector512<float> a, Vector512<float> b) =>
        Avx512F.UnpackHigh(a.AsDouble(), b.AsDouble()).AsSingle();

    /// <summary>An 8x8 transpose: unpack, in-lane shuffle, 128-bit lane permute.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose8x8(Vector256<float>* v)
    {
        Vector256<float> t0 = Avx.UnpackLow(v[0], v[1]), t1 = Avx.UnpackHigh(v[0], v[1]);
        Vector256<float> t2 = Avx.UnpackLow(v[2], v[3]), t3 = Avx.UnpackHigh(v[2], v[3]);
        Vector256<float> t4 = Avx.UnpackLow(v[4], v[5]), t5 = Avx.UnpackHigh(v[4], v[5]);
        Vector256<float> t6 = Avx.UnpackLow(v[6], v[7]), t7 = Avx.UnpackHigh(v[6], v[7]);
        // 0x44 picks 64-bit halves (a0, b0) of each 128-bit lane, 0xEE picks (a1, b1).
        Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE);
        Vector256<float> u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
        Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE);
        Vector256<float> u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
        v[0] = Avx.Permute2x128(u0, u4, 0x20);
        v[1] = Avx.Permute2x128(u1, u5, 0x20);
        v[2] = Avx.Permute2x128(u2, u6, 0x20);
        v[3] = Avx.Permute2x128(u3, u7, 0x20);
        v[4] = Avx.Permute2x128(u0, u4, 0x31);
        v[5] = Avx.Permute2x128(u1, u5, 0x31);
        v[6] = Avx.Permute2x128(u2, u6, 0x31);
        v[7] = Avx.Permute2x128(u3, u7, 0x31);
    }
}
