using System.Runtime.Intrinsics;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Normalization;

/// <summary>
/// LayerNorm over the last dimension: each of <c>rows</c> rows of C floats gets its own mean and biased variance,
/// then dst = (x - mean) * (gamma * rstd) + beta; dst may equal src. A row (C = 320..1280, 768 for CLIP) stays in
/// L1, so each row is read three times from cache: a sum for the mean m, then d = x - m accumulated as sum(d) and
/// sum(d^2) (the corrected two-pass formula: exact mean = m + sum(d)/C and M2 = sum(d^2) - sum(d)^2/C, no
/// cancellation for large means), then the normalize, with the mean carried as a float pair hi + lo so that
/// x - hi is exact near the mean. The scalar reference computes the statistics in double.
/// Large inputs are tiled over rows on <see cref="WorkerPool.Shared"/>.
/// </summary>
public static unsafe class LayerNormKernels
{
    public static void LayerNorm_Scalar(float* src, float* dst, nint rows, int channels, float eps, float* gamma, float* beta) =>
        Run<ScalarLayerRows>(src, dst, rows, channels, eps, gamma, beta);

    public static void LayerNorm_Vector256(float* src, float* dst, nint rows, int channels, float eps, float* gamma, float* beta) =>
        Run<LayerRows256>(src, dst, rows, channels, eps, gamma, beta);

    public static void LayerNorm_Vector512(float* src, float* dst, nint rows, int channels, float eps, float* gamma, float* beta) =>
        Run<LayerRows512>(src, dst, rows, channels, eps, gamma, beta);

    private struct Job
    {
        public float* Src;
        public float* Dst;
        public float* Gamma;
        public float* Beta;
        public nint Rows;
        public int Channels;
        public float Eps;
        public int Tiles;
    }

    private static void Run<TRows>(float* src, float* dst, nint rows, int channels, float eps, float* gamma, float* beta)
        where TRows : ILayerRows
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        if (!(eps >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be a non-negative number");
        }
        var job = new Job
        {
            Src = src,
            Dst = dst,
            Gamma = gamma,
            Beta = beta,
            Rows = rows,
            Channels = channels,
            Eps = eps,
            Tiles = Tiling.Count((long)rows * channels, rows),
        };
        if (rows == 0)
        {
            return;
        }
        if (job.Tiles == 1)
        {
            Tile<TRows>(&job, 0);
        }
        else
        {
            WorkerPool.Shared.Run(&Tile<TRows>, &job, job.Tiles);
        }
    }

    private static void Tile<TRows>(void* context, int tile)
        where TRows : ILayerRows
    {
        Job* job = (Job*)context;
        nint first = Tiling.Start(tile, job->Tiles, job->Rows);
        nint end = Tiling.Start(tile + 1, job->Tiles, job->Rows);
        int channels = job->Channels;
        for (nint r = first; r < end; r++)
        {
            float* x = job->Src + r * channels;
            (double mean, double rstd) = TRows.Statistics(x, channels, job->Eps);
            // hi + lo carries the mean past float precision: x - hi is exact near the mean, lo goes into the shift.
            float hi = (float)mean;
            TRows.Normalize(x, job->Dst + r * channels, hi, (float)(mean - hi), (float)rstd, job->Gamma, job->Beta, channels);
        }
    }
}

internal unsafe interface ILayerRows
{
    /// <summary>The row's mean and 1 / sqrt(biased variance + eps).</summary>
    static abstract (double Mean, double Rstd) Statistics(float* x, int channels, float eps);

    /// <summary>dst[c] = (x[c] - hi) * s + (beta[c] - lo * s) with s = gamma[c] * rstd: (x - mean) * s + beta.</summary>
    static abstract void Normalize(float* x, float* dst, float hi, float lo, float rstd, float* gamma, float* beta, int channels);
}

internal readonly unsafe struct ScalarLayerRows : ILayerRows
{
    public static (double Mean, double Rstd) Statistics(float* x, int channels, float eps)
    {
        double sum = 0;
        for (int c = 0; c < channels; c++)
        {
            sum += x[c];
        }
        double mean = sum / channels;
        double m2 = 0;
        for (int c = 0; c < channels; c++)
        {
            double d = x[c] - mean;
            m2 += d * d;
        }
        return (mean, 1 / Math.Sqrt(m2 / channels + eps));
    }

    public static void Normalize(float* x, float* dst, float hi, float lo, float rstd, float* gamma, float* beta, int channels)
    {
        for (int c = 0; c < channels; c++)
        {
            float scale = gamma[c] * rstd;
            dst[c] = MathF.FusedMultiplyAdd(x[c] - hi, scale, MathF.FusedMultiplyAdd(-lo, scale, beta[c]));
        }
    }
}

internal readonly unsafe struct LayerRows256 : ILayerRows
{
    private const int W = 8;

    public static (double Mean, double Rstd) Statistics(float* x, int channels, float eps)
    {
        Vector256<float> a = Vector256<float>.Zero, b = Vector256<float>.Zero;
        int c = 0;
        for (; c <= channels - 2 * W; c += 2 * W)
        {
            a += Vector256.Load(x + c);
            b += Vector256.Load(x + c + W);
        }
        for (; c < channels; c += W)
        {
            a += MaskedTail.Load(x + c, MaskedTail.Mask256(channels - c));
        }
        float shift = Vector256.Sum(a + b) / channels;
        Vector256<float> m = Vector256.Create(shift);
        Vector256<float> d1a = Vector256<float>.Zero, d1b = Vector256<float>.Zero;
        Vector256<float> d2a = Vector256<float>.Zero, d2b = Vector256<float>.Zero;
        for (c = 0; c <= channels - 2 * W; c += 2 * W)
        {
            Vector256<float> da = Vector256.Load(x + c) - m;
            Vector256<float> db = Vector256.Load(x + c + W) - m;
            d1a += da;
            d1b += db;
            d2a = Vector256.FusedMultiplyAdd(da, da, d2a);
            d2b = Vector256.FusedMultiplyAdd(db, db, d2b);
        }
        for (; c < channels; c += W)
        {
            // Lanes past the end must contribute 0, not -m.
            Vector256<float> mask = MaskedTail.Mask256(channels - c);
            Vector256<float> d = (MaskedTail.Load(x + c, mask) - m) & mask;
            d1a += d;
            d2a = Vector256.FusedMultiplyAdd(d, d, d2a);
        }
        return Finish(shift, Vector256.Sum(d1a + d1b), Vector256.Sum(d2a + d2b), channels, eps);
    }

    public static void Normalize(float* x, float* dst, float hi, float lo, float rstd, float* gamma, float* beta, int channels)
    {
        Vector256<float> m = Vector256.Create(hi), l = Vector256.Create(-lo), s = Vector256.Create(rstd);
        int c = 0;
        for (; c <= channels - 2 * W; c += 2 * W)
        {
            Vector256<float> sa = Vector256.Load(gamma + c) * s;
            Vector256<float> sb = Vector256.Load(gamma + c + W) * s;
            Vector256<float> ya = Vector256.FusedMultiplyAdd(
                Vector256.Load(x + c) - m, sa, Vector256.FusedMultiplyAdd(l, sa, Vector256.Load(beta + c)));
            Vector256<float> yb = Vector256.FusedMultiplyAdd(
                Vector256.Load(x + c + W) - m, sb, Vector256.FusedMultiplyAdd(l, sb, Vector256.Load(beta + c + W)));
            ya.Store(dst + c);
            yb.Store(dst + c + W);
        }
        for (; c < channels; c += W)
        {
            Vector256<float> mask = MaskedTail.Mask256(channels - c);
            Vector256<float> sc = MaskedTail.Load(gamma + c, mask) * s;
            Vector256<float> y = Vector256.FusedMultiplyAdd(
                MaskedTail.Load(x + c, mask) - m, sc, Vector256.FusedMultiplyAdd(l, sc, MaskedTail.Load(beta + c, mask)));
            MaskedTail.Store(dst + c, mask, y);
        }
    }

    /// <summary>Shared by both widths: exact mean and rstd from the shifted sums, in double.</summary>
    internal static (double Mean, double Rstd) Finish(float shift, float dev, float dev2, int channels, float eps)
    {
        double d = dev;
        double variance = Math.Max((dev2 - d * d / channels) / channels, 0);
        return (shift + d / channels, 1 / Math.Sqrt(variance + eps));
    }
}

internal readonly unsafe struct LayerRows512 : ILayerRows
{
    private const int W = 16;

    public static (double Mean, double Rstd) Statistics(float* x, int channels, float eps)
    {
        Vector512<float> a = Vector512<float>.Zero, b = Vector512<float>.Zero;
        int c = 0;
        for (; c <= channels - 2 * W; c += 2 * W)
        {
            a += Vector512.Load(x + c);
            b += Vector512.Load(x + c + W);
        }
        for (; c < channels; c += W)
        {
            a += MaskedTail.Load(x + c, MaskedTail.Mask512(channels - c));
        }
        float shift = Vector512.Sum(a + b) / channels;
        Vector512<float> m = Vector512.Create(shift);
        Vector512<float> d1a = Vector512<float>.Zero, d1b = Vector512<float>.Zero;
        Vector512<float> d2a = Vector512<float>.Zero, d2b = Vector512<float>.Zero;
        for (c = 0; c <= channels - 2 * W; c += 2 * W)
        {
            Vector512<float> da = Vector512.Load(x + c) - m;
            Vector512<float> db = Vector512.Load(x + c + W) - m;
            d1a += da;
            d1b += db;
            d2a = Vector512.FusedMultiplyAdd(da, da, d2a);
            d2b = Vector512.FusedMultiplyAdd(db, db, d2b);
        }
        for (; c < channels; c += W)
        {
            Vector512<float> mask = MaskedTail.Mask512(channels - c);
            Vector512<float> d = (MaskedTail.Load(x + c, mask) - m) & mask;
            d1a += d;
            d2a = Vector512.FusedMultiplyAdd(d, d, d2a);
        }
        return LayerRows256.Finish(shift, Vector512.Sum(d1a + d1b), Vector512.Sum(d2a + d2b), channels, eps);
    }

    public static void Normalize(float* x, float* dst, float hi, float lo, float rstd, float* gamma, float* beta, int channels)
    {
        Vector512<float> m = Vector512.Create(hi), l = Vector512.Create(-lo), s = Vector512.Create(rstd);
        int c = 0;
        for (; c <= channels - 2 * W; c += 2 * W)
        {
            Vector512<float> sa = Vector512.Load(gamma + c) * s;
            Vector512<float> sb = Vector512.Load(gamma + c + W) * s;
            Vector512<float> ya = Vector512.FusedMultiplyAdd(
                Vector512.Load(x + c) - m, sa, Vector512.FusedMultiplyAdd(l, sa, Vector512.Load(beta + c)));
            Vector512<float> yb = Vector512.FusedMultiplyAdd(
                Vector512.Load(x + c + W) - m, sb, Vector512.FusedMultiplyAdd(l, sb, Vector512.Load(beta + c + W)));
            ya.Store(dst + c);
            yb.Store(dst + c + W);
        }
        for (; c < channels; c += W)
        {
            Vector512<float> mask = MaskedTail.Mask512(channels - c);
            Vector512<float> sc = MaskedTail.Load(gamma + c, mask) * s;
            Vector512<float> y = Vector512.FusedMultiplyAdd(
                MaskedTail.Load(x + c, mask) - m, sc, Vector512.FusedMultiplyAdd(l, sc, MaskedTail.Load(beta + c, mask)));
            MaskedTail.Store(dst + c, mask, y);
        }
    }
}
