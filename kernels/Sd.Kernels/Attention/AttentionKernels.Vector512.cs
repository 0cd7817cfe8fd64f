using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Edges = Sd.Kernels.Attention.AttentionTranspose512;
using Tiles = Sd.Kernels.Attention.AttentionTiles512;

namespace Sd.Kernels.Attention;

public static unsafe partial class AttentionKernels
{
    /// <summary>
    /// Keys per flash tile (Bc; the query block is Br = 32). The 256 x 32 score tile is 32 KiB, beside the 32 x d
    /// query and output tiles (5 KiB each at d = 40), so at d = 40 everything sits in the 48 KiB L1; at d = 160 the
    /// three spill to L2 without a measurable loss. Long tiles amortize the per-tile work (row max, the rescale
    /// riding on the output accumulator reload): 256 measured 1-2% faster than 128 at 4096 keys.
    /// </summary>
    private const int FlashKeyTile512 = 256;

    /// <summary>Flash attention, AVX-512: scratch (2d + 256) x 32 floats per thread (42 KiB at d = 40).</summary>
    public static void FlashAttention_Vector512(in AttentionProblem problem)
    {
        nint scratch = (nint)(2 * problem.HeadDim + FlashKeyTile512) * Tiles.Rows;
        RunParallel(problem, &FlashSlice512, scratch, Tiles.Rows, splitHeads: true);
    }

    /// <summary>Partially fused softmax, AVX-512: scratch (2d + Lk) x 32 floats per thread.</summary>
    public static void PartialSoftmaxAttention_Vector512(in AttentionProblem problem)
    {
        nint scratch = (nint)(2 * problem.HeadDim + problem.KeyLength) * Tiles.Rows;
        RunParallel(problem, &PartialSoftmaxSlice512, scratch, Tiles.Rows, splitHeads: true);
    }

    /// <summary>
    /// Naive three-pass baseline, AVX-512: one task per head, each materializing its whole Lq x Lk probability
    /// matrix (rounded up to 32 query rows) in per-thread scratch.
    /// </summary>
    public static void NaiveAttention_Vector512(in AttentionProblem problem)
    {
        nint blocks = (problem.QueryLength + Tiles.Rows - 1) / Tiles.Rows;
        nint scratch = (2 * problem.HeadDim + blocks * problem.KeyLength) * Tiles.Rows;
        RunParallel(problem, &NaiveSlice512, scratch, Tiles.Rows, splitHeads: false);
    }

    private static void FlashSlice512(Job* job, HeadSlice* slice, float* scratch)
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
            // Causal: keys after the block's last query are hidden from all of it, so they are not even scored.
            int keys = p.Causal ? Math.Min(p.KeyLength, query0 + rows) : p.KeyLength;
            Vector512<float> max0 = Vector512.Create(Tiles.Hidden), max1 = max0;
            Vector512<float> sum0 = Vector512<float>.Zero, sum1 = Vector512<float>.Zero;
            for (int key0 = 0; key0 < keys; key0 += FlashKeyTile512)
            {
                int count = Math.Min(FlashKeyTile512, keys - key0);
                Tiles.Scores(qt, slice->K + key0 * p.Ldk, p.Ldk, d, count, st);
                if (p.Causal && key0 + count - 1 > query0)
                {
                    Tiles.MaskCausal(st, key0, count, query0);
                }
                // Online softmax: when the running max grows, everything summed so far (the sum and the output
                // accumulator) is rescaled by alpha = 2^(old max - new max); alpha is 0 on the first tile.
                Vector512<float> new0 = max0, new1 = max1;
                Tiles.RowMax(st, count, ref new0, ref new1);
                Vector512<float> alpha0 = Tiles.Exp2(max0 - new0);
                Vector512<float> alpha1 = Tiles.Exp2(max1 - new1);
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

    private static void PartialSoftmaxSlice512(Job* job, HeadSlice* slice, float* scratch)
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
            // The block's score rows are complete, so one exact (max, sum) reduction replaces the online rescaling;
            // 2^(s - max) is written over the scores once and 1/sum is applied to the output, not to P.
            Vector512<float> max0 = Vector512.Create(Tiles.Hidden), max1 = max0;
            Vector512<float> sum0 = Vector512<float>.Zero, sum1 = Vector512<float>.Zero;
            Tiles.RowMax(st, keys, ref max0, ref max1);
            Tiles.Exponentiate(st, keys, max0, max1, ref sum0, ref sum1);
            NativeMemory.Clear(ot, (nuint)(d * Tiles.Rows * sizeof(float)));
            Tiles.Accumulate(st, slice->V, p.Ldv, d, keys, Vector512<float>.One, Vector512<float>.One, ot);
            Edges.StoreOutput(ot, sum0, sum1, d, rows, slice->O + r0 * p.Ldo, p.Ldo);
        }
    }

    private static void NaiveSlice512(Job* job, HeadSlice* slice, float* scratch)
    {
        ref AttentionProblem p = ref job->Problem;
        int d = p.HeadDim;
        int lk = p.KeyLength;
        float* qt = scratch;
        float* ot = qt + d * Tiles.Rows;
        float* matrix = ot + d * Tiles.Rows; // [query block][key][32 lanes]
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
            Vector512<float> max0 = Vector512.Create(Tiles.Hidden), max1 = max0;
            Vector512<float> sum0 = Vector512<float>.Zero, sum1 = Vector512<float>.Zero;
            Tiles.RowMax(st, lk, ref max0, ref max1);
            Tiles.Exponentiate(st, lk, max0, max1, ref sum0, ref sum1);
            Tiles.Normalize(st, lk, sum0, sum1);
        }
        // Pass 3: O = P V.
        for (int r0 = 0, block = 0; r0 < slice->Rows; r0 += Tiles.Rows, block++)
        {
            Vector512<float> one = Vector512<float>.One;
            NativeMemory.Clear(ot, (nuint)(d * Tiles.Rows * sizeof(float)));
            Tiles.Accumulate(matrix + block * blockFloats, slice->V, p.Ldv, d, lk, one, one, ot);
            Edges.StoreOutput(ot, one, one, d, Math.Min(Tiles.Rows, slice->Rows - r0), slice->O + r0 * p.Ldo, p.Ldo);
        }
    }
}
