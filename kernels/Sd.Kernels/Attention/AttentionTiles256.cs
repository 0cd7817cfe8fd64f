using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Attention;

/// <summary>
/// AVX2 counterparts of <see cref="AttentionTiles512"/>: a query block is <see cref="Rows"/> = 16 queries, two
/// 8-lane vectors, buffers one 16-float row per key or channel. Without AVX-512 there are only 16 ymm registers, so
/// the microkernels keep 4 x 2 accumulators (8 FMAs per 2 vector loads and 4 broadcast loads) and leave room for
/// the operands.
/// </summary>
internal static unsafe class AttentionTiles256
{
    public const int Rows = 16;

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

    /// <summary>st[j*16 + r] = sum_c k[j*ldk + c] * qt[c*16 + r] for keys j in [0, count).</summary>
    public static void Scores(float* qt, float* k, nint ldk, int d, int count, float* st)
    {
        int j = 0;
        for (; j + 4 <= count; j += 4)
        {
            float* k0 = k + j * ldk;
            float* k1 = k0 + ldk;
            float* k2 = k1 + ldk;
            float* k3 = k2 + ldk;
            Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
            float* qc = qt;
            for (int c = 0; c < d; c++, qc += Rows)
            {
                Vector256<float> q0 = Vector256.Load(qc);
                Vector256<float> q1 = Vector256.Load(qc + 8);
                Vector256<float> b = Vector256.Create(k0[c]);
                a00 = Vector256.FusedMultiplyAdd(b, q0, a00);
                a01 = Vector256.FusedMultiplyAdd(b, q1, a01);
                b = Vector256.Create(k1[c]);
                a10 = Vector256.FusedMultiplyAdd(b, q0, a10);
                a11 = Vector256.FusedMultiplyAdd(b, q1, a11);
                b = Vector256.Create(k2[c]);
                a20 = Vector256.FusedMultiplyAdd(b, q0, a20);
                a21 = Vector256.FusedMultiplyAdd(b, q1, a21);
                b = Vector256.Create(k3[c]);
                a30 = Vector256.FusedMultiplyAdd(b, q0, a30);
                a31 = Vector256.FusedMultiplyAdd(b, q1, a31);
            }
            float* s = st + j * Rows;
            a00.Store(s);
            a01.Store(s + 8);
            a10.Store(s + 16);
            a11.Store(s + 24);
            a20.Store(s + 32);
            a21.Store(s + 40);
            a30.Store(s + 48);
            a31.Store(s + 56);
        }
        for (; j < count; j++)
        {
            float* kj = k + j * ldk;
            Vector256<float> a0 = default, a1 = default;
            for (int c = 0; c < d; c++)
            {
                Vector256<float> b = Vector256.Create(kj[c]);
                a0 = Vector256.FusedMultiplyAdd(b, Vector256.Load(qt + c * Rows), a0);
                a1 = Vector256.FusedMultiplyAdd(b, Vector256.Load(qt + c * Rows + 8), a1);
            }
            a0.Store(st + j * Rows);
            a1.Store(st + j * Rows + 8);
        }
    }

    /// <summary>
    /// Hides key <paramref name="key0"/> + j from query <paramref name="query0"/> + r when the key is later (score
    /// <see cref="Hidden"/>), for the key rows of a tile that cross the diagonal. Key 0 is never hidden, so every
    /// query has a real running max from its first tile on.
    /// </summary>
    public static void MaskCausal(float* st, int key0, int count, int query0)
    {
        Vector256<int> lanes0 = Vector256.Create(query0) + Vector256<int>.Indices;
        Vector256<int> lanes1 = lanes0 + Vector256.Create(8);
        Vector256<float> hidden = Vector256.Create(Hidden);
        for (int j = Math.Max(0, query0 + 1 - key0); j < count; j++)
        {
            Vector256<int> key = Vector256.Create(key0 + j);
            float* s = st + j * Rows;
            Vector256.ConditionalSelect(Vector256.GreaterThan(key, lanes0).AsSingle(), hidden, Vector256.Load(s))
                .Store(s);
            Vector256.ConditionalSelect(Vector256.GreaterThan(key, lanes1).AsSingle(), hidden, Vector256.Load(s + 8))
                .Store(s + 8);
        }
    }

    /// <summary>Per-lane max over <paramref name="count"/> score rows, folded into the running max0/max1.</summary>
    public static void RowMax(float* st, int count, ref Vector256<float> max0, ref Vector256<float> max1)
    {
        Vector256<float> m0 = max0, m1 = max1;
        for (int j = 0; j < count; j++)
        {
            m0 = Vector256.Max(m0, Vector256.Load(st + j * Rows));
            m1 = Vector256.Max(m1, Vector256.Load(st + j * Rows + 8));
        }
        max0 = m0;
        max1 = m1;
    }

    /// <summary>st = 2^(st - max) in place; the per-lane sums are added to sum0/sum1.</summary>
    public static void Exponentiate(
        float* st, int count, Vector256<float> max0, Vector256<float> max1,
        ref Vector256<float> sum0, ref Vector256<float> sum1)
    {
        Vector256<float> s0 = Vector256<float>.Zero, s1 = Vector256<float>.Zero;
        for (int j = 0; j < count; j++)
        {
            float* s = st + j * Rows;
            Vector256<float> e0 = Exp2(Vector256.Load(s) - max0);
            Vector256<float> e1 = Exp2(Vector256.Load(s + 8) - max1);
            e0.Store(s);
            e1.Store(s + 8);
            s0 += e0;
            s1 += e1;
        }
        sum0 += s0;
        sum1 += s1;
    }

    /// <summary>st *= 1/sum per lane: the naive baseline's explicit normalized probabilities.</summary>
    public static void Normalize(float* st, int count, Vector256<float> sum0, Vector256<float> sum1)
    {
        Vector256<float> inverse0 = Vector256<float>.One / sum0;
        Vector256<float> inverse1 = Vector256<float>.One / sum1;
        for (int j = 0; j < count; j++)
        {
            float* s = st + j * Rows;
            (Vector256.Load(s) * inverse0).Store(s);
            (Vector256.Load(s + 8) * inverse1).Store(s + 8);
        }
    }

    /// <summary>
    /// ot[c*16 + r] = ot[c*16 + r] * alpha[r] + sum_j v[j*ldv + c] * pt[j*16 + r] for every channel c in [0, d) and
    /// keys j in [0, count): the flash rescale rides on the accumulator load. ot must hold finite values (zeroed
    /// before a block's first tile, where alpha is 0).
    /// </summary>
    public static void Accumulate(
        float* pt, float* v, nint ldv, int d, int count, Vector256<float> alpha0, Vector256<float> alpha1, float* ot)
    {
        int c = 0;
        for (; c + 4 <= d; c += 4)
        {
            float* o = ot + c * Rows;
            Vector256<float> a00 = Vector256.Load(o) * alpha0, a01 = Vector256.Load(o + 8) * alpha1;
            Vector256<float> a10 = Vector256.Load(o + 16) * alpha0, a11 = Vector256.Load(o + 24) * alpha1;
            Vector256<float> a20 = Vector256.Load(o + 32) * alpha0, a21 = Vector256.Load(o + 40) * alpha1;
            Vector256<float> a30 = Vector256.Load(o + 48) * alpha0, a31 = Vector256.Load(o + 56) * alpha1;
            float* vr = v + c;
            float* p = pt;
            for (int j = 0; j < count; j++, vr += ldv, p += Rows)
            {
                Vector256<float> p0 = Vector256.Load(p);
                Vector256<float> p1 = Vector256.Load(p + 8);
                Vector256<float> b = Vector256.Create(vr[0]);
                a00 = Vector256.FusedMultiplyAdd(b, p0, a00);
                a01 = Vector256.FusedMultiplyAdd(b, p1, a01);
                b = Vector256.Create(vr[1]);
                a10 = Vector256.FusedMultiplyAdd(b, p0, a10);
                a11 = Vector256.FusedMultiplyAdd(b, p1, a11);
                b = Vector256.Create(vr[2]);
                a20 = Vector256.FusedMultiplyAdd(b, p0, a20);
                a21 = Vector256.FusedMultiplyAdd(b, p1, a21);
                b = Vector256.Create(vr[3]);
                a30 = Vector256.FusedMultiplyAdd(b, p0, a30);
                a31 = Vector256.FusedMultiplyAdd(b, p1, a31);
            }
            a00.Store(o);
            a01.Store(o + 8);
            a10.Store(o + 16);
            a11.Store(o + 24);
            a20.Store(o + 32);
            a21.Store(o + 40);
            a30.Store(o + 48);
            a31.Store(o + 56);
        }
        for (; c < d; c++)
        {
            float* o = ot + c * Rows;
            Vector256<float> a0 = Vector256.Load(o) * alpha0, a1 = Vector256.Load(o + 8) * alpha1;
            for (int j = 0; j < count; j++)
            {
                Vector256<float> b = Vector256.Create(v[j * ldv + c]);
                a0 = Vector256.FusedMultiplyAdd(b, Vector256.Load(pt + j * Rows), a0);
                a1 = Vector256.FusedMultiplyAdd(b, Vector256.Load(pt + j * Rows + 8), a1);
            }
            a0.Store(o);
            a1.Store(o + 8);
        }
    }

    /// <summary>
    /// 2^x for x &lt;= 0 (a score minus its row max), relative error under 1e-7: x = n + f with n = round(x), a
    /// polynomial for 2^f, and 2^n built in the exponent field. x is clamped at -127, where that field is 0, so
    /// everything further below the max comes out exactly 0 (no subnormals, no clamp-overflow handling needed).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2(Vector256<float> x)
    {
        x = Vector256.Max(x, Vector256.Create(-127f));
        Vector256<float> n = Vector256.Round(x);
        Vector256<float> f = x - n;
        Vector256<float> p = Vector256.FusedMultiplyAdd(Vector256.Create(C6), f, Vector256.Create(C5));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(C4));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(C3));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(C2));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(C1));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256<float>.One);
        return p * ((Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23).AsSingle();
    }
}
