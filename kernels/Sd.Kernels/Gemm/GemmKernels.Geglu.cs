using System.Runtime.InteropServices;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Gemm;

public static unsafe partial class GemmKernels
{
    /// <summary>
    /// The most floats of one row block's C a fused GEGLU keeps per thread (4 MiB: 112 rows of up to 9362 columns;
    /// SD 1.5's projections are 2560 and 5120 wide where M is long enough to fuse).
    /// </summary>
    private const int FusedGegluMaxFloats = 1 << 20;

    /// <summary>Row blocks per thread below which a GEGLU projection is not fused (it would leave threads idle).</summary>
    private const int FusedGegluMinBlocksPerThread = 2;

    [ThreadStatic]
    private static float* t_gegluRows;

    /// <summary>
    /// dst[M, N/2] (rows <paramref name="ldd"/> floats apart) = value * gelu(gate) of C = A W^T + bias, whose columns
    /// are [value | gate] (diffusers GEGLU's proj). Long products are fused: each task computes one row block of C
    /// into its thread's scratch, still in cache, and writes the block's GEGLU from there, so the 2F-wide C never
    /// goes to memory and is never read back. Others (a short M, whose split is by columns) store C in
    /// <paramref name="temp"/> ([M, N]; may be dst with ldd = N) and apply GEGLU to it.
    /// </summary>
    public static void MultiplyGeglu(int m, float* a, int lda, PackedWeights w, float* bias, float* dst, int ldd, float* temp)
    {
        if (w.N % 2 != 0)
        {
            throw new ArgumentException($"a GEGLU projection has [value | gate] columns, an even count, not {w.N}", nameof(w));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(ldd, w.N / 2);
        GemmVariant variant = Selected;
        int mc = RowBlock(variant.Mr, w.Format, m);
        int rowBlocks = (m + mc - 1) / mc;
        if (rowBlocks < FusedGegluMinBlocksPerThread * WorkerPool.Shared.ThreadCount || (long)mc * w.N > FusedGegluMaxFloats)
        {
            Multiply(variant, m, a, lda, w, temp, w.N, bias, null, 0);
            Pointwise.Geglu(temp, dst, m, w.N / 2, ldd);
            return;
        }
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Gemm);
        ArgumentOutOfRangeException.ThrowIfLessThan(lda, w.K);
        Diagnostics.FlopCounter.Add(2L * m * w.N * w.K);
        var matrix = new RowMajorMatrix { Data = a, Ld = lda };
        // C is never stored: Ldc is the row stride of the per-thread block it is computed in.
        var args = new GemmArgs { M = m, A = RowMajorMatrix.Packer(&matrix), W = new PackedWeightsView(w), Ldc = w.N, Bias = bias };
        var context = new TaskContext
        {
            Args = &args, Variant = variant, RowsPerBlock = mc, ColumnGroups = 1, PanelsPerGroup = w.Panels,
            K0 = 0, K1 = w.K, GegluOutput = dst, GegluStride = ldd,
        };
        WorkerPool.Shared.Run(&GegluTask, &context, rowBlocks);
    }

    /// <summary>One row block of a fused GEGLU: all of its C into the thread's scratch, then value * gelu(gate) out.</summary>
    private static void GegluTask(void* state, int index)
    {
        TaskContext* ctx = (TaskContext*)state;
        GemmArgs* args = ctx->Args;
        int row0 = index * ctx->RowsPerBlock;
        int rows = Math.Min(ctx->RowsPerBlock, args->M - row0);
        if (t_gegluRows == null)
        {
            t_gegluRows = (float*)NativeMemory.AlignedAlloc((nuint)FusedGegluMaxFloats * sizeof(float), 64);
        }
        ComputeBlock(ctx, row0, rows, 0, args->W.Panels, t_gegluRows);
        Pointwise.GegluRows(t_gegluRows, ctx->GegluOutput + (nint)row0 * ctx->GegluStride, rows, args->W.N / 2, ctx->GegluStride);
    }
}
