using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sd.Kernels.Attention;

/// <summary>
/// AVX2 counterpart of <see cref="AttentionTranspose512"/>: 16-query blocks moved 8x8 tiles at a time, head-dim tails
/// with VMASKMOVPS (which never faults or writes on masked-off lanes).
/// </summary>
internal static unsafe class AttentionTranspose256
{
    private const int Rows = AttentionTiles256.Rows;

    /// <summary>qt[c*16 + r] = q[r*ldq + c] * scale * log2(e); lanes past <paramref name="rows"/> are zero.</summary>
    [SkipLocalsInit] // the transpose buffer is fully written before it is read
    public static void PackQuery(float* q, nint ldq, int rows, int d, float scale, float* qt)
    {
        Vector256<float>* v = stackalloc Vector256<float>[8];
        Vector256<float> factor = Vector256.Create(scale * AttentionTiles256.Log2E);
        for (int r0 = 0; r0 < Rows; r0 += 8)
        {
            int count = Math.Clamp(rows - r0, 0, 8);
            for (int c0 = 0; c0 < d; c0 += 8)
            {
                int columns = Math.Min(8, d - c0);
                Vector256<float> mask = ColumnMask(columns);
                for (int r = 0; r < 8; r++)
                {
                    v[r] = r < count ? Avx.MaskLoad(q + (r0 + r) * ldq + c0, mask) : Vector256<float>.Zero;
                }
                Transpose(v);
                for (int c = 0; c < columns; c++)
                {
                    (v[c] * factor).Store(qt + (c0 + c) * Rows + r0);
                }
            }
        }
    }

    /// <summary>o[r*ldo + c] = ot[c*16 + r] / sum[r] for the block's <paramref name="rows"/> real queries.</summary>
    [SkipLocalsInit]
    public static void StoreOutput(
        float* ot, Vector256<float> sum0, Vector256<float> sum1, int d, int rows, float* o, nint ldo)
    {
        Vector256<float>* v = stackalloc Vector256<float>[8];
        for (int r0 = 0; r0 < rows; r0 += 8)
        {
            int count = Math.Min(rows - r0, 8);
            Vector256<float> inverse = Vector256<float>.One / (r0 == 0 ? sum0 : sum1);
            for (int c0 = 0; c0 < d; c0 += 8)
            {
                int columns = Math.Min(8, d - c0);
                for (int c = 0; c < 8; c++)
                {
                    v[c] = c < columns ? Vector256.Load(ot + (c0 + c) * Rows + r0) * inverse : Vector256<float>.Zero;
                }
                Transpose(v);
                Vector256<float> mask = ColumnMask(columns);
                for (int r = 0; r < count; r++)
                {
                    Avx.MaskStore(o + (r0 + r) * ldo + c0, mask, v[r]);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ColumnMask(int columns) =>
        Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(columns)).AsSingle();

    /// <summary>v[i] = row i on entry, column i on exit (unpack, in-lane shuffle, 128-bit lane permute).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(Vector256<float>* v)
    {
        Vector256<float> t0 = Avx.UnpackLow(v[0], v[1]), t1 = Avx.UnpackHigh(v[0], v[1]);
        Vector256<float> t2 = Avx.UnpackLow(v[2], v[3]), t3 = Avx.UnpackHigh(v[2], v[3]);
        Vector256<float> t4 = Avx.UnpackLow(v[4], v[5]), t5 = Avx.UnpackHigh(v[4], v[5]);
        Vector256<float> t6 = Avx.UnpackLow(v[6], v[7]), t7 = Avx.UnpackHigh(v[6], v[7]);
        // 0x44 picks 64-bit halves (a0, b0) of each 128-bit lane, 0xEE picks (a1, b1).
        Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE);
        Vector256<float> u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
        Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE);
        Vector256<float> u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
        v[0] = Avx.Permute2x128(u0, u4, 0x20);
        v[1] = Avx.Permute2x128(u1, u5, 0x20);
        v[2] = Avx.Permute2x128(u2, u6, 0x20);
        v[3] = Avx.Permute2x128(u3, u7, 0x20);
        v[4] = Avx.Permute2x128(u0, u4, 0x31);
        v[5] = Avx.Permute2x128(u1, u5, 0x31);
        v[6] = Avx.Permute2x128(u2, u6, 0x31);
        v[7] = Avx.Permute2x128(u3, u7, 0x31);
    }
}
