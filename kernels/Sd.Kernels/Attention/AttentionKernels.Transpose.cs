using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Sd.Kernels.Attention;

public static unsafe partial class AttentionKernels
{
    // Moving a query block between the row-major Q/O layout and the query-lane layout, V.Count x V.Count tiles at a
    // time through the width's in-register transpose. With few keys (cross-attention over 77 tokens) these edges are
    // a sizeable share of a block's work, so they are vectorized: element-wise copies cost about as much as the
    // block's softmax. Head-dim tails use masked loads/stores so that a row's neighbouring heads (another task's
    // output) are never touched.
    private static partial class QueryLanes<TVec, V, T>
    {
        /// <summary>Scores are kept in base-2 units (Q is pre-multiplied by log2 e): softmax needs only 2^x.</summary>
        private const float Log2E = 1.44269504088896341f;

        /// <summary>
        /// qt[c*Rows + r] = q[r*ldq + c] * scale * log2(e), so scores come out in base-2 units for
        /// <see cref="IAttentionTiles{TVec}.Exp2"/>; lanes past <paramref name="rows"/> are zero.
        /// </summary>
        [SkipLocalsInit] // the transpose buffer is fully written before it is read
        private static void PackQuery(float* q, nint ldq, int rows, int d, float scale, float* qt)
        {
            TVec* v = stackalloc TVec[V.Count];
            TVec factor = V.Create(scale * Log2E);
            for (int r0 = 0; r0 < Rows; r0 += V.Count)
            {
                int count = Math.Clamp(rows - r0, 0, V.Count);
                for (int c0 = 0; c0 < d; c0 += V.Count)
                {
                    int columns = Math.Min(V.Count, d - c0);
                    TVec mask = V.Mask(columns);
                    for (int r = 0; r < V.Count; r++)
                    {
                        v[r] = r < count ? V.MaskedLoad(q + (r0 + r) * ldq + c0, mask) : V.Zero;
                    }
                    T.Transpose(v);
                    for (int c = 0; c < columns; c++)
                    {
                        V.Store(V.Multiply(v[c], factor), qt + (c0 + c) * Rows + r0);
                    }
                }
            }
        }

        /// <summary>
        /// Requests the next query block's Q and O head slices (d floats of each of <paramref name="rows"/> rows, none
        /// when rows &lt;= 0) while this block computes. A head's slice of a row is 2-3 cache lines, one row stride apart,
        /// which the hardware prefetchers do not follow: with few keys the block's computation is shorter than waiting
        /// for those lines. Two threads, 2x8 heads, 4096 queries x 77 text tokens, d = 40 (alternating runs): 4.8-5.7 ->
        /// 4.0-4.1 ms; one thread 8.8-9.1 -> 6.5-6.7 ms; 1024 queries x 77 tokens (d = 40 and 80) and self-attention
        /// over 1024 and 4096 tokens within noise.
        /// </summary>
        private static void PrefetchHeadRows(float* row, nint ld, int rows, int d)
        {
            for (int r = 0; r < rows; r++, row += ld)
            {
                for (int c = 0; c < d; c += 16)
                {
                    Sse.Prefetch0(row + c);
                }
                Sse.Prefetch0(row + d - 1);
            }
        }

        /// <summary>
        /// o[r*ldo + c] = ot[c*Rows + r] / sum[r] for the block's <paramref name="rows"/> real queries.
        /// </summary>
        [SkipLocalsInit]
        private static void StoreOutput(float* ot, TVec sum0, TVec sum1, int d, int rows, float* o, nint ldo)
        {
            TVec* v = stackalloc TVec[V.Count];
            for (int r0 = 0; r0 < rows; r0 += V.Count)
            {
                int count = Math.Min(rows - r0, V.Count);
                TVec inverse = V.Divide(V.Create(1f), r0 == 0 ? sum0 : sum1);
                for (int c0 = 0; c0 < d; c0 += V.Count)
                {
                    int columns = Math.Min(V.Count, d - c0);
                    for (int c = 0; c < V.Count; c++)
                    {
                        v[c] = c < columns ? V.Multiply(V.Load(ot + (c0 + c) * Rows + r0), inverse) : V.Zero;
                    }
                    T.Transpose(v);
                    TVec mask = V.Mask(columns);
                    for (int r = 0; r < count; r++)
                    {
                        V.MaskedStore(o + (r0 + r) * ldo + c0, mask, v[r]);
                    }
                }
            }
        }
    }
}
