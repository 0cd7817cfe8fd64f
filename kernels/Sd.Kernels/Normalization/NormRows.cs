using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Normalization;

/// <summary>
/// The inner loops of channels-last GroupNorm at one vector width, vectorized across the C contiguous channels of a
/// row (C/G is as small as 4, so vectorizing within a group would waste lanes; across the row every lane works).
/// Statistics run over a chunk of rows in column blocks of 4 vectors held in registers: the block is summed down
/// the chunk, then read again for the deviations while its 64 rows x 4 vectors are still in L1. (Accumulating whole
/// rows into per-channel arrays in memory instead measured 2.5x slower: every row round-trips the accumulators
/// through store-to-load forwarding.) Per-channel arrays are scratch padded to a multiple of 16 floats, read and
/// written as whole vectors; only the caller's rows go through the masked tail. All variants round identically
/// (same order, explicit FMAs), so they agree bit for bit before the activation.
/// </summary>
internal unsafe interface INormRows
{
    /// <summary>
    /// Per-channel statistics of a chunk of rows: m = (sum of x) / rows, then dev = sum(x - m) and
    /// dev2 = sum((x - m)^2), the corrected two-pass formula (exact mean m + dev/rows, M2 = dev2 - dev^2/rows).
    /// </summary>
    static abstract void ChunkStatistics(float* x, int rows, int channels, float* mean, float* dev, float* dev2);

    /// <summary>dst[c] = act((src[c] - mean[c]) * scale[c] + shift[c]).</summary>
    static abstract void NormalizeRow<TAct>(float* src, float* dst, float* mean, float* scale, float* shift, int channels)
        where TAct : IActivation;
}

internal readonly unsafe struct ScalarRows : INormRows
{
    public static void ChunkStatistics(float* x, int rows, int channels, float* mean, float* dev, float* dev2)
    {
        float inverse = 1f / rows;
        for (int c = 0; c < channels; c++)
        {
            float m = 0;
            for (int r = 0; r < rows; r++)
            {
                m += x[(nint)r * channels + c];
            }
            m *= inverse;
            float s = 0, q = 0;
            for (int r = 0; r < rows; r++)
            {
                float d = x[(nint)r * channels + c] - m;
                s += d;
                q = MathF.FusedMultiplyAdd(d, d, q);
            }
            mean[c] = m;
            dev[c] = s;
            dev2[c] = q;
        }
    }

    public static void NormalizeRow<TAct>(float* src, float* dst, float* mean, float* scale, float* shift, int channels)
        where TAct : IActivation
    {
        for (int c = 0; c < channels; c++)
        {
            dst[c] = TAct.Apply(MathF.FusedMultiplyAdd(src[c] - mean[c], scale[c], shift[c]));
        }
    }
}

internal readonly unsafe struct Rows256 : INormRows
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ChunkStatistics(float* x, int rows, int channels, float* mean, float* dev, float* dev2) =>
        VectorRows.ChunkStatistics<Vector256<float>, F32x8>(x, rows, channels, mean, dev, dev2);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void NormalizeRow<TAct>(float* src, float* dst, float* mean, float* scale, float* shift, int channels)
        where TAct : IActivation =>
        VectorRows.NormalizeRow<Vector256<float>, F32x8, TAct>(src, dst, mean, scale, shift, channels);
}

internal readonly unsafe struct Rows512 : INormRows
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ChunkStatistics(float* x, int rows, int channels, float* mean, float* dev, float* dev2) =>
        VectorRows.ChunkStatistics<Vector512<float>, F32x16>(x, rows, channels, mean, dev, dev2);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void NormalizeRow<TAct>(float* src, float* dst, float* mean, float* scale, float* shift, int channels)
        where TAct : IActivation =>
        VectorRows.NormalizeRow<Vector512<float>, F32x16, TAct>(src, dst, mean, scale, shift, channels);
}

/// <summary>
/// The vector rows of both widths, written once over the width's operations (<see cref="IF32Vector{TVec}"/>); the
/// JIT specializes each width, so the loops compile as if written against Vector256 or Vector512 directly.
/// </summary>
internal static unsafe class VectorRows
{
    public static void ChunkStatistics<TVec, V>(float* x, int rows, int channels, float* mean, float* dev, float* dev2)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        TVec inverse = V.Create(1f / rows);
        int c = 0;
        for (; c <= channels - 4 * V.Count; c += 4 * V.Count)
        {
            float* column = x + c;
            TVec m0 = V.Zero, m1 = m0, m2 = m0, m3 = m0;
            for (int r = 0; r < rows; r++)
            {
                float* p = column + (nint)r * channels;
                m0 = V.Add(m0, V.Load(p));
                m1 = V.Add(m1, V.Load(p + V.Count));
                m2 = V.Add(m2, V.Load(p + 2 * V.Count));
                m3 = V.Add(m3, V.Load(p + 3 * V.Count));
            }
            m0 = V.Multiply(m0, inverse);
            m1 = V.Multiply(m1, inverse);
            m2 = V.Multiply(m2, inverse);
            m3 = V.Multiply(m3, inverse);
            TVec s0 = V.Zero, s1 = s0, s2 = s0, s3 = s0;
            TVec q0 = V.Zero, q1 = q0, q2 = q0, q3 = q0;
            for (int r = 0; r < rows; r++)
            {
                float* p = column + (nint)r * channels;
                TVec d0 = V.Subtract(V.Load(p), m0);
                TVec d1 = V.Subtract(V.Load(p + V.Count), m1);
                TVec d2 = V.Subtract(V.Load(p + 2 * V.Count), m2);
                TVec d3 = V.Subtract(V.Load(p + 3 * V.Count), m3);
                s0 = V.Add(s0, d0);
                s1 = V.Add(s1, d1);
                s2 = V.Add(s2, d2);
                s3 = V.Add(s3, d3);
                q0 = V.FusedMultiplyAdd(d0, d0, q0);
                q1 = V.FusedMultiplyAdd(d1, d1, q1);
                q2 = V.FusedMultiplyAdd(d2, d2, q2);
                q3 = V.FusedMultiplyAdd(d3, d3, q3);
            }
            V.Store(m0, mean + c);
            V.Store(m1, mean + c + V.Count);
            V.Store(m2, mean + c + 2 * V.Count);
            V.Store(m3, mean + c + 3 * V.Count);
            V.Store(s0, dev + c);
            V.Store(s1, dev + c + V.Count);
            V.Store(s2, dev + c + 2 * V.Count);
            V.Store(s3, dev + c + 3 * V.Count);
            V.Store(q0, dev2 + c);
            V.Store(q1, dev2 + c + V.Count);
            V.Store(q2, dev2 + c + 2 * V.Count);
            V.Store(q3, dev2 + c + 3 * V.Count);
        }
        for (; c < channels; c += V.Count)
        {
            // Masked-off lanes load 0, so their mean and deviations are 0 and the padding stores zeros.
            TVec mask = V.Mask(channels - c);
            float* column = x + c;
            TVec m = V.Zero;
            for (int r = 0; r < rows; r++)
            {
                m = V.Add(m, V.MaskedLoad(column + (nint)r * channels, mask));
            }
            m = V.Multiply(m, inverse);
            TVec s = V.Zero, q = V.Zero;
            for (int r = 0; r < rows; r++)
            {
                TVec d = V.Subtract(V.MaskedLoad(column + (nint)r * channels, mask), m);
                s = V.Add(s, d);
                q = V.FusedMultiplyAdd(d, d, q);
            }
            V.Store(m, mean + c);
            V.Store(s, dev + c);
            V.Store(q, dev2 + c);
        }
    }

    public static void NormalizeRow<TVec, V, TAct>(
        float* src, float* dst, float* mean, float* scale, float* shift, int channels)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
        where TAct : IActivation
    {
        int c = 0;
        for (; c <= channels - V.Count; c += V.Count)
        {
            TVec y = V.FusedMultiplyAdd(
                V.Subtract(V.Load(src + c), V.Load(mean + c)), V.Load(scale + c), V.Load(shift + c));
            V.Store(V.Apply<TAct>(y), dst + c);
        }
        if (c < channels)
        {
            TVec mask = V.Mask(channels - c);
            TVec y = V.FusedMultiplyAdd(
                V.Subtract(V.MaskedLoad(src + c, mask), V.Load(mean + c)), V.Load(scale + c), V.Load(shift + c));
            V.MaskedStore(dst + c, mask, V.Apply<TAct>(y));
        }
    }
}
