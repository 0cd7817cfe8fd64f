using System.Runtime.Intrinsics;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// The elementwise steps of an ESRGAN network on NHWC feature maps whose pixels may be a slice of wider rows (a dense
/// block's growing concatenation): LeakyReLU in place, the scaled residual <c>x * scale + r</c> (multiplied, rounded,
/// then added, as PyTorch evaluates <c>x5 * 0.2 + x</c>: no fused multiply-add), and 2x nearest-neighbour upsampling.
/// Each has a scalar reference; rows are tiled over <see cref="WorkerPool.Shared"/>.
/// </summary>
public static unsafe class FeatureMapKernels
{
    private enum Op
    {
        LeakyRelu,
        ScaledAdd,
        Upsample2x,
    }

    private struct Job
    {
        public Op Op;
        public float* X;
        public nint Ldx;
        public float* R;
        public nint Ldr;
        public float* Dst;
        public nint Ldd;
        public int Columns;
        public float Factor;
        public nint Rows;
        public int Tiles;
        public bool Scalar;
    }

    /// <summary>x[r * ldx + c] = x &gt; 0 ? x : x * slope (torch.nn.LeakyReLU) for rows r, columns c &lt; columns.</summary>
    public static void LeakyRelu(float* x, nint rows, int columns, nint ldx, float slope) =>
        Run(new Job { Op = Op.LeakyRelu, X = x, Ldx = ldx, Dst = x, Ldd = ldx, Columns = columns, Factor = slope, Rows = rows });

    /// <summary>dst = x * scale + r, rounded after the product (dst may be x or r).</summary>
    public static void ScaledAdd(float* x, nint ldx, float scale, float* r, nint ldr, float* dst, nint ldd, nint rows, int columns) =>
        Run(new Job { Op = Op.ScaledAdd, X = x, Ldx = ldx, R = r, Ldr = ldr, Dst = dst, Ldd = ldd, Columns = columns, Factor = scale, Rows = rows });

    /// <summary>The scalar references of <see cref="LeakyRelu"/> and <see cref="ScaledAdd"/>: the tests' oracle.</summary>
    public static void LeakyRelu_Scalar(float* x, nint rows, int columns, nint ldx, float slope) =>
        Run(new Job { Op = Op.LeakyRelu, X = x, Ldx = ldx, Dst = x, Ldd = ldx, Columns = columns, Factor = slope, Rows = rows, Scalar = true });

    public static void ScaledAdd_Scalar(float* x, nint ldx, float scale, float* r, nint ldr, float* dst, nint ldd, nint rows, int columns) =>
        Run(new Job { Op = Op.ScaledAdd, X = x, Ldx = ldx, R = r, Ldr = ldr, Dst = dst, Ldd = ldd, Columns = columns, Factor = scale, Rows = rows, Scalar = true });

    /// <summary>
    /// dst [N, 2H, 2W, C] = src [N, H, W, C] with each pixel repeated 2x2 (F.interpolate(scale_factor=2,
    /// mode="nearest"): output pixel (y, x) reads (y / 2, x / 2)).
    /// </summary>
    public static void Upsample2xNearest(float* src, int batch, int height, int width, int channels, float* dst) =>
        Run(new Job { Op = Op.Upsample2x, X = src, Ldx = (nint)width * channels, Dst = dst, Columns = width, Ldd = channels, Rows = (nint)batch * height });

    private static void Run(Job job)
    {
        if (job.Rows <= 0 || job.Columns <= 0)
        {
            return;
        }
        job.Tiles = Tiling.Count(job.Rows * job.Columns, job.Rows);
        if (job.Tiles == 1)
        {
            RunTile(&job, 0);
        }
        else
        {
            WorkerPool.Shared.Run(&RunTile, &job, job.Tiles);
        }
    }

    private static void RunTile(void* context, int tile)
    {
        Job* job = (Job*)context;
        nint start = Tiling.Start(tile, job->Tiles, job->Rows);
        nint end = Tiling.Start(tile + 1, job->Tiles, job->Rows);
        for (nint row = start; row < end; row++)
        {
            if (job->Op == Op.Upsample2x)
            {
                UpsampleRow(job->X + row * job->Ldx, job->Columns, (int)job->Ldd, job->Dst + 4 * row * job->Ldx);
                continue;
            }
            float* x = job->X + row * job->Ldx;
            float* d = job->Dst + row * job->Ldd;
            if (job->Op == Op.LeakyRelu)
            {
                if (job->Scalar) LeakyReluRowScalar(x, job->Columns, job->Factor);
                else LeakyReluRow(x, job->Columns, job->Factor);
            }
            else
            {
                float* r = job->R + row * job->Ldr;
                if (job->Scalar) ScaledAddRowScalar(x, job->Factor, r, d, job->Columns);
                else ScaledAddRow(x, job->Factor, r, d, job->Columns);
            }
        }
    }

    /// <summary>One input row of <paramref name="width"/> pixels to the two output rows it becomes.</summary>
    private static void UpsampleRow(float* src, int width, int channels, float* dst)
    {
        int outRow = 2 * width * channels;
        for (int x = 0; x < width; x++)
        {
            var pixel = new ReadOnlySpan<float>(src + (nint)x * channels, channels);
            pixel.CopyTo(new Span<float>(dst + (nint)2 * x * channels, channels));
            pixel.CopyTo(new Span<float>(dst + (nint)(2 * x + 1) * channels, channels));
        }
        new ReadOnlySpan<float>(dst, outRow).CopyTo(new Span<float>(dst + outRow, outRow));
    }

    private static void LeakyReluRowScalar(float* x, int count, float slope)
    {
        for (int i = 0; i < count; i++)
        {
            x[i] = x[i] > 0 ? x[i] : x[i] * slope;
        }
    }

    private static void ScaledAddRowScalar(float* x, float scale, float* r, float* d, int count)
    {
        for (int i = 0; i < count; i++)
        {
            float product = x[i] * scale;
            d[i] = product + r[i];
        }
    }

    private static void LeakyReluRow(float* x, int count, float slope)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> s = Vector512.Create(slope);
            for (; i <= count - 16; i += 16)
            {
                Vector512<float> v = Vector512.Load(x + i);
                Vector512.ConditionalSelect(Vector512.GreaterThan(v, Vector512<float>.Zero), v, v * s).Store(x + i);
            }
            if (i < count)
            {
                Vector512<float> mask = MaskedTail.Mask512(count - i);
                Vector512<float> v = MaskedTail.Load(x + i, mask);
                MaskedTail.Store(x + i, mask, Vector512.ConditionalSelect(Vector512.GreaterThan(v, Vector512<float>.Zero), v, v * s));
            }
            return;
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s = Vector256.Create(slope);
            for (; i <= count - 8; i += 8)
            {
                Vector256<float> v = Vector256.Load(x + i);
                Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero), v, v * s).Store(x + i);
            }
            if (i < count)
            {
                Vector256<float> mask = MaskedTail.Mask256(count - i);
                Vector256<float> v = MaskedTail.Load(x + i, mask);
                MaskedTail.Store(x + i, mask, Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero), v, v * s));
            }
            return;
        }
        LeakyReluRowScalar(x, count, slope);
    }

    /// <summary>The product is rounded before the add: the JIT does not contract * and + into a fused multiply-add.</summary>
    private static void ScaledAddRow(float* x, float scale, float* r, float* d, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> s = Vector512.Create(scale);
            for (; i <= count - 16; i += 16)
            {
                (Vector512.Load(x + i) * s + Vector512.Load(r + i)).Store(d + i);
            }
            if (i < count)
            {
                Vector512<float> mask = MaskedTail.Mask512(count - i);
                MaskedTail.Store(d + i, mask, MaskedTail.Load(x + i, mask) * s + MaskedTail.Load(r + i, mask));
            }
            return;
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s = Vector256.Create(scale);
            for (; i <= count - 8; i += 8)
            {
                (Vector256.Load(x + i) * s + Vector256.Load(r + i)).Store(d + i);
            }
            if (i < count)
            {
                Vector256<float> mask = MaskedTail.Mask256(count - i);
                MaskedTail.Store(d + i, mask, MaskedTail.Load(x + i, mask) * s + MaskedTail.Load(r + i, mask));
            }
            return;
        }
        ScaledAddRowScalar(x, scale, r, d, count);
    }
}
