using System.Runtime.Intrinsics;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// The elementwise steps of an ESRGAN network on NHWC feature maps whose pixels may be a slice of wider rows (a dense
/// block's growing concatenation): LeakyReLU or PReLU (a slope per channel) in place, the scaled residual <c>x * scale + r</c> (multiplied, rounded,
/// then added, as PyTorch evaluates <c>x5 * 0.2 + x</c>: no fused multiply-add), and 2x nearest-neighbour upsampling.
/// Each has a scalar reference; rows are tiled over <see cref="WorkerPool.Shared"/>.
/// </summary>
public static unsafe class FeatureMapKernels
{
    private enum Op
    {
        LeakyRelu,
        ScaledAdd,
        Copy,
        Upsample2x,
    }

    private static readonly delegate*<float*, int, float, float*, void> LeakyReluRowKernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &LeakyReluRow<Vector512<float>, F32x16>,
        SimdLevel.Vector256 => &LeakyReluRow<Vector256<float>, F32x8>,
        _ => &LeakyReluRowScalar,
    };

    private static readonly delegate*<float*, float, float*, float*, int, void> ScaledAddRowKernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &ScaledAddRow<Vector512<float>, F32x16>,
        SimdLevel.Vector256 => &ScaledAddRow<Vector256<float>, F32x8>,
        _ => &ScaledAddRowScalar,
    };

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

    /// <summary>x[r * ldx + c] = x &gt; 0 ? x : x * slopes[c] (torch.nn.PReLU with a slope per channel).</summary>
    public static void Prelu(float* x, nint rows, int columns, nint ldx, float* slopes) =>
        Run(new Job { Op = Op.LeakyRelu, X = x, Ldx = ldx, R = slopes, Dst = x, Ldd = ldx, Columns = columns, Rows = rows });

    /// <summary>The scalar references of <see cref="LeakyRelu"/>, <see cref="Prelu"/> and <see cref="ScaledAdd"/>: the tests' oracle.</summary>
    public static void LeakyRelu_Scalar(float* x, nint rows, int columns, nint ldx, float slope) =>
        Run(new Job { Op = Op.LeakyRelu, X = x, Ldx = ldx, Dst = x, Ldd = ldx, Columns = columns, Factor = slope, Rows = rows, Scalar = true });

    public static void Prelu_Scalar(float* x, nint rows, int columns, nint ldx, float* slopes) =>
        Run(new Job { Op = Op.LeakyRelu, X = x, Ldx = ldx, R = slopes, Dst = x, Ldd = ldx, Columns = columns, Rows = rows, Scalar = true });

    public static void ScaledAdd_Scalar(float* x, nint ldx, float scale, float* r, nint ldr, float* dst, nint ldd, nint rows, int columns) =>
        Run(new Job { Op = Op.ScaledAdd, X = x, Ldx = ldx, R = r, Ldr = ldr, Dst = dst, Ldd = ldd, Columns = columns, Factor = scale, Rows = rows, Scalar = true });

    /// <summary>dst[r * ldd + c] = src[r * lds + c] for rows r, columns c &lt; columns: a channel slice to or from a wider tensor.</summary>
    public static void CopyColumns(float* src, nint lds, float* dst, nint ldd, nint rows, int columns) =>
        Run(new Job { Op = Op.Copy, X = src, Ldx = lds, Dst = dst, Ldd = ldd, Columns = columns, Rows = rows });

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
            float* x = job->X + row * job->Ldx;
            float* d = job->Dst + row * job->Ldd;
            switch (job->Op)
            {
                case Op.LeakyRelu:
                    (job->Scalar ? &LeakyReluRowScalar : LeakyReluRowKernel)(x, job->Columns, job->Factor, job->R);
                    break;
                case Op.ScaledAdd:
                    (job->Scalar ? &ScaledAddRowScalar : ScaledAddRowKernel)(x, job->Factor, job->R + row * job->Ldr, d, job->Columns);
                    break;
                case Op.Copy:
                    new ReadOnlySpan<float>(x, job->Columns).CopyTo(new Span<float>(d, job->Columns));
                    break;
                default:
                    UpsampleRow(x, job->Columns, (int)job->Ldd, job->Dst + 4 * row * job->Ldx);
                    break;
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

    /// <summary>One row of LeakyReLU (<paramref name="slopes"/> null) or PReLU (a slope per column).</summary>
    private static void LeakyReluRowScalar(float* x, int count, float slope, float* slopes)
    {
        for (int i = 0; i < count; i++)
        {
            x[i] = LeakyRelu(x[i], slopes == null ? slope : slopes[i]);
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

    /// <summary>Whole vectors, then one masked vector for the rest; the slope broadcast, or one per column.</summary>
    private static void LeakyReluRow<TVec, V>(float* x, int count, float slope, float* slopes)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
    {
        TVec s = V.Create(slope);
        int i = 0;
        for (; i <= count - V.Count; i += V.Count)
        {
            V.Store(LeakyRelu<TVec, V>(V.Load(x + i), slopes == null ? s : V.Load(slopes + i)), x + i);
        }
        if (i < count)
        {
            TVec mask = V.Mask(count - i);
            V.MaskedStore(x + i, mask, LeakyRelu<TVec, V>(V.MaskedLoad(x + i, mask), slopes == null ? s : V.MaskedLoad(slopes + i, mask)));
        }
    }

    /// <summary>v &gt; 0 ? v : v * slope (also a fused convolution's activation).</summary>
    internal static float LeakyRelu(float v, float slope) => v > 0 ? v : v * slope;

    /// <summary>v &gt; 0 ? v : v * slope, per lane (also a fused convolution's activation).</summary>
    internal static TVec LeakyRelu<TVec, V>(TVec v, TVec slope)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec> =>
        V.ConditionalSelect(V.GreaterThan(v, V.Zero), v, V.Multiply(v, slope));

    /// <summary>The product is rounded before the add (Multiply then Add, never a fused multiply-add).</summary>
    private static void ScaledAddRow<TVec, V>(float* x, float scale, float* r, float* d, int count)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
    {
        TVec s = V.Create(scale);
        int i = 0;
        for (; i <= count - V.Count; i += V.Count)
        {
            V.Store(V.Add(V.Multiply(V.Load(x + i), s), V.Load(r + i)), d + i);
        }
        if (i < count)
        {
            TVec mask = V.Mask(count - i);
            V.MaskedStore(d + i, mask, V.Add(V.Multiply(V.MaskedLoad(x + i, mask), s), V.MaskedLoad(r + i, mask)));
        }
    }
}
