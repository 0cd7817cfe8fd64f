using System.Runtime.CompilerServices;

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
