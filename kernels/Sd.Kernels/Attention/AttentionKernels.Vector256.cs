using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Edges = Sd.Kernels.Attention.AttentionTranspose256;
using Tiles = Sd.Kernels.Attention.AttentionTiles256;

namespace Sd.Kernels.Attention;

// The AVX2 variants: the same algorithms as the AVX-512 ones (see there) with 16-query blocks.
public static unsafe partial class AttentionKernels
{
    /// <summary>
    /// Keys per flash tile: the 256 x 16 score tile is 16 KiB, beside the 16 x d query and output tiles.
    /// </summary>
    private const int FlashKeyTile256 = 256;

    /// <summary>Flash attention, AVX2: scratch (2d + 256) x 16 floats per thread.</summary>
    public static void FlashAttention_Vector256(in AttentionProblem problem)
    {
        nint scratch = (nint)(2 * problem.HeadDim + FlashKeyTile256) * Tiles.Rows;
        RunParallel(problem, &FlashSlice256, scratch, Tiles.Rows, splitHeads: true);
    }

    /// <summary>Partially fused softmax, AVX2: scratch (2d + Lk) x 16 floats per thread.</summary>
    public static void PartialSoftmaxAttention_Vector256(in AttentionProblem problem)
    {
        nint scratch = (nint)(2 * problem.HeadDim + problem.KeyLength) * Tiles.Rows;
        RunParallel(problem, &PartialSoftmaxSlice256, scratch, Tiles.Rows, splitHeads: true);
    }

    /// <summary>
    /// Naive three-pass baseline, AVX2: one task per head, each materializing its whole Lq x Lk probability
    /// matrix (rounded up to 16 query rows) in per-thread scratch.
    /// </summary>
    public static void NaiveAttention_Vector256(in AttentionProblem problem)
    {
        nint blocks = (problem.QueryLength + Tiles.Rows - 1) / Tiles.Rows;
        nint scratch = (2 * problem.HeadDim + blocks * problem.KeyLength) * Tiles.Rows;
        RunParallel(problem, &NaiveSlice256, scratch, Tiles.Rows, splitHeads: false);
    }

    private static void FlashSlice256(Job* job, HeadSlice* slice, float* scratch)
    {
        ref AttentionProblem p = ref job->Problem;
        int d = p.HeadDim;
        float* qt = scratch;
        float* ot = qt + d * Tiles.Rows;
        float* st = ot + d * Tiles.Rows;
        for (int r0 = 0; r0 < slice->Rows; r0 += Tiles.Rows)
        {
            int rows = Math.Min(Tiles.Rows, slice->Rows - r0);
            int query0 = slice->Row0 + r0;
            Edges.PackQuery(slice->Q + r0 * p.Ldq, p.Ldq, rows, d, p.Scale, qt);
            NativeMemory.Clear(ot, (nuint)(d * Tiles.Rows * sizeof(float)));
                int keys = p.Causal ? Math.Min(p.KeyLength, query0 + rows) : p.KeyLength;
            Vector256<float> max0 = Vector256.Create(Tiles.Hidden), max1 = max0;
            Vector256<float> sum0 = Vector256<float>.Zero, sum1 = Vector256<float>.Zero;
            for (int key0 = 0; key0 < keys; key0 += FlashKeyTile256)
            {
                int count = Math.Min(FlashKeyTile256, keys - key0);
                Tiles.Scores(qt, slice->K + key0 * p.Ldk, p.Ldk, d, count, st);
                if (p.Causal && key0 + count - 1 > query0)
                {
                    Tiles.MaskCausal(st, key0, count, query0);
                }
                Vector256<float> new0 = max0, new1 = max1;
                Tiles.RowMax(st, count, ref new0, ref new1);
                Vector256<float> alpha0 = Tiles.Exp2(max0 - new0);
                Vector256<float> alpha1 = Tiles.Exp2(max1 - new1);
                sum0 *= alpha0;
                sum1 *= alpha1;
                Tiles.Exponentiate(st, count, new0, new1, ref sum0, ref sum1);
                Tiles.Accumulate(st, slice->V + key0 * p.Ldv, p.Ldv, d, count, alpha0, alpha1, ot);
                max0 = new0;
                max1 = new1;
            }
            Edges.StoreOutput(ot, sum0, sum1, d, rows, slice->O + r0 * p.Ldo, p.Ldo);
        }
    }

    private static void PartialSoftmaxSlice256(Job* job, HeadSlice* slice, float* scratch)
    {
        ref AttentionProblem p = ref job->Problem;
        int d = p.HeadDim;
        float* qt = scratch;
        float* ot = qt + d * Tiles.Rows;
        float* st = ot + d * Tiles.Rows;
        for (int r0 = 0; r0 < slice->Rows; r0 += Tiles.Rows)
        {
            int rows = Math.Min(Tiles.Rows, slice->Rows - r0);
            int query0 = slice->Row0 + r0;
            Edges.PackQuery(slice->Q + r0 * p.Ldq, p.Ldq, rows, d, p.Scale, qt);
            int keys = p.Causal ? Math.Min(p.KeyLength, query0 + rows) : p.KeyLength;
            Tiles.Scores(qt, slice->K, p.Ldk, d, keys, st);
            if (p.Causal && keys - 1 > query0)
            {
                Tiles.MaskCausal(st, 0, keys, query0);
            }
            Vector256<float> max0 = Vector256.Create(Tiles.Hidden), max1 = max0;
            Vector256<float> sum0 = Vector256<float>.Zero, sum1 = Vector256<float>.Zero;
            Tiles.RowMax(st, keys, ref max0, ref max1);
            Tiles.Exponentiate(st, keys, max0, max1, ref sum0, ref sum1);
            NativeMemory.Clear(ot, (nuint)(d * Tiles.Rows * sizeof(float)));
            Tiles.Accumulate(st, slice->V, p.Ldv, d, keys, Vector256<float>.One, Vector256<float>.One, ot);
            Edges.StoreOutput(ot, sum0, sum1, d, rows, slice->O + r0 * p.Ldo, p.Ldo);
        }
    }

    private static void NaiveSlice256(Job* job, HeadSlice* slice, float* scratch)
    {
        ref AttentionProblem p = ref job->Problem;
        int d = p.HeadDim;
        int lk = p.KeyLength;
        float* qt = scratch;
        float* ot = qt + d * Tiles.Rows;
        float* matrix = ot + d * Tiles.Rows; // [query block][key][16 lanes]
        nint blockFloats = (nint)lk * Tiles.Rows;
        // Pass 1: the whole scaled score matrix.
        for (int r0 = 0, block = 0; r0 < slice->Rows; r0 += Tiles.Rows, block++)
        {
            float* st = matrix + block * blockFloats;
            Edges.PackQuery(slice->Q + r0 * p.Ldq, p.Ldq, Math.Min(Tiles.Rows, slice->Rows - r0), d, p.Scale, qt);
            Tiles.Scores(qt, slice->K, p.Ldk, d, lk, st);
            if (p.Causal)
            {
                Tiles.MaskCausal(st, 0, lk, slice->Row0 + r0);
            }
        }
        // Pass 2: softmax, normalized probabilities written back.
        for (int r0 = 0, block = 0; r0 < slice->Rows; r0 += Tiles.Rows, block++)
        {
            float* st = matrix + block * blockFloats;
            Vector256<float> max0 = Vector256.Create(Tiles.Hidden), max1 = max0;
            Vector256<float> sum0 = Vector256<float>.Zero, sum1 = Vector256<float>.Zero;
            Tiles.RowMax(st, lk, ref max0, ref max1);
            Tiles.Exponentiate(st, lk, max0, max1, ref sum0, ref sum1);
            Tiles.Normalize(st, lk, sum0, sum1);
        }
        // Pass 3: O = P V.
        for (int r0 = 0, block = 0; r0 < slice->Rows; r0 += Tiles.Rows, block++)
        {
            Vector256<float> one = Vector256<float>.One;
            NativeMemory.Clear(ot, (nuint)(d * Tiles.Rows * sizeof(float)));
            Tiles.Accumulate(matrix + block * blockFloats, slice->V, p.Ldv, d, lk, one, one, ot);
            Edges.StoreOutput(ot, one, one, d, Math.Min(Tiles.Rows, slice->Rows - r0), slice->O + r0 * p.Ldo, p.Ldo);
        }
    }
}
