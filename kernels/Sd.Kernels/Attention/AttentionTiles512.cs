using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Layout;

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
    public static int ScoreBlocks<TOut>(float* qt, float* k, nint ldk, int d, int count, float* st, ScoreTile<Vector512<float>>* tile)
        where TOut : struct, IScoreOutput
    {
        Vector512<float> start0 = tile->Start0, start1 = tile->Start1;
        Vector512<float> max0 = tile->Max0, max1 = tile->Max1, sum0 = tile->Sum0, sum1 = tile->Sum1;
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
            Vector512<float> a00 = start0, a01 = start1, a10 = start0, a11 = start1;
            Vector512<float> a20 = start0, a21 = start1, a30 = start0, a31 = start1;
            Vector512<float> a40 = start0, a41 = start1, a50 = start0, a51 = start1;
            Vector512<float> a60 = start0, a61 = start1, a70 = start0, a71 = start1;
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
            Finish<TOut>(a00, a01, s, ref max0, ref max1, ref sum0, ref sum1);
            Finish<TOut>(a10, a11, s + 32, ref max0, ref max1, ref sum0, ref sum1);
            Finish<TOut>(a20, a21, s + 64, ref max0, ref max1, ref sum0, ref sum1);
            Finish<TOut>(a30, a31, s + 96, ref max0, ref max1, ref sum0, ref sum1);
            Finish<TOut>(a40, a41, s + 128, ref max0, ref max1, ref sum0, ref sum1);
            Finish<TOut>(a50, a51, s + 160, ref max0, ref max1, ref sum0, ref sum1);
            Finish<TOut>(a60, a61, s + 192, ref max0, ref max1, ref sum0, ref sum1);
            Finish<TOut>(a70, a71, s + 224, ref max0, ref max1, ref sum0, ref sum1);
        }
        tile->Max0 = max0;
        tile->Max1 = max1;
        tile->Sum0 = sum0;
        tile->Sum1 = sum1;
        return j;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish<TOut>(Vector512<float> a0, Vector512<float> a1, float* s, ref Vector512<float> max0, ref Vector512<float> max1, ref Vector512<float> sum0, ref Vector512<float> sum1)
        where TOut : struct, IScoreOutput =>
        ScoreOutput.Store<Vector512<float>, F32x16, AttentionTiles512, TOut>(a0, a1, s, ref max0, ref max1, ref sum0, ref sum1);

    /// <summary>
    /// The whole tile in one pass: chunking measured 4-7% faster on AVX2 (see AttentionTiles256), not yet measured
    /// on an AVX-512 machine (Zen 5's L1 is 48 KiB, its P rows twice as wide).
    /// </summary>
    public static int AccumulateKeys => int.MaxValue;

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

    /// <summary>See <see cref="RegisterTranspose.Transpose16x16"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose(Vector512<float>* v) => RegisterTranspose.Transpose16x16(v);
}
