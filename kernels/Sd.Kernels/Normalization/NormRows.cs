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
    private const int W = 8;

    public static void ChunkStatistics(float* x, int rows, int channels, float* mean, float* dev, float* dev2)
    {
        Vector256<float> inverse = Vector256.Create(1f / rows);
        int c = 0;
        for (; c <= channels - 4 * W; c += 4 * W)
        {
            float* column = x + c;
            Vector256<float> m0 = Vector256<float>.Zero, m1 = m0, m2 = m0, m3 = m0;
            for (int r = 0; r < rows; r++)
            {
                float* p = column + (nint)r * channels;
                m0 += Vector256.Load(p);
                m1 += Vector256.Load(p + W);
                m2 += Vector256.Load(p + 2 * W);
                m3 += Vector256.Load(p + 3 * W);
            }
            m0 *= inverse;
            m1 *= inverse;
            m2 *= inverse;
            m3 *= inverse;
            Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            Vector256<float> q0 = Vector256<float>.Zero, q1 = q0, q2 = q0, q3 = q0;
            for (int r = 0; r < rows; r++)
            {
                float* p = column + (nint)r * channels;
                Vector256<float> d0 = Vector256.Load(p) - m0;
                Vector256<float> d1 = Vector256.Load(p + W) - m1;
                Vector256<float> d2 = Vector256.Load(p + 2 * W) - m2;
                Vector256<float> d3 = Vector256.Load(p + 3 * W) - m3;
                s0 += d0;
                s1 += d1;
                s2 += d2;
                s3 += d3;
                q0 = Vector256.FusedMultiplyAdd(d0, d0, q0);
                q1 = Vector256.FusedMultiplyAdd(d1, d1, q1);
                q2 = Vector256.FusedMultiplyAdd(d2, d2, q2);
                q3 = Vector256.FusedMultiplyAdd(d3, d3, q3);
            }
            m0.Store(mean + c);
            m1.Store(mean + c + W);
            m2.Store(mean + c + 2 * W);
            m3.Store(mean + c + 3 * W);
            s0.Store(dev + c);
            s1.Store(dev + c + W);
            s2.Store(dev + c + 2 * W);
            s3.Store(dev + c + 3 * W);
            q0.Store(dev2 + c);
            q1.Store(dev2 + c + W);
            q2.Store(dev2 + c + 2 * W);
            q3.Store(dev2 + c + 3 * W);
        }
        for (; c < channels; c += W)
        {
            // Masked-off lanes load 0, so their mean and deviations are 0 and the padding stores zeros.
            Vector256<float> mask = MaskedTail.Mask256(channels - c);
            float* column = x + c;
            Vector256<float> m = Vector256<float>.Zero;
            for (int r = 0; r < rows; r++)
            {
                m += MaskedTail.Load(column + (nint)r * channels, mask);
            }
            m *= inverse;
            Vector256<float> s = Vector256<float>.Zero, q = Vector256<float>.Zero;
            for (int r = 0; r < rows; r++)
            {
                Vector256<float> d = MaskedTail.Load(column + (nint)r * channels, mask) - m;
                s += d;
                q = Vector256.FusedMultiplyAdd(d, d, q);
            }
            m.Store(mean + c);
            s.Store(dev + c);
            q.Store(dev2 + c);
        }
    }

    public static void NormalizeRow<TAct>(float* src, float* dst, float* mean, float* scale, float* shift, int channels)
        where TAct : IActivation
    {
        int c = 0;
        for (; c <= channels - W; c += W)
        {
            Vector256<float> y = Vector256.FusedMultiplyAdd(
                Vector256.Load(src + c) - Vector256.Load(mean + c), Vector256.Load(scale + c), Vector256.Load(shift + c));
            TAct.Apply(y).Store(dst + c);
        }
        if (c < channels)
        {
            Vector256<float> mask = MaskedTail.Mask256(channels - c);
            Vector256<float> y = Vector256.FusedMultiplyAdd(
                MaskedTail.Load(src + c, mask) - Vector256.Load(mean + c), Vector256.Load(scale + c), Vector256.Load(shift + c));
            MaskedTail.Store(dst + c, mask, TAct.Apply(y));
        }
    }
}

internal readonly unsafe struct Rows512 : INormRows
{
    private const int W = 16;

    public static void ChunkStatistics(float* x, int rows, int channels, float* mean, float* dev, float* dev2)
    {
        Vector512<float> inverse = Vector512.Create(1f / rows);
        int c = 0;
        for (; c <= channels - 4 * W; c += 4 * W)
        {
            float* column = x + c;
            Vector512<float> m0 = Vector512<float>.Zero, m1 = m0, m2 = m0, m3 = m0;
            for (int r = 0; r < rows; r++)
            {
                float* p = column + (nint)r * channels;
                m0 += Vector512.Load(p);
                m1 += Vector512.Load(p + W);
                m2 += Vector512.Load(p + 2 * W);
                m3 += Vector512.Load(p + 3 * W);
            }
            m0 *= inverse;
            m1 *= inverse;
            m2 *= inverse;
            m3 *= inverse;
            Vector512<float> s0 = Vector512<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            Vector512<float> q0 = Vector512<float>.Zero, q1 = q0, q2 = q0, q3 = q0;
            for (int r = 0; r < rows; r++)
            {
                float* p = column + (nint)r * channels;
                Vector512<float> d0 = Vector512.Load(p) - m0;
                Vector512<float> d1 = Vector512.Load(p + W) - m1;
                Vector512<float> d2 = Vector512.Load(p + 2 * W) - m2;
                Vector512<float> d3 = Vector512.Load(p + 3 * W) - m3;
                s0 += d0;
                s1 += d1;
                s2 += d2;
                s3 += d3;
                q0 = Vector512.FusedMultiplyAdd(d0, d0, q0);
                q1 = Vector512.FusedMultiplyAdd(d1, d1, q1);
                q2 = Vector512.FusedMultiplyAdd(d2, d2, q2);
                q3 = Vector512.FusedMultiplyAdd(d3, d3, q3);
            }
            m0.Store(mean + c);
            m1.Store(mean + c + W);
            m2.Store(mean + c + 2 * W);
            m3.Store(mean + c + 3 * W);
            s0.Store(dev + c);
            s1.Store(dev + c + W);
            s2.Store(dev + c + 2 * W);
            s3.Store(dev + c + 3 * W);
            q0.Store(dev2 + c);
            q1.Store(dev2 + c + W);
            q2.Store(dev2 + c + 2 * W);
            q3.Store(dev2 + c + 3 * W);
        }
        for (; c < channels; c += W)
        {
            // Masked-off lanes load 0, so their mean and deviations are 0 and the padding stores zeros.
            Vector512<float> mask = MaskedTail.Mask512(channels - c);
            float* column = x + c;
            Vector512<float> m = Vector512<float>.Zero;
            for (int r = 0; r < rows; r++)
            {
                m += MaskedTail.Load(column + (nint)r * channels, mask);
            }
            m *= inverse;
            Vector512<float> s = Vector512<float>.Zero, q = Vector512<float>.Zero;
            for (int r = 0; r < rows; r++)
            {
                Vector512<float> d = MaskedTail.Load(column + (nint)r * channels, mask) - m;
                s += d;
                q = Vector512.FusedMultiplyAdd(d, d, q);
            }
            m.Store(mean + c);
            s.Store(dev + c);
            q.Store(dev2 + c);
        }
    }

    public static void NormalizeRow<TAct>(float* src, float* dst, float* mean, float* scale, float* shift, int channels)
        where TAct : IActivation
    {
        int c = 0;
        for (; c <= channels - W; c += W)
        {
            Vector512<float> y = Vector512.FusedMultiplyAdd(
                Vector512.Load(src + c) - Vector512.Load(mean + c), Vector512.Load(scale + c), Vector512.Load(shift + c));
            TAct.Apply(y).Store(dst + c);
        }
        if (c < channels)
        {
            Vector512<float> mask = MaskedTail.Mask512(channels - c);
            Vector512<float> y = Vector512.FusedMultiplyAdd(
                MaskedTail.Load(src + c, mask) - Vector512.Load(mean + c), Vector512.Load(scale + c), Vector512.Load(shift + c));
            MaskedTail.Store(dst + c, mask, TAct.Apply(y));
        }
    }
}
