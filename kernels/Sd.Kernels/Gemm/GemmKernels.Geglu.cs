using System.Runtime.InteropServices;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Memory;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Gemm;

public static unsafe partial class GemmKernels
{
    /// <summary>
    /// The most floats of one row block's C a fused GEGLU keeps per thread: 8 MiB, a row block of 16-bit weights
    /// (224 rows) by up to 9362 columns; SD 1.5's projections are 2560 and 5120 wide where M is long enough to fuse.
    /// Half of that left F16's 5120-wide ones unfused: 2048 x 640 feed-forward 57.1-59.7 -> 55.3-56.4 ms.
    /// </summary>
    private const int FusedGegluMaxFloats = 1 << 21;

    /// <summary>Row blocks per thread below which a GEGLU projection is not fused (it would leave threads idle).</summary>
    private const int FusedGegluMinBlocksPerThread = 2;

    [ThreadStatic]
    private static ThreadScratch? t_gegluRows;

    /// <summary>
    /// dst[M, N/2] (rows <paramref name="ldd"/> floats apart) = value * gelu(gate) of C = A W^T + bias, whose columns
    /// are [value | gate] (diffusers GEGLU's proj). Long products are fused: each task computes one row block of C
    /// into its thread's scratch, still in cache, and writes the block's GEGLU from there, so the 2F-wide C never
    /// goes to memory and is never read back. Others (a short M, whose split is by columns) store C in
    /// <paramref name="temp"/> ([M, N]; may be dst with ldd = N) and apply GEGLU to it.
    /// </summary>
    public static void MultiplyGeglu(int m, float* a, int lda, PackedWeights w, float* bias, float* dst, int ldd, float* temp)
    {
        ValidateGeglu(w, lda);
        ArgumentOutOfRangeException.ThrowIfLessThan(ldd, w.N / 2);
        if (!FusesGeglu(m, w, out int mc))
        {
            Multiply(Selected, m, a, lda, w, temp, w.N, bias, null, 0);
            Pointwise.Geglu(temp, dst, m, w.N / 2, ldd);
            return;
        }
        RunGeglu(m, a, lda, WidenedOnce(new PackedWeightsView(w), m, 0), bias, mc, dst, ldd, down: null);
    }

    /// <summary>
    /// A GEGLU feed-forward with its residual (diffusers FeedForward: proj, GEGLU, then the down projection):
    /// hidden[M, N2] (rows <paramref name="ldh"/> floats apart) += GEGLU(A W1^T + b1) W2^T + b2. Where
    /// <see cref="MultiplyGeglu"/> fuses, each task also multiplies its row block's GEGLU output, still in its
    /// thread's cache, by W2: the [M, N1/2] activations never go to memory either. Otherwise the two products run
    /// in turn through <paramref name="temp"/> (<see cref="FeedForwardTempFloats"/>: [M, N1] floats, or none).
    /// </summary>
    public static void FeedForwardGeglu(int m, float* a, int lda, PackedWeights w1, float* b1, PackedWeights w2, float* b2,
        float* hidden, int ldh, float* temp)
    {
        ValidateGeglu(w1, lda);
        if (w2.K != w1.N / 2)
        {
            throw new ArgumentException($"the down projection takes {w2.K} features, the GEGLU gives {w1.N / 2}", nameof(w2));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(ldh, w2.N);
        if (!FusesGeglu(m, w1, out int mc))
        {
            if (temp == null)
            {
                throw new ArgumentNullException(nameof(temp), $"a feed-forward of {m} rows runs unfused and needs [{m}, {w1.N}] floats of temp");
            }
            MultiplyGeglu(m, a, lda, w1, b1, temp, w1.N, temp);
            Multiply(Selected, m, temp, w1.N, w2, hidden, ldh, b2, hidden, ldh);
            return;
        }
        PackedWeightsView up = WidenedOnce(new PackedWeightsView(w1), m, 0);
        long widened = up.Format == w1.Format ? 0 : (long)up.Panels * up.PanelWidth * up.K;
        var down = new GemmArgs { M = m, W = WidenedOnce(new PackedWeightsView(w2), m, widened), C = hidden, Ldc = ldh };
        SetEpilogue(ref down, b2, hidden, ldh);
        RunGeglu(m, a, lda, up, b1, mc, gegluOutput: null, gegluStride: 0, &down);
    }

    /// <summary>Floats of temp a <see cref="FeedForwardGeglu"/> of M rows needs: none where it runs fused.</summary>
    public static long FeedForwardTempFloats(int m, PackedWeights w1) => FusesGeglu(m, w1, out _) ? 0 : (long)m * w1.N;

    private static void ValidateGeglu(PackedWeights w, int lda)
    {
        if (w.N % 2 != 0)
        {
            throw new ArgumentException($"a GEGLU projection has [value | gate] columns, an even count, not {w.N}", nameof(w));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(lda, w.K);
    }

    /// <summary>Whether a GEGLU projection of M rows runs fused, in row blocks of <paramref name="mc"/>.</summary>
    private static bool FusesGeglu(int m, PackedWeights w, out int mc)
    {
        mc = RowBlock(Selected.Mr, w.Format, m);
        int rowBlocks = (m + mc - 1) / mc;
        return rowBlocks >= FusedGegluMinBlocksPerThread * WorkerPool.Shared.ThreadCount && (long)mc * w.N <= FusedGegluMaxFloats;
    }

    /// <summary>
    /// The fused row-block tasks: the GEGLU output goes to <paramref name="gegluOutput"/>, or when
    /// <paramref name="down"/> is not null through that down projection.
    /// </summary>
    private static void RunGeglu(int m, float* a, int lda, PackedWeightsView w, float* bias, int mc,
        float* gegluOutput, int gegluStride, GemmArgs* down)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Gemm, down == null
            ? new Diagnostics.KernelShape("GEMM+GEGLU {0}x{1}x{2}", m, w.N, w.K)
            : new Diagnostics.KernelShape("feed-forward GEMM+GEGLU {0}x{1}x{2}, down to {3}", m, w.N, w.K, down->W.N));
        Diagnostics.FlopCounter.Add(2L * m * w.N * w.K + (down == null ? 0 : 2L * m * down->W.N * down->W.K));
        var matrix = new RowMajorMatrix { Data = a, Ld = lda };
        // C is never stored: Ldc is the row stride of the per-thread block it is computed in.
        var args = new GemmArgs { M = m, A = RowMajorMatrix.Packer(&matrix), W = w, Ldc = w.N, Bias = bias };
        TaskContext context = WholeRowBlocks(&args, Selected, mc);
        context.GegluOutput = gegluOutput;
        context.GegluStride = gegluStride;
        context.Down = down;
        WorkerPool.Shared.Run(&GegluTask, &context, (m + mc - 1) / mc);
    }

    /// <summary>A task context for row blocks of <paramref name="mc"/> rows that each take every panel and all of K.</summary>
    private static TaskContext WholeRowBlocks(GemmArgs* args, GemmVariant variant, int mc) => new()
    {
        Args = args, Variant = variant, RowsPerBlock = mc, ColumnGroups = 1, PanelsPerGroup = args->W.Panels,
        K0 = 0, K1 = args->W.K,
    };

    /// <summary>
    /// One row block of a fused GEGLU: all of its C into the thread's scratch, then value * gelu(gate) out, or
    /// compacted in place ([rows, F]: row r's output overwrites only rows before r and its own value half) and
    /// multiplied by the down projection onto its rows.
    /// </summary>
    private static void GegluTask(void* state, int index)
    {
        TaskContext* ctx = (TaskContext*)state;
        GemmArgs* args = ctx->Args;
        int row0 = index * ctx->RowsPerBlock;
        int rows = Math.Min(ctx->RowsPerBlock, args->M - row0);
        int features = args->W.N / 2;
        float* block = ThreadScratch.Get(ref t_gegluRows, FusedGegluMaxFloats);
        ComputeBlock(ctx, row0, rows, 0, args->W.Panels, block);
        if (ctx->Down == null)
        {
            Pointwise.GegluRows(block, ctx->GegluOutput + (nint)row0 * ctx->GegluStride, rows, features, ctx->GegluStride);
            return;
        }
        Pointwise.GegluRows(block, block, rows, features, features);
        // The block holds rows [row0, row0 + rows) of the down projection's A: Data is where its row 0 would be.
        var matrix = new RowMajorMatrix { Data = block - (nint)row0 * features, Ld = features };
        GemmArgs down = *ctx->Down;
        down.A = RowMajorMatrix.Packer(&matrix);
        TaskContext downContext = WholeRowBlocks(&down, ctx->Variant, ctx->RowsPerBlock);
        ComputeBlock(&downContext, row0, rows, 0, down.W.Panels, CRows(&down, row0));
    }
}
