using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Attention;

public static unsafe partial class AttentionKernels
{
    /// <summary>
    /// Keys per flash tile (Bc; the query block is Br = 32, AVX2 16). The 256 x 32 score tile is 32 KiB, beside the
    /// 32 x d query and output tiles (5 KiB each at d = 40), so at d = 40 everything sits in the 48 KiB L1; at
    /// d = 160 the three spill to L2 without a measurable loss. Long tiles amortize the per-tile work (row max, the
    /// rescale riding on the output accumulator reload): 256 measured 1-2% faster than 128 at 4096 keys.
    /// </summary>
    private const int FlashKeyTile = 256;

    /// <summary>Flash attention, AVX-512: scratch (2d + 256) x 32 floats per thread (42 KiB at d = 40).</summary>
    public static void FlashAttention_Vector512(in AttentionProblem problem) =>
        QueryLanes<Vector512<float>, F32x16, AttentionTiles512>.Flash(problem);

    /// <summary>Flash attention, AVX2: scratch (2d + 256) x 16 floats per thread.</summary>
    public static void FlashAttention_Vector256(in AttentionProblem problem) =>
        QueryLanes<Vector256<float>, F32x8, AttentionTiles256>.Flash(problem);

    /// <summary>Partially fused softmax, AVX-512: scratch (2d + Lk) x 32 floats per thread.</summary>
    public static void PartialSoftmaxAttention_Vector512(in AttentionProblem problem) =>
        QueryLanes<Vector512<float>, F32x16, AttentionTiles512>.PartialSoftmax(problem);

    /// <summary>Partially fused softmax, AVX2: scratch (2d + Lk) x 16 floats per thread.</summary>
    public static void PartialSoftmaxAttention_Vector256(in AttentionProblem problem) =>
        QueryLanes<Vector256<float>, F32x8, AttentionTiles256>.PartialSoftmax(problem);

    /// <summary>
    /// Naive three-pass baseline, AVX-512: one task per head, each materializing its whole Lq x Lk probability
    /// matrix (rounded up to 32 query rows) in per-thread scratch.
    /// </summary>
    public static void NaiveAttention_Vector512(in AttentionProblem problem) =>
        QueryLanes<Vector512<float>, F32x16, AttentionTiles512>.Naive(problem);

    /// <summary>
    /// Naive three-pass baseline, AVX2: one task per head, each materializing its whole Lq x Lk probability
    /// matrix (rounded up to 16 query rows) in per-thread scratch.
    /// </summary>
    public static void NaiveAttention_Vector256(in AttentionProblem problem) =>
        QueryLanes<Vector256<float>, F32x8, AttentionTiles256>.Naive(problem);

    /// <summary>
    /// The vector variants, written once for both widths: TVec is the vector type, V its float operations, T the
    /// width's microkernels, Exp2 and transpose. All three are structs, so the JIT compiles each width's
    /// instantiation as if it were written against Vector256 or Vector512 directly.
    /// </summary>
    private static partial class QueryLanes<TVec, V, T>
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
        where T : struct, IAttentionTiles<TVec>
    {
        /// <summary>
        /// Queries per block: two vectors. A property rather than a field so that, inlined, it is a constant as the
        /// JIT imports the code (see <see cref="IF32Vector{TVec}.Count"/>).
        /// </summary>
        private static int Rows
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => 2 * V.Count;
        }

        public static void Flash(in AttentionProblem problem) => OnlineSoftmax(problem, FlashKeyTile);

        /// <summary>
        /// One tile spanning every key: the online softmax reduces to one (offset, sum) reduction, the exponentials
        /// formed in the score microkernel against the max of the row's first keys (the exact max when a score passes
        /// that by more than the rescale limit) and written over the scores once, and 1/sum applied to the output, not
        /// to P.
        /// </summary>
        public static void PartialSoftmax(in AttentionProblem problem) => OnlineSoftmax(problem, problem.KeyLength);

        /// <summary>
        /// The flash loop over tiles of <paramref name="keyTile"/> keys: scratch (2d + keyTile) x Rows floats per thread,
        /// K and V made contiguous per head first where that pays (see <see cref="CompactKeysMinQueries"/>).
        /// </summary>
        private static void OnlineSoftmax(in AttentionProblem problem, int keyTile)
        {
            nint scratch = (nint)(2 * problem.HeadDim + keyTile) * Rows;
            RunParallel(problem, &FlashSlice, scratch, Rows, splitHeads: true, keyTile, CompactKeys(problem));
        }

        public static void Naive(in AttentionProblem problem)
        {
            nint blocks = (problem.QueryLength + Rows - 1) / Rows;
            nint scratch = (2 * problem.HeadDim + blocks * problem.KeyLength) * Rows;
            RunParallel(problem, &NaiveSlice, scratch, Rows, splitHeads: false);
        }

        private static void FlashSlice(Job* job, HeadSlice* slice, float* scratch)
        {
            ref AttentionProblem p = ref job->Problem;
            int d = p.HeadDim;
            float* qt = scratch;
            float* ot = qt + d * Rows;
            float* st = ot + d * Rows;
            for (int r0 = 0; r0 < slice->Rows; r0 += Rows)
            {
                int rows = Math.Min(Rows, slice->Rows - r0);
                int query0 = slice->Row0 + r0;
                int nextRows = Math.Min(Rows, slice->Rows - r0 - Rows);
                PrefetchHeadRows(slice->Q + (r0 + Rows) * p.Ldq, p.Ldq, nextRows, d);
                PrefetchHeadRows(slice->O + (r0 + Rows) * p.Ldo, p.Ldo, nextRows, d);
                PackQuery(slice->Q + r0 * p.Ldq, p.Ldq, rows, d, p.Scale, qt);
                NativeMemory.Clear(ot, (nuint)(d * Rows * sizeof(float)));
                // Causal: keys after the block's last query are hidden from all of it, so they are not even scored.
                int keys = p.Causal ? Math.Min(p.KeyLength, query0 + rows) : p.KeyLength;
                TVec max0 = V.Create(Hidden), max1 = max0;
                TVec sum0 = V.Zero, sum1 = V.Zero;
                for (int key0 = 0; key0 < keys; key0 += job->KeyTile)
                {
                    int count = Math.Min(job->KeyTile, keys - key0);
                    float* k = slice->K + key0 * slice->Ldk;
                    float* v = slice->V + key0 * slice->Ldv;
                    bool masked = p.Causal && key0 + count - 1 > query0;
                    // Lazy rescaling: the running max is only an offset that the scores are shifted by (the first
                    // tile takes the max of its first keys), raised (by the exact path below, the tile's scores
                    // computed again) only when a tile passes it by more than the limit. The common tile needs no
                    // max pass, rescale or subtraction. Two threads, 2x8 heads of 4096 tokens, d = 40: 120-130 ms
                    // against 125-140; of 1024 tokens (one tile), d = 80: 16.2-16.7 ms against 16.9-18.1.
                    if (!masked && (key0 == 0
                        ? TryExponentiateFirst(qt, k, slice->Ldk, d, count, st, ref max0, ref max1, ref sum0, ref sum1)
                        : TryExponentiateShifted(qt, k, slice->Ldk, d, count, st, max0, max1, ref sum0, ref sum1)))
                    {
                        Accumulate(st, v, slice->Ldv, d, count, V.Create(1f), V.Create(1f), ot);
                        continue;
                    }
                    Scores(qt, k, slice->Ldk, d, count, st);
                    if (masked)
                    {
                        MaskCausal(st, key0, count, query0);
                    }
                    // Online softmax: when the running max grows, everything summed so far (the sum and the output
                    // accumulator) is rescaled by alpha = 2^(old max - new max); alpha is 0 on the first tile.
                    TVec new0 = max0, new1 = max1;
                    RowMax(st, count, ref new0, ref new1);
                    TVec alpha0 = T.Exp2(V.Subtract(max0, new0));
                    TVec alpha1 = T.Exp2(V.Subtract(max1, new1));
                    sum0 = V.Multiply(sum0, alpha0);
                    sum1 = V.Multiply(sum1, alpha1);
                    Exponentiate(st, count, new0, new1, ref sum0, ref sum1);
                    Accumulate(st, v, slice->Ldv, d, count, alpha0, alpha1, ot);
                    max0 = new0;
                    max1 = new1;
                }
                StoreOutput(ot, sum0, sum1, d, rows, slice->O + r0 * p.Ldo, p.Ldo);
            }
        }

        private static void NaiveSlice(Job* job, HeadSlice* slice, float* scratch)
        {
            ref AttentionProblem p = ref job->Problem;
            int d = p.HeadDim;
            int lk = p.KeyLength;
            float* qt = scratch;
            float* ot = qt + d * Rows;
            float* matrix = ot + d * Rows; // [query block][key][Rows lanes]
            nint blockFloats = (nint)lk * Rows;
            // Pass 1: the whole scaled score matrix.
            for (int r0 = 0, block = 0; r0 < slice->Rows; r0 += Rows, block++)
            {
                float* st = matrix + block * blockFloats;
                PackQuery(slice->Q + r0 * p.Ldq, p.Ldq, Math.Min(Rows, slice->Rows - r0), d, p.Scale, qt);
                Scores(qt, slice->K, slice->Ldk, d, lk, st);
                if (p.Causal)
                {
                    MaskCausal(st, 0, lk, slice->Row0 + r0);
                }
            }
            // Pass 2: softmax, normalized probabilities written back.
            for (int r0 = 0, block = 0; r0 < slice->Rows; r0 += Rows, block++)
            {
                float* st = matrix + block * blockFloats;
                TVec max0 = V.Create(Hidden), max1 = max0;
                TVec sum0 = V.Zero, sum1 = V.Zero;
                RowMax(st, lk, ref max0, ref max1);
                Exponentiate(st, lk, max0, max1, ref sum0, ref sum1);
                Normalize(st, lk, sum0, sum1);
            }
            // Pass 3: O = P V.
            for (int r0 = 0, block = 0; r0 < slice->Rows; r0 += Rows, block++)
            {
                TVec one = V.Create(1f);
                NativeMemory.Clear(ot, (nuint)(d * Rows * sizeof(float)));
                Accumulate(matrix + block * blockFloats, slice->V, slice->Ldv, d, lk, one, one, ot);
                StoreOutput(ot, one, one, d, Math.Min(Rows, slice->Rows - r0), slice->O + r0 * p.Ldo, p.Ldo);
            }
        }
    }
}
