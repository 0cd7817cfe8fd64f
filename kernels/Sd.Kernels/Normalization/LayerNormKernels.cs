using System.Runtime.CompilerServices;
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
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (double Mean, double Rstd) Statistics(float* x, int channels, float eps) =>
        VectorLayerRows.Statistics<Vector256<float>, F32x8>(x, channels, eps);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Normalize(
        float* x, float* dst, float hi, float lo, float rstd, float* gamma, float* beta, int channels) =>
        VectorLayerRows.Normalize<Vector256<float>, F32x8>(x, dst, hi, lo, rstd, gamma, beta, channels);
}

internal readonly unsafe struct LayerRows512 : ILayerRows
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (double Mean, double Rstd) Statistics(float* x, int channels, float eps) =>
        VectorLayerRows.Statistics<Vector512<float>, F32x16>(x, channels, eps);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Normalize(
        float* x, float* dst, float hi, float lo, float rstd, float* gamma, float* beta, int channels) =>
        VectorLayerRows.Normalize<Vector512<float>, F32x16>(x, dst, hi, lo, rstd, gamma, beta, channels);
}

/// <summary>
/// The vector rows of both widths, written once over the width's operations (<see cref="IF32Vector{TVec}"/>); the
/// JIT specializes each width, so the loops compile as if written against Vector256 or Vector512 directly.
/// </summary>
internal static unsafe class VectorLayerRows
{
    public static (double Mean, double Rstd) Statistics<TVec, V>(float* x, int channels, float eps)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        TVec a = V.Zero, b = V.Zero;
        int c = 0;
        for (; c <= channels - 2 * V.Count; c += 2 * V.Count)
        {
            a = V.Add(a, V.Load(x + c));
            b = V.Add(b, V.Load(x + c + V.Count));
        }
        for (; c < channels; c += V.Count)
        {
            a = V.Add(a, V.MaskedLoad(x + c, V.Mask(channels - c)));
        }
        float shift = V.Sum(V.Add(a, b)) / channels;
        TVec m = V.Create(shift);
        TVec d1a = V.Zero, d1b = V.Zero;
        TVec d2a = V.Zero, d2b = V.Zero;
        for (c = 0; c <= channels - 2 * V.Count; c += 2 * V.Count)
        {
            TVec da = V.Subtract(V.Load(x + c), m);
            TVec db = V.Subtract(V.Load(x + c + V.Count), m);
            d1a = V.Add(d1a, da);
            d1b = V.Add(d1b, db);
            d2a = V.FusedMultiplyAdd(da, da, d2a);
            d2b = V.FusedMultiplyAdd(db, db, d2b);
        }
        for (; c < channels; c += V.Count)
        {
            // Lanes past the end must contribute 0, not -m.
            TVec mask = V.Mask(channels - c);
            TVec d = V.And(V.Subtract(V.MaskedLoad(x + c, mask), m), mask);
            d1a = V.Add(d1a, d);
            d2a = V.FusedMultiplyAdd(d, d, d2a);
        }
        return Finish(shift, V.Sum(V.Add(d1a, d1b)), V.Sum(V.Add(d2a, d2b)), channels, eps);
    }

    public static void Normalize<TVec, V>(
        float* x, float* dst, float hi, float lo, float rstd, float* gamma, float* beta, int channels)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        TVec m = V.Create(hi), l = V.Create(-lo), s = V.Create(rstd);
        int c = 0;
        for (; c <= channels - 2 * V.Count; c += 2 * V.Count)
        {
            TVec sa = V.Multiply(V.Load(gamma + c), s);
            TVec sb = V.Multiply(V.Load(gamma + c + V.Count), s);
            TVec ya = V.FusedMultiplyAdd(
                V.Subtract(V.Load(x + c), m), sa, V.FusedMultiplyAdd(l, sa, V.Load(beta + c)));
            TVec yb = V.FusedMultiplyAdd(
                V.Subtract(V.Load(x + c + V.Count), m), sb, V.FusedMultiplyAdd(l, sb, V.Load(beta + c + V.Count)));
            V.Store(ya, dst + c);
            V.Store(yb, dst + c + V.Count);
        }
        for (; c < channels; c += V.Count)
        {
            TVec mask = V.Mask(channels - c);
            TVec sc = V.Multiply(V.MaskedLoad(gamma + c, mask), s);
            TVec y = V.FusedMultiplyAdd(
                V.Subtract(V.MaskedLoad(x + c, mask), m), sc, V.FusedMultiplyAdd(l, sc, V.MaskedLoad(beta + c, mask)));
            V.MaskedStore(dst + c, mask, y);
        }
    }

    /// <summary>Exact mean and rstd from the shifted sums, in double.</summary>
    private static (double Mean, double Rstd) Finish(float shift, float dev, float dev2, int channels, float eps)
    {
        double d = dev;
        double variance = Math.Max((dev2 - d * d / channels) / channels, 0);
        return (shift + d / channels, 1 / Math.Sqrt(variance + eps));
    }
}
