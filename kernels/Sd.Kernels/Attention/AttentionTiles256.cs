using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Layout;

namespace Sd.Kernels.Attention;

/// <summary>
/// The AVX2 pieces of the attention kernels: 16-query blocks (two 8-lane vectors). Without AVX-512 there are only
/// 16 ymm registers: the score microkernel keeps 6 x 2 accumulators and the P V one 4 x 2 (8 FMAs per 2 vector
/// loads and 4 broadcast loads; 5 x 2 measured level), leaving room for the operands.
/// </summary>
internal readonly unsafe struct AttentionTiles256 : IAttentionTiles<Vector256<float>>
{
    private const int Rows = 16;

    /// <summary>
    /// Six keys at a time (12 accumulators; the former four-key kernel, its exponentials inlined, measured 14-19%
    /// slower at 4096 keys, d = 40): see <see cref="IAttentionTiles{TVec}.ScoreBlocks"/>. The microkernel stores
    /// raw scores and <see cref="ExponentiateRows"/> finishes them in a second pass over the (L1-resident) tile:
    /// with the exponentials inlined after the key loop, the tile's max and sum stay live across it, and the JIT's
    /// register allocator then stores accumulators to the stack in every iteration of the channel loop (1.2-1.6x
    /// slower).
    /// </summary>
    public static int ScoreBlocks<TOut>(float* qt, float* k, nint ldk, int d, int count, float* st, ScoreTile<Vector256<float>>* tile)
        where TOut : struct, IScoreOutput
    {
        Vector256<float> start0 = tile->Start0, start1 = tile->Start1;
        int j = 0;
        for (; j + 6 <= count; j += 6)
        {
            float* k0 = k + j * ldk;
            float* k1 = k0 + ldk;
            float* k2 = k1 + ldk;
            float* k3 = k2 + ldk;
            float* k4 = k3 + ldk;
            float* k5 = k4 + ldk;
            Vector256<float> a00 = start0, a01 = start1, a10 = start0, a11 = start1, a20 = start0, a21 = start1;
            Vector256<float> a30 = start0, a31 = start1, a40 = start0, a41 = start1, a50 = start0, a51 = start1;
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
                b = Vector256.Create(k4[c]);
                a40 = Vector256.FusedMultiplyAdd(b, q0, a40);
                a41 = Vector256.FusedMultiplyAdd(b, q1, a41);
                b = Vector256.Create(k5[c]);
                a50 = Vector256.FusedMultiplyAdd(b, q0, a50);
                a51 = Vector256.FusedMultiplyAdd(b, q1, a51);
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
            a40.Store(s + 64);
            a41.Store(s + 72);
            a50.Store(s + 80);
            a51.Store(s + 88);
        }
        if (TOut.Exponentiate)
        {
            ExponentiateRows(st, j, tile);
        }
        return j;
    }

    /// <summary>
    /// The <see cref="ShiftedExponentials"/> finish of <paramref name="keys"/> stored score rows, in place, folded
    /// into the tile's max and sum. Not inlined, so that nothing it keeps live reaches the microkernel's loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ExponentiateRows(float* s, int keys, ScoreTile<Vector256<float>>* tile)
    {
        Vector256<float> max0 = tile->Max0, max1 = tile->Max1, sum0 = tile->Sum0, sum1 = tile->Sum1;
        for (int r = 0; r < keys; r++, s += Rows)
        {
            ScoreOutput.Store<Vector256<float>, F32x8, AttentionTiles256, ShiftedExponentials>(
                Vector256.Load(s), Vector256.Load(s + 8), s, ref max0, ref max1, ref sum0, ref sum1);
        }
        tile->Max0 = max0;
        tile->Max1 = max1;
        tile->Sum0 = sum0;
        tile->Sum1 = sum1;
    }

    /// <summary>
    /// 32 keys: a 256-key tile's P (16 KiB) and V rows (40 KiB at d = 40) overflow a 32 KiB L1, and every 4-channel
    /// pass re-read them. Zen 3, one thread, alternating in one process: 4096 tokens d = 40 and 1024 tokens d = 80
    /// 4-5% faster, 256 tokens d = 160 7%; 16 and 64 keys about as fast; 77 keys (two chunks and 13) level.
    /// </summary>
    public static int AccumulateKeys => 32;

    /// <summary>Four channels at a time: see <see cref="IAttentionTiles{TVec}.AccumulateBlocks"/>.</summary>
    public static int AccumulateBlocks(
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
        return c;
    }

    /// <summary>
    /// <see cref="IAttentionTiles{TVec}.Exp2"/> with 2^n built in the exponent field. x is clamped at -127, where
    /// that field is 0, so everything further below the max comes out exactly 0 (no subnormals, no clamp-overflow
    /// handling needed).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2(Vector256<float> x)
    {
        x = Vector256.MaxNative(Vector256.Create(-127f), x); // one MAXPS (Max is three); NaN x stays NaN
        Vector256<float> n = Vector256.Round(x);
        Vector256<float> p = Exp2Polynomial.Evaluate<Vector256<float>, F32x8>(x - n);
        return p * ((Vector256.ConvertToInt32Native(n) + Vector256.Create(127)) << 23).AsSingle();
    }

    /// <summary>See <see cref="RegisterTranspose.Transpose8x8"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose(Vector256<float>* v) => RegisterTranspose.Transpose8x8(v);
}
