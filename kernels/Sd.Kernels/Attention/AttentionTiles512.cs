using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Attention;

/// <summary>
/// The AVX-512 pieces of the attention kernels: 32-query blocks (two 16-lane vectors). The microkernels keep 8 x 2
/// accumulators (16 of the 32 zmm registers) and issue 16 FMAs per 2 vector loads and 8 broadcast loads: 5 cycles
/// of Zen 5's two load ports under 8 cycles of its two FMA pipes, so FMA-bound.
/// </summary>
internal readonly unsafe struct AttentionTiles512 : IAttentionTiles<Vector512<float>>
{
    private const int Rows = 32;

    /// <summary>Eight keys at a time: see <see cref="IAttentionTiles{TVec}.ScoreBlocks"/>.</summary>
    public static int ScoreBlocks(float* qt, float* k, nint ldk, int d, int count, float* st)
    {
        int j = 0;
        for (; j + 8 <= count; j += 8)
        {
            float* k0 = k + j * ldk;
            float* k1 = k0 + ldk;
            float* k2 = k1 + ldk;
            float* k3 = k2 + ldk;
            float* k4 = k3 + ldk;
            float* k5 = k4 + ldk;
            float* k6 = k5 + ldk;
            float* k7 = k6 + ldk;
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
            Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default;
            Vector512<float> a60 = default, a61 = default, a70 = default, a71 = default;
            float* qc = qt;
            for (int c = 0; c < d; c++, qc += Rows)
            {
                Vector512<float> q0 = Vector512.Load(qc);
                Vector512<float> q1 = Vector512.Load(qc + 16);
                Vector512<float> b = Vector512.Create(k0[c]);
                a00 = Vector512.FusedMultiplyAdd(b, q0, a00);
                a01 = Vector512.FusedMultiplyAdd(b, q1, a01);
                b = Vector512.Create(k1[c]);
                a10 = Vector512.FusedMultiplyAdd(b, q0, a10);
                a11 = Vector512.FusedMultiplyAdd(b, q1, a11);
                b = Vector512.Create(k2[c]);
                a20 = Vector512.FusedMultiplyAdd(b, q0, a20);
                a21 = Vector512.FusedMultiplyAdd(b, q1, a21);
                b = Vector512.Create(k3[c]);
                a30 = Vector512.FusedMultiplyAdd(b, q0, a30);
                a31 = Vector512.FusedMultiplyAdd(b, q1, a31);
                b = Vector512.Create(k4[c]);
                a40 = Vector512.FusedMultiplyAdd(b, q0, a40);
                a41 = Vector512.FusedMultiplyAdd(b, q1, a41);
                b = Vector512.Create(k5[c]);
                a50 = Vector512.FusedMultiplyAdd(b, q0, a50);
                a51 = Vector512.FusedMultiplyAdd(b, q1, a51);
                b = Vector512.Create(k6[c]);
                a60 = Vector512.FusedMultiplyAdd(b, q0, a60);
                a61 = Vector512.FusedMultiplyAdd(b, q1, a61);
                b = Vector512.Create(k7[c]);
                a70 = Vector512.FusedMultiplyAdd(b, q0, a70);
                a71 = Vector512.FusedMultiplyAdd(b, q1, a71);
            }
            float* s = st + j * Rows;
            a00.Store(s);
            a01.Store(s + 16);
            a10.Store(s + 32);
            a11.Store(s + 48);
            a20.Store(s + 64);
            a21.Store(s + 80);
            a30.Store(s + 96);
            a31.Store(s + 112);
            a40.Store(s + 128);
            a41.Store(s + 144);
            a50.Store(s + 160);
            a51.Store(s + 176);
            a60.Store(s + 192);
            a61.Store(s + 208);
            a70.Store(s + 224);
            a71.Store(s + 240);
        }
        return j;
    }

    /// <summary>Eight channels at a time: see <see cref="IAttentionTiles{TVec}.AccumulateBlocks"/>.</summary>
    public static int AccumulateBlocks(
        float* pt, float* v, nint ldv, int d, int count, Vector512<float> alpha0, Vector512<float> alpha1, float* ot)
    {
        int c = 0;
        for (; c + 8 <= d; c += 8)
        {
            float* o = ot + c * Rows;
            Vector512<float> a00 = Vector512.Load(o) * alpha0, a01 = Vector512.Load(o + 16) * alpha1;
            Vector512<float> a10 = Vector512.Load(o + 32) * alpha0, a11 = Vector512.Load(o + 48) * alpha1;
            Vector512<float> a20 = Vector512.Load(o + 64) * alpha0, a21 = Vector512.Load(o + 80) * alpha1;
            Vector512<float> a30 = Vector512.Load(o + 96) * alpha0, a31 = Vector512.Load(o + 112) * alpha1;
            Vector512<float> a40 = Vector512.Load(o + 128) * alpha0, a41 = Vector512.Load(o + 144) * alpha1;
            Vector512<float> a50 = Vector512.Load(o + 160) * alpha0, a51 = Vector512.Load(o + 176) * alpha1;
            Vector512<float> a60 = Vector512.Load(o + 192) * alpha0, a61 = Vector512.Load(o + 208) * alpha1;
            Vector512<float> a70 = Vector512.Load(o + 224) * alpha0, a71 = Vector512.Load(o + 240) * alpha1;
            float* vr = v + c;
            float* p = pt;
            for (int j = 0; j < count; j++, vr += ldv, p += Rows)
            {
                Vector512<float> p0 = Vector512.Load(p);
                Vector512<float> p1 = Vector512.Load(p + 16);
                Vector512<float> b = Vector512.Create(vr[0]);
                a00 = Vector512.FusedMultiplyAdd(b, p0, a00);
                a01 = Vector512.FusedMultiplyAdd(b, p1, a01);
                b = Vector512.Create(vr[1]);
                a10 = Vector512.FusedMultiplyAdd(b, p0, a10);
                a11 = Vector512.FusedMultiplyAdd(b, p1, a11);
                b = Vector512.Create(vr[2]);
                a20 = Vector512.FusedMultiplyAdd(b, p0, a20);
                a21 = Vector512.FusedMultiplyAdd(b, p1, a21);
                b = Vector512.Create(vr[3]);
                a30 = Vector512.FusedMultiplyAdd(b, p0, a30);
                a31 = Vector512.FusedMultiplyAdd(b, p1, a31);
                b = Vector512.Create(vr[4]);
                a40 = Vector512.FusedMultiplyAdd(b, p0, a40);
                a41 = Vector512.FusedMultiplyAdd(b, p1, a41);
                b = Vector512.Create(vr[5]);
                a50 = Vector512.FusedMultiplyAdd(b, p0, a50);
                a51 = Vector512.FusedMultiplyAdd(b, p1, a51);
                b = Vector512.Create(vr[6]);
                a60 = Vector512.FusedMultiplyAdd(b, p0, a60);
                a61 = Vector512.FusedMultiplyAdd(b, p1, a61);
                b = Vector512.Create(vr[7]);
                a70 = Vector512.FusedMultiplyAdd(b, p0, a70);
                a71 = Vector512.FusedMultiplyAdd(b, p1, a71);
            }
            a00.Store(o);
            a01.Store(o + 16);
            a10.Store(o + 32);
            a11.Store(o + 48);
            a20.Store(o + 64);
            a21.Store(o + 80);
            a30.Store(o + 96);
            a31.Store(o + 112);
            a40.Store(o + 128);
            a41.Store(o + 144);
            a50.Store(o + 160);
            a51.Store(o + 176);
            a60.Store(o + 192);
            a61.Store(o + 208);
            a70.Store(o + 224);
            a71.Store(o + 240);
        }
        return c;
    }

    /// <summary>
    /// <see cref="IAttentionTiles{TVec}.Exp2"/> with VSCALEFPS for the 2^n factor, which also flushes x far below
    /// -126 to exactly 0. Ten instructions against VectorMath.Exp's two dozen general-range ones (no clamping or
    /// overflow handling is needed here); with d = 40 the exponentials are a fifth of the FLOP-bound loop, so this is
    /// worth ~10%.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp2(Vector512<float> x)
    {
        Vector512<float> n = Vector512.Round(x);
        return Avx512F.Scale(Exp2Polynomial.Evaluate<Vector512<float>, F32x16>(x - n), n);
    }

    /// <summary>
    /// A 16x16 transpose: 32-bit and 64-bit interleaves within 128-bit lanes, then two rounds of 128-bit lane
    /// shuffles (64 shuffles for 256 elements).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose(Vector512<float>* v)
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
}
