using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sd.Kernels.Attention;

/// <summary>
/// Moves a 32-query block between the row-major Q/O layout and the query-lane layout of
/// <see cref="AttentionTiles512"/>, 16x16 tiles at a time through an in-register transpose. With few keys
/// (cross-attention over 77 tokens) these edges are a sizeable share of a block's work, so they are vectorized:
/// element-wise copies cost about as much as the block's softmax. Head-dim tails use masked loads/stores so that a
/// row's neighbouring heads (another task's output) are never touched.
/// </summary>
internal static unsafe class AttentionTranspose512
{
    private const int Rows = AttentionTiles512.Rows;

    /// <summary>
    /// qt[c*32 + r] = q[r*ldq + c] * scale * log2(e), so scores come out in base-2 units for
    /// <see cref="AttentionTiles512.Exp2"/>; lanes past <paramref name="rows"/> are zero.
    /// </summary>
    [SkipLocalsInit] // the transpose buffer is fully written before it is read
    public static void PackQuery(float* q, nint ldq, int rows, int d, float scale, float* qt)
    {
        Vector512<float>* v = stackalloc Vector512<float>[16];
        Vector512<float> factor = Vector512.Create(scale * AttentionTiles512.Log2E);
        for (int r0 = 0; r0 < Rows; r0 += 16)
        {
            int count = Math.Clamp(rows - r0, 0, 16);
            for (int c0 = 0; c0 < d; c0 += 16)
            {
                int columns = Math.Min(16, d - c0);
                Vector512<float> mask = ColumnMask(columns);
                for (int r = 0; r < 16; r++)
                {
                    v[r] = r < count
                        ? Avx512F.MaskLoad(q + (r0 + r) * ldq + c0, mask, Vector512<float>.Zero)
                        : Vector512<float>.Zero;
                }
                Transpose(v);
                for (int c = 0; c < columns; c++)
                {
                    (v[c] * factor).Store(qt + (c0 + c) * Rows + r0);
                }
            }
        }
    }

    /// <summary>o[r*ldo + c] = ot[c*32 + r] / sum[r] for the block's <paramref name="rows"/> real queries.</summary>
    [SkipLocalsInit]
    public static void StoreOutput(
        float* ot, Vector512<float> sum0, Vector512<float> sum1, int d, int rows, float* o, nint ldo)
    {
        Vector512<float>* v = stackalloc Vector512<float>[16];
        for (int r0 = 0; r0 < rows; r0 += 16)
        {
            int count = Math.Min(rows - r0, 16);
            Vector512<float> inverse = Vector512<float>.One / (r0 == 0 ? sum0 : sum1);
            for (int c0 = 0; c0 < d; c0 += 16)
            {
                int columns = Math.Min(16, d - c0);
                for (int c = 0; c < 16; c++)
                {
                    v[c] = c < columns ? Vector512.Load(ot + (c0 + c) * Rows + r0) * inverse : Vector512<float>.Zero;
                }
                Transpose(v);
                Vector512<float> mask = ColumnMask(columns);
                for (int r = 0; r < count; r++)
                {
                    Avx512F.MaskStore(o + (r0 + r) * ldo + c0, mask, v[r]);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ColumnMask(int columns) =>
        Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(columns)).AsSingle();

    /// <summary>
    /// v[i] = row i on entry, column i on exit: 32-bit and 64-bit interleaves within 128-bit lanes, then two rounds
    /// of 128-bit lane shuffles (64 shuffles for 256 elements).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(Vector512<float>* v)
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
