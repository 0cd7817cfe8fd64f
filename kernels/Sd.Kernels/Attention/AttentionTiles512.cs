using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sd.Kernels.Attention;

/// <summary>
/// AVX-512 building blocks shared by the attention variants. A query block is <see cref="Rows"/> = 32 queries, two
/// 16-lane vectors; every buffer here is "transposed": one row per key or channel, one lane per query, 32 floats.
/// Microkernels keep 8 x 2 accumulators (16 of the 32 zmm registers) and issue 16 FMAs per 2 vector loads and 8
/// broadcast loads: 5 cycles of Zen 5's two load ports under 8 cycles of its two FMA pipes, so FMA-bound.
/// </summary>
internal static unsafe class AttentionTiles512
{
    public const int Rows = 32;

    /// <summary>Scores are kept in base-2 units (Q is pre-multiplied by log2 e): the softmax needs only 2^x.</summary>
    public const float Log2E = 1.44269504088896341f;

    /// <summary>
    /// The score of a hidden key: finite, so that (score - max) and (old max - new max) never become inf - inf,
    /// and <see cref="Exp2"/> of anything that far below the max is exactly 0.
    /// </summary>
    public const float Hidden = float.MinValue;

    // 2^f on [-1/2, 1/2]: degree-6 minimax polynomial (Remez fit of the relative error, 2e-9; under 1e-7 once
    // evaluated in float), coefficients of f^1 .. f^6 (that of f^0 is 1).
    private const float C1 = 6.931471825e-01f;
    private const float C2 = 2.402264625e-01f;
    private const float C3 = 5.550328642e-02f;
    private const float C4 = 9.618489072e-03f;
    private const float C5 = 1.339993090e-03f;
    private const float C6 = 1.534581243e-04f;

    /// <summary>st[j*32 + r] = sum_c k[j*ldk + c] * qt[c*32 + r] for keys j in [0, count).</summary>
    public static void Scores(float* qt, float* k, nint ldk, int d, int count, float* st)
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
        for (; j < count; j++)
        {
            float* kj = k + j * ldk;
            Vector512<float> a0 = default, a1 = default;
            for (int c = 0; c < d; c++)
            {
                Vector512<float> b = Vector512.Create(kj[c]);
                a0 = Vector512.FusedMultiplyAdd(b, Vector512.Load(qt + c * Rows), a0);
                a1 = Vector512.FusedMultiplyAdd(b, Vector512.Load(qt + c * Rows + 16), a1);
            }
            a0.Store(st + j * Rows);
            a1.Store(st + j * Rows + 16);
        }
    }

    /// <summary>
    /// Hides key <paramref name="key0"/> + j from query <paramref name="query0"/> + r when the key is later (score
    /// <see cref="Hidden"/>), for the key rows of a tile that cross the diagonal. Key 0 is never hidden, so every
    /// query has a real running max from its first tile on.
    /// </summary>
    public static void MaskCausal(float* st, int key0, int count, int query0)
    {
        Vector512<int> lanes0 = Vector512.Create(query0) + Vector512<int>.Indices;
        Vector512<int> lanes1 = lanes0 + Vector512.Create(16);
        Vector512<float> hidden = Vector512.Create(Hidden);
        for (int j = Math.Max(0, query0 + 1 - key0); j < count; j++)
        {
            Vector512<int> key = Vector512.Create(key0 + j);
            float* s = st + j * Rows;
            Vector512.ConditionalSelect(Vector512.GreaterThan(key, lanes0).AsSingle(), hidden, Vector512.Load(s))
                .Store(s);
            Vector512.ConditionalSelect(Vector512.GreaterThan(key, lanes1).AsSingle(), hidden, Vector512.Load(s + 16))
                .Store(s + 16);
        }
    }

    /// <summary>Per-lane max over <paramref name="count"/> score rows, folded into the running max0/max1.</summary>
    public static void RowMax(float* st, int count, ref Vector512<float> max0, ref Vector512<float> max1)
    {
        Vector512<float> m0 = max0, m1 = max1;
        for (int j = 0; j < count; j++)
        {
            m0 = Vector512.Max(m0, Vector512.Load(st + j * Rows));
            m1 = Vector512.Max(m1, Vector512.Load(st + j * Rows + 16));
        }
        max0 = m0;
        max1 = m1;
    }

    /// <summary>st = 2^(st - max) in place; the per-lane sums are added to sum0/sum1.</summary>
    public static void Exponentiate(
        float* st, int count, Vector512<float> max0, Vector512<float> max1,
        ref Vector512<float> sum0, ref Vector512<float> sum1)
    {
        Vector512<float> s0 = Vector512<float>.Zero, s1 = Vector512<float>.Zero;
        for (int j = 0; j < count; j++)
        {
            float* s = st + j * Rows;
            Vector512<float> e0 = Exp2(Vector512.Load(s) - max0);
            Vector512<float> e1 = Exp2(Vector512.Load(s + 16) - max1);
            e0.Store(s);
            e1.Store(s + 16);
            s0 += e0;
            s1 += e1;
        }
        sum0 += s0;
        sum1 += s1;
    }

    /// <summary>st *= 1/sum per lane: the naive baseline's explicit normalized probabilities.</summary>
    public static void Normalize(float* st, int count, Vector512<float> sum0, Vector512<float> sum1)
    {
        Vector512<float> inverse0 = Vector512<float>.One / sum0;
        Vector512<float> inverse1 = Vector512<float>.One / sum1;
        for (int j = 0; j < count; j++)
        {
            float* s = st + j * Rows;
            (Vector512.Load(s) * inverse0).Store(s);
            (Vector512.Load(s + 16) * inverse1).Store(s + 16);
        }
    }

    /// <summary>
    /// ot[c*32 + r] = ot[c*32 + r] * alpha[r] + sum_j v[j*ldv + c] * pt[j*32 + r] for every channel c in [0, d) and
    /// keys j in [0, count): the flash rescale rides on the accumulator load. ot must hold finite values (zeroed
    /// before a block's first tile, where alpha is 0).
    /// </summary>
    public static void Accumulate(
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
        for (; c < d; c++)
        {
            float* o = ot + c * Rows;
            Vector512<float> a0 = Vector512.Load(o) * alpha0, a1 = Vector512.Load(o + 16) * alpha1;
            for (int j = 0; j < count; j++)
            {
                Vector512<float> b = Vector512.Create(v[j * ldv + c]);
                a0 = Vector512.FusedMultiplyAdd(b, Vector512.Load(pt + j * Rows), a0);
                a1 = Vector512.FusedMultiplyAdd(b, Vector512.Load(pt + j * Rows + 16), a1);
            }
            a0.Store(o);
            a1.Store(o + 16);
        }
    }

    /// <summary>
    /// 2^x for x &lt;= 0 (a score minus its row max), relative error under 1e-7: x = n + f with n = round(x), a
    /// polynomial for 2^f, and VSCALEFPS for the 2^n factor, which also flushes x far below -126 to exactly 0.
    /// Ten instructions against VectorMath.Exp's two dozen general-range ones (no clamping or overflow handling is
    /// needed here); with d = 40 the exponentials are a fifth of the FLOP-bound loop, so this is worth ~10%.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp2(Vector512<float> x)
    {
        Vector512<float> n = Vector512.Round(x);
        Vector512<float> f = x - n;
        Vector512<float> p = Vector512.FusedMultiplyAdd(Vector512.Create(C6), f, Vector512.Create(C5));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(C4));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(C3));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(C2));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(C1));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512<float>.One);
        return Avx512F.Scale(p, n);
    }
}
