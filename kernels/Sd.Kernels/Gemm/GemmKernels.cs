using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Memory;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Gemm;

/// <summary>
/// C[M,N] = A[M,K] W[N,K]^T (+ bias[N]) (+ residual[M,N]) with W pre-packed (<see cref="PackedWeights"/>) and A the
/// row-major activations (an NHWC tensor is [pixels, channels]) or a virtual matrix gathered by an
/// <see cref="APacker"/>. GotoBLAS/BLIS loop nest: K in deep blocks (<see cref="KBlock"/>: a B micro-panel of a K
/// block x NR streams from L2), A packed per task into MR-row micro-panels (an Mc x K-block A block), the microkernel
/// over MR x NR register tiles. Parallel calls split (row block, column-panel group) tasks over <see cref="WorkerPool"/>.
/// </summary>
public static unsafe partial class GemmKernels
{
    /// <summary>
    /// The deepest K block of a product that is one row block (a short M, see <see cref="RowBlock(int, WeightFormat, int)"/>):
    /// K up to 640 runs whole, deeper K in equal blocks of at most 640.
    /// </summary>
    private const int MaxShortKc = 640;

    /// <summary>The deepest K block of a product of several row blocks: K up to 1280 whole, deeper in equal blocks.</summary>
    private const int MaxLongKc = 1280;

    /// <summary>
    /// The K block of an M-row product of depth <paramref name="k"/>. Every K block is one more pass that loads and
    /// stores each C tile and restarts each B micro-panel's stream, and Zen 5's L2 feeds a B micro-panel that has
    /// outgrown L1 (a 640 x 32 float one is 80 KiB) without slowing the microkernel: 256-deep blocks, sized for L1,
    /// measured slower than deep ones. Two threads, weights flushed, alternating in one process (median ms, blocks
    /// of 256 / K whole or 1280 deep):
    /// <code>
    /// 2048x640x640   5.47 / 5.13     8192x640x640  21.5 / 20.3     2048x1920x640  13.4 / 12.6
    /// 8192x320x1280 21.5 / 20.4      2048x640x2560 21.7 / 20.1     2048x640x1920  15.7 / 14.8 (960 x 2)
    /// F16 weights:   2048x640x640 4.64 / 4.36, 8192x320x1280 18.9 / 17.4, 2048x640x2560 18.4 / 17.2
    /// </code>
    /// A short M gains less and, at 1280, sometimes loses (blocks of 256 / 640 / 1280): 512x10240x1280 36.3 / 34.6 /
    /// 33.7, 128x10240x1280 9.43 / 9.10 / 9.42, 512x1280x1280 4.45 / 4.47 / 4.57, 128x1280x1280 1.19 / 1.19 / 1.28,
    /// 512x1280x5120 17.8 / 17.9 / 18.0 (F16: 128x10240x1280 8.84 / 8.53 / 8.55).
    /// </summary>
    private static int KBlock(int mr, int m, int k)
    {
        int most = (m + mr - 1) / mr <= MaxMicroPanelsPerBlock ? MaxShortKc : MaxLongKc;
        int blocks = (k + most - 1) / most;
        return (k + blocks - 1) / blocks;
    }

    /// <summary>
    /// Micro-panels of A per row block: Mc = 8 MR rows (an A block of Mc x a K block) for F32 weights; 16-bit weights
    /// use twice that, so each widened B micro-panel serves 16 microkernel calls (measured: widening then costs 1-3%
    /// instead of 4-5%). A short M is one block of up to 40 (see <see cref="RowBlock(int, WeightFormat, int)"/>).
    /// </summary>
    private const int MicroPanelsPerBlock = 8;

    private const int WidenedMicroPanelsPerBlock = 16;

    /// <summary>
    /// The most micro-panels one row block takes: 40 x 14 rows, so SD 1.5's 512-row products (16x16 latents, batch
    /// 2) are one row block and stream their weights once (see <see cref="RowBlock(int, WeightFormat, int)"/>).
    /// </summary>
    private const int MaxMicroPanelsPerBlock = 40;

    /// <summary>
    /// Rows per row block (Mc) for an M-row product. Up to <see cref="MaxMicroPanelsPerBlock"/> micro-panels, M is one
    /// row block, because every row block streams all its weight panels from memory, and the first microkernel call
    /// on each B micro-panel waits for it. An implicit-GEMM convolution at 8x8 latents has M = 128 rows and 59 MB of
    /// F32 weights, which two blocks of 112 + 16 rows read twice; SD 1.5's 16x16-latent layers (M = 512, batch 2) read
    /// their 6.5-52 MB of weights once instead of five times (one thread, weights cold: 512x10240x1280 138-147 ->
    /// 181-182 GFLOP/s, 512x3840x1280 153-160 -> 197-201, 512x1280x5120 143-165 -> 198-202). On several threads,
    /// <see cref="Run"/> may still split such an M by rows, one block per thread (<see cref="ShortRowSplit"/>).
    /// </summary>
    private static int RowBlock(int mr, WeightFormat format, int m)
    {
        int panels = (m + mr - 1) / mr;
        if (panels <= MaxMicroPanelsPerBlock)
        {
            return Math.Max(panels, 1) * mr;
        }
        return mr * (format == WeightFormat.F32 ? MicroPanelsPerBlock : WidenedMicroPanelsPerBlock);
    }

    /// <summary>The variant for this CPU, chosen once.</summary>
    public static GemmVariant Selected { get; } = Simd.Level switch
    {
        SimdLevel.Vector512 => GemmVariant.Vector512,
        SimdLevel.Vector256 => GemmVariant.Vector256,
        _ => GemmVariant.Scalar,
    };

    /// <summary>NR of the selected microkernel: the panel width weights are packed with.</summary>
    public static int PanelWidth => Selected.Nr;

    [ThreadStatic]
    private static ThreadScratch? t_scratch;

    /// <summary>Plain triple loop on unpacked W [N, K]: the test oracle. Accumulates in float in k order.</summary>
    public static void Reference(int m, int n, int k, float* a, int lda, float* w, int ldw, float* c, int ldc,
        float* bias, float* residual, int ldr)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                float sum = 0;
                for (int kk = 0; kk < k; kk++)
                {
                    sum += a[(nint)i * lda + kk] * w[(nint)j * ldw + kk];
                }
                if (bias != null)
                {
                    sum += bias[j];
                }
                if (residual != null)
                {
                    sum += residual[(nint)i * ldr + j];
                }
                c[(nint)i * ldc + j] = sum;
            }
        }
    }

    /// <summary>
    /// C = A W^T (+ bias) (+ residual) for a row-major A. <paramref name="residual"/> may be C itself (ldr == ldc):
    /// the product is then accumulated onto C in place, an in-place skip connection. Otherwise it must not overlap
    /// C. Runs on <see cref="WorkerPool.Shared"/>.
    /// </summary>
    public static void Multiply(int m, float* a, int lda, PackedWeights w, float* c, int ldc,
        float* bias = null, float* residual = null, int ldr = 0) =>
        Multiply(Selected, m, a, lda, w, c, ldc, bias, residual, ldr);

    /// <summary><see cref="Multiply(int, float*, int, PackedWeights, float*, int, float*, float*, int)"/> with an explicit variant (tests, benchmarks).</summary>
    public static void Multiply(GemmVariant variant, int m, float* a, int lda, PackedWeights w, float* c, int ldc,
        float* bias, float* residual, int ldr)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(lda, w.K);
        var matrix = new RowMajorMatrix { Data = a, Ld = lda };
        var args = new GemmArgs
        {
            M = m,
            A = RowMajorMatrix.Packer(&matrix),
            W = new PackedWeightsView(w),
            C = c,
            Ldc = ldc,
        };
        SetEpilogue(ref args, bias, residual, ldr);
        Run(variant, ref args);
    }

    /// <summary>Sets bias and residual, turning residual == C into in-place accumulation.</summary>
    public static void SetEpilogue(ref GemmArgs args, float* bias, float* residual, int ldr)
    {
        args.Bias = bias;
        bool inPlace = residual != null && residual == args.C;
        if (inPlace && ldr != args.Ldc)
        {
            throw new ArgumentException("an in-place residual (residual == C) needs ldr == ldc", nameof(ldr));
        }
        args.AccumulateIntoC = inPlace;
        args.Residual = inPlace ? null : residual;
        args.Ldr = ldr;
    }

    private struct TaskContext
    {
        public GemmArgs* Args;
        public GemmVariant Variant;

        /// <summary>Rows per row block (Mc): <see cref="RowBlock(int, WeightFormat, int)"/>, or a short M's share per thread.</summary>
        public int RowsPerBlock;
        public int ColumnGroups;
        public int PanelsPerGroup;

        /// <summary>The K range [K0, K1) this dispatch computes (all of K unless A is shared).</summary>
        public int K0;
        public int K1;

        /// <summary>A pre-packed for [K0, K1) by <see cref="PackTask"/> (row block b at b x Mc x Chunk floats); null: each task packs.</summary>
        public float* SharedA;
        public int Chunk;

        /// <summary>Fused GEGLU (<see cref="MultiplyGeglu"/>): where each row block's value * gelu(gate) goes.</summary>
        public float* GegluOutput;
        public int GegluStride;

        /// <summary>Fused feed-forward (<see cref="FeedForwardGeglu"/>): the down projection (its A set per task), else null.</summary>
        public GemmArgs* Down;
    }

    /// <summary>Floats of packed A shared by the tasks of one K chunk (4 MiB: in L3, read by every column group).</summary>
    private const int SharedAFloats = 1 << 20;

    /// <summary>
    /// The most floats one K block of a shared A may take when its rows x K block exceed <see cref="SharedAFloats"/>
    /// (the chunk is then that one K block): a 1280-deep block of up to 3276 rows, so the products that shared A in
    /// 256-deep blocks still do.
    /// </summary>
    private const int MaxSharedAFloats = 4 << 20;

    [ThreadStatic]
    private static ThreadScratch? t_sharedA;

    /// <summary>Runs one GEMM over the worker pool (small problems run on the calling thread).</summary>
    public static void Run(GemmVariant variant, ref GemmArgs args)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Gemm,
            new Diagnostics.KernelShape("GEMM {0}x{1}x{2}", args.M, args.W.N, args.W.K));
        Validate(variant, ref args);
        if (args.M <= 0)
        {
            return;
        }
        Diagnostics.FlopCounter.Add(2L * args.M * args.W.N * args.W.K);
        GemmArgs call = args;
        call.W = WidenedOnce(call.W, call.M, 0);
        int panels = call.W.Panels;
        (int mc, int groups, int panelsPerGroup) = Split(variant.Mr, call.W.Format, call.M, panels, WorkerPool.Shared.ThreadCount);
        int rowBlocks = (call.M + mc - 1) / mc;
        GemmArgs* pArgs = &call;
        var context = new TaskContext
        {
            Args = pArgs, Variant = variant, RowsPerBlock = mc,
            ColumnGroups = groups, PanelsPerGroup = panelsPerGroup, K0 = 0, K1 = call.W.K,
        };
        int tasks = rowBlocks * groups;
        if (tasks == 1 || (long)call.M * call.W.N * call.W.K < 1 << 18)
        {
            Compute(variant, pArgs, 0, call.M, 0, panels);
        }
        else if (groups > 1 && (long)rowBlocks * mc * KBlock(variant.Mr, call.M, call.W.K) <= MaxSharedAFloats)
        {
            RunWithSharedA(&context, rowBlocks * mc, tasks);
        }
        else
        {
            WorkerPool.Shared.Run(&RunTask, &context, tasks);
        }
    }

    /// <summary>
    /// How <see cref="Run"/> splits an M-row product with <paramref name="panels"/> weight panels over
    /// <paramref name="threads"/>: rows per row block, column groups and panels per group (tasks are row blocks x
    /// groups). A long M takes about four tasks per thread, as column groups of its row blocks.
    /// </summary>
    internal static (int RowsPerBlock, int Groups, int PanelsPerGroup) Split(int mr, WeightFormat format, int m, int panels, int threads)
    {
        int mc = RowBlock(mr, format, m);
        int rowBlocks = (m + mc - 1) / mc;
        int groups;
        if (rowBlocks == 1)
        {
            (mc, groups) = ShortRowSplit(mr, m, panels, threads);
            rowBlocks = (m + mc - 1) / mc;
        }
        else
        {
            groups = Math.Clamp((threads * 4 + rowBlocks - 1) / rowBlocks, 1, panels);
        }
        int panelsPerGroup = BalancedGroupPanels(panels, (panels + groups - 1) / groups, rowBlocks, threads);
        return (mc, (panels + panelsPerGroup - 1) / panelsPerGroup, panelsPerGroup);
    }

    /// <summary>
    /// A short M's split over the threads (it is one row block, see <see cref="RowBlock(int, WeightFormat, int)"/>):
    /// returns the rows per block and the column groups. With few weight panels (N up to
    /// <see cref="RowSplitMaxPanels"/> x NR) and enough rows for each thread to reuse a B micro-panel
    /// <see cref="RowSplitMinMicroPanels"/> times, each thread takes its own share of the rows against every panel,
    /// packing its own A; otherwise one column group per thread shares one packed A. The old split, four column groups
    /// per thread, re-read the shared A for a few panels per task. Two threads, weights flushed, alternating in one
    /// process (median ms; old / one group per thread / rows per thread):
    /// <code>
    /// 512x640x640    1.34 / 1.25 / 1.11    512x1280x1280  4.75 / 4.51 / 4.28    512x1280x5120 18.4 / 17.8 / 17.2
    /// 512x640x2560   5.38 /  -   / 4.39    512x2560x1280  8.87 /  -   / 8.56    512x3840x1280 12.8 /  -   / 12.8
    /// 512x10240x1280 34.6 / 34.8 / 36.9    128x1280x1280  1.21 / 1.14 / 1.17    128x1280x5120 5.04 / 4.58 / 4.72
    /// 128x3840x1280  3.28 / 3.18 / 3.49    128x5120x1280  4.41 / 4.37 / 4.81    32x1280x11520 2.42 / 2.41 /  -
    /// </code>
    /// With fewer than <see cref="ShortTasksPerThread"/> panels per thread (many cores), column groups alone leave
    /// threads idle or unevenly loaded, so the rows are split too: one panel per group and row blocks enough for
    /// about that many tasks per thread, all reading one shared packed A. SD 1.5's 512x640x640 on 16 threads ran as
    /// 10 groups of 2 panels, only 1.5x faster than on 2 threads. On a 16-core Xeon, alternating with the column-only
    /// split: UNet 32x32 latents 0.297-0.310 s against 0.315-0.324 s (4 rounds). Four tasks per thread (which also
    /// splits 128x1280 products there) gained about as much on 16 threads but lost 2% on 8.
    /// </summary>
    private static (int Rows, int Groups) ShortRowSplit(int mr, int m, int panels, int threads)
    {
        int microPanels = (m + mr - 1) / mr;
        if (threads > 1 && panels <= RowSplitMaxPanels && microPanels >= RowSplitMinMicroPanels * threads)
        {
            return ((microPanels + threads - 1) / threads * mr, 1);
        }
        if (panels < ShortTasksPerThread * threads && microPanels > 1)
        {
            int rowBlocks = Math.Min(microPanels, (ShortTasksPerThread * threads + panels - 1) / panels);
            return ((microPanels + rowBlocks - 1) / rowBlocks * mr, panels);
        }
        return (microPanels * mr, Math.Clamp(threads, 1, panels));
    }

    /// <summary>Tasks per thread a short M's split aims at when its panels alone are too few (see <see cref="ShortRowSplit"/>).</summary>
    private const int ShortTasksPerThread = 2;

    /// <summary>The most weight panels (N / NR) of a short M whose rows are split over the threads (measured: 80 gain, 120 equal, 320 lose).</summary>
    private const int RowSplitMaxPanels = 96;

    /// <summary>The fewest micro-panels per thread for a row split: M = 128 (10 micro-panels) lost against column groups.</summary>
    private const int RowSplitMinMicroPanels = 16;

    /// <summary>
    /// Panels per column group of a short M already split into several groups: of <paramref name="most"/> and
    /// smaller counts down to half of it, the one whose tasks finish soonest when the threads take them in turn
    /// (rounds per thread times panels per task; the larger count on a tie). Otherwise a thread can sit idle for a
    /// whole task: SD 1.5's 640-wide products at 16x16 latents (M = 512, 20 panels, two threads) ran as 7 groups of 3
    /// panels, 4 rounds or 12 panel-times per thread against 10 of work; 10 groups of 2 take exactly 10.
    /// </summary>
    private static int BalancedGroupPanels(int panels, int most, int rowBlocks, int threads)
    {
        if (most == panels)
        {
            // One column group: splitting it would add a shared-A packing pass (2048x640x640, two threads, hot: 19
            // tasks of all 20 panels 389-394 GFLOP/s, 38 tasks of 10 panels on a shared A 358-362).
            return most;
        }
        int best = most;
        long bestSpan = long.MaxValue;
        for (int perGroup = most; perGroup >= 1 && perGroup * 2 >= most; perGroup--)
        {
            long tasks = (long)rowBlocks * ((panels + perGroup - 1) / perGroup);
            long span = (tasks + threads - 1) / threads * perGroup;
            if (span < bestSpan)
            {
                best = perGroup;
                bestSpan = span;
            }
        }
        return best;
    }

    /// <summary>
    /// Runs the GEMM for rows [rowStart, rowStart + rows) and weight panels [panelStart, panelEnd) on the calling
    /// thread: for callers that parallelize at a coarser level (Winograd splits 36 GEMMs into one task list).
    /// </summary>
    public static void RunSerial(GemmVariant variant, ref GemmArgs args, int rowStart, int rows, int panelStart, int panelEnd)
    {
        panelEnd = Math.Min(panelEnd, args.W.Panels);
        Validate(variant, ref args);
        fixed (GemmArgs* pArgs = &args)
        {
            Compute(variant, pArgs, rowStart, Math.Min(rows, args.M - rowStart), panelStart, panelEnd);
        }
    }

    /// <summary>
    /// Rows per row block (Mc) of an <paramref name="m"/>-row product with F32 weights on one thread: a short M (up to
    /// 40 micro-panels) is one block, so each weight panel is streamed once (<see cref="Run"/> on several threads may
    /// split it by rows, see <see cref="ShortRowSplit"/>).
    /// </summary>
    public static int RowBlock(GemmVariant variant, int m) => RowBlock(variant.Mr, WeightFormat.F32, m);

    private static void Validate(GemmVariant variant, ref GemmArgs args)
    {
        if (args.W.PanelWidth != variant.Nr)
        {
            throw new ArgumentException($"weights packed for NR={args.W.PanelWidth}, the {variant.Name} kernel uses NR={variant.Nr}", nameof(args));
        }
        if (args.Ldc < args.W.N)
        {
            throw new ArgumentException($"C rows are {args.Ldc} floats apart but the product has {args.W.N} columns", nameof(args));
        }
    }

    /// <summary>
    /// Several column groups share each row block (a short M spread over the threads): A is packed once per K chunk
    /// by all threads together, then every task reads it, instead of each task packing (an im2col gather for a
    /// convolution) the same rows again.
    /// </summary>
    private static void RunWithSharedA(TaskContext* context, int paddedRows, int tasks)
    {
        int k = context->Args->W.K;
        int kb = KBlock(context->Variant.Mr, context->Args->M, k);
        context->Chunk = Math.Max(kb, SharedAFloats / paddedRows / kb * kb);
        // Row block b starts at b x Mc x Chunk: SharedAFloats, or one K block of every row beyond that.
        context->SharedA = ThreadScratch.Get(ref t_sharedA, Math.Max(SharedAFloats, (nint)paddedRows * context->Chunk));
        int rowBlocks = paddedRows / context->RowsPerBlock;
        for (int k0 = 0; k0 < k; k0 += context->Chunk)
        {
            context->K0 = k0;
            context->K1 = Math.Min(k, k0 + context->Chunk);
            int kBlocks = (context->K1 - k0 + kb - 1) / kb;
            WorkerPool.Shared.Run(&PackTask, context, rowBlocks * kBlocks);
            WorkerPool.Shared.Run(&RunTask, context, tasks);
        }
    }

    /// <summary>Packs one (row block, K block) of the current chunk into the shared A.</summary>
    private static void PackTask(void* state, int index)
    {
        TaskContext* ctx = (TaskContext*)state;
        GemmArgs* args = ctx->Args;
        int mc = ctx->RowsPerBlock;
        int kb = KBlock(ctx->Variant.Mr, args->M, args->W.K);
        int kBlocks = (ctx->K1 - ctx->K0 + kb - 1) / kb;
        int row0 = index / kBlocks * mc;
        int pc = ctx->K0 + index % kBlocks * kb;
        args->A.Pack(args->A.State, row0, Math.Min(mc, args->M - row0), pc, Math.Min(kb, ctx->K1 - pc), ctx->Variant.Mr,
            SharedBlock(ctx, row0, pc, mc));
    }

    /// <summary>Where the packed A of (row block at row0, K block at pc) lives in the shared buffer.</summary>
    private static float* SharedBlock(TaskContext* ctx, int row0, int pc, int mc) =>
        ctx->SharedA + (nint)row0 * ctx->Chunk + (nint)(pc - ctx->K0) * mc;

    private static void RunTask(void* state, int index)
    {
        TaskContext* ctx = (TaskContext*)state;
        int mc = ctx->RowsPerBlock;
        int row0 = index / ctx->ColumnGroups * mc;
        int p0 = index % ctx->ColumnGroups * ctx->PanelsPerGroup;
        int p1 = Math.Min(p0 + ctx->PanelsPerGroup, ctx->Args->W.Panels);
        ComputeBlock(ctx, row0, Math.Min(mc, ctx->Args->M - row0), p0, p1, CRows(ctx->Args, row0));
    }

    private static void Compute(GemmVariant variant, GemmArgs* args, int row0, int rows, int p0, int p1)
    {
        int mc = RowBlock(variant.Mr, args->W.Format, args->M);
        var context = new TaskContext { Args = args, Variant = variant, RowsPerBlock = mc, K0 = 0, K1 = args->W.K };
        for (int r = row0; r < row0 + rows; r += mc)
        {
            ComputeBlock(&context, r, Math.Min(mc, row0 + rows - r), p0, p1, CRows(args, r));
        }
    }

    /// <summary>Row <paramref name="row"/> of C.</summary>
    private static float* CRows(GemmArgs* args, int row) => args->C + (nint)row * args->Ldc;

    /// <summary>
    /// One row block (at most Mc rows) against weight panels [p0, p1), over the context's K range, into
    /// <paramref name="c"/> (its first row; rows Ldc floats apart): C's rows, or a fused epilogue's scratch.
    /// </summary>
    private static void ComputeBlock(TaskContext* ctx, int row0, int rows, int p0, int p1, float* c)
    {
        GemmVariant variant = ctx->Variant;
        int mr = variant.Mr, nr = variant.Nr;
        GemmArgs* args = ctx->Args;
        int k = args->W.K;
        int ldc = args->Ldc;
        float* scratch = Scratch();
        float* widenedB = ScratchTile() + GemmMicrokernels.Mr512 * GemmMicrokernels.Nr512;
        WeightFormat format = args->W.Format;
        int elementBytes = format.ElementBytes();
        int mc = ctx->RowsPerBlock;
        delegate*<ushort*, float*, nint, void> widen = format == WeightFormat.F32 ? null : Convert.Widen.PanelKernelFor(format);
        int kb = KBlock(mr, args->M, k);
        for (int pc = ctx->K0; pc < ctx->K1; pc += kb)
        {
            int kc = Math.Min(kb, ctx->K1 - pc);
            bool first = pc == 0 && !args->AccumulateIntoC;
            bool last = pc + kc == k;
            float* packedA = scratch;
            if (ctx->SharedA != null)
            {
                packedA = SharedBlock(ctx, row0, pc, mc);
            }
            else
            {
                args->A.Pack(args->A.State, row0, rows, pc, kc, mr, packedA);
            }
            for (int p = p0; p < p1; p++)
            {
                byte* stored = args->W.Panel(p) + (nint)pc * nr * elementBytes;
                float* bPanel = (float*)stored;
                if (widen != null)
                {
                    // 16-bit weights: widened once per row block into a K-block x NR float panel, then reused by
                    // every MR-row microkernel call of the block.
                    widen((ushort*)stored, widenedB, (nint)kc * nr);
                    bPanel = widenedB;
                }
                int j0 = p * nr, cols = Math.Min(nr, args->W.N - j0);
                float* cBlock = c + j0;
                bool epilogue = last && (args->Bias != null || args->Residual != null);
                MultiplyTiles(variant, rows, cols, kc, packedA, bPanel, cBlock, ldc, first, epilogue ? args : null, row0, j0,
                    NextMicroPanel(args, p, p0, p1, pc, kb, ctx->K1));
            }
        }
    }

    /// <summary>
    /// Where the stored B micro-panel this row block multiplies after panel p's at K offset pc starts (the next
    /// panel's, else the first panel's at the next K block), for the microkernel to prefetch; null after the last.
    /// The microkernel requests kc x NR floats from there: for 16-bit weights that is the micro-panel and the same
    /// panel's next K block, which this block reads next. One thread, weights cold: a 2x4x4-latent 1280-channel
    /// implicit-GEMM convolution (M = 32, 59 MB of weights) 150 -> 190 GFLOP/s, 128x10240x1280 180-192 -> 202, 2x32x32
    /// 640-channel stored Winograd 24.6-25.1 -> 22.4 ms; large M (8192x320x320, 8192x2560x320, 8192x320x1280, F32 and
    /// F16) unchanged. UNet at 32x32 latents: F32 0.812-0.816 -> 0.769 s, F16 0.832-0.835 -> 0.804-0.812 s.
    /// </summary>
    private static float* NextMicroPanel(GemmArgs* args, int p, int p0, int p1, int pc, int kb, int k1)
    {
        nint bytes = (nint)args->W.PanelWidth * args->W.Format.ElementBytes();
        if (p + 1 < p1)
        {
            return (float*)(args->W.Panel(p + 1) + pc * bytes);
        }
        return pc + kb < k1 ? (float*)(args->W.Panel(p0) + (pc + kb) * bytes) : null;
    }

    /// <summary>
    /// C[rows, cols] (=|+=) A B for pre-packed A (MR-row k-major micro-panels, as <see cref="PackRowMajor"/> writes)
    /// and one float B micro-panel (kc x NR): for kernels that build their own B panels (streamed Winograd weights).
    /// Runs on the calling thread; edge tiles go through the per-thread scratch tile.
    /// </summary>
    public static void MultiplyPanel(GemmVariant variant, int rows, int cols, int kc, float* packedA, float* bPanel, float* c, int ldc, bool overwrite) =>
        MultiplyTiles(variant, rows, cols, kc, packedA, bPanel, c, ldc, overwrite, null, 0, 0, null);

    /// <summary>
    /// <see cref="MultiplyPanel"/> for the block at (row0, j0) of <paramref name="epilogue"/>'s C, adding its bias and
    /// residual when that is not null (the last K block). Full tiles add them in the microkernel's store; edge tiles
    /// and tiles that straddle two per-image biases (<see cref="GemmArgs.BiasRows"/>) take a separate pass.
    /// </summary>
    private static void MultiplyTiles(GemmVariant variant, int rows, int cols, int kc, float* packedA, float* bPanel, float* c, int ldc,
        bool overwrite, GemmArgs* epilogue, int row0, int j0, float* prefetch)
    {
        // Only the first call over the B micro-panel prefetches the next one: the calls after it would request the
        // same lines again.
        int mr = variant.Mr, nr = variant.Nr;
        float* tile = ScratchTile();
        for (int ir = 0; ir < rows; ir += mr)
        {
            int r = Math.Min(mr, rows - ir);
            float* cTile = c + (nint)ir * ldc;
            TileEpilogue fused = default;
            bool fusable = epilogue == null || FusedEpilogue(epilogue, row0 + ir, r, j0, &fused);
            if (r == mr && cols == nr && fusable)
            {
                variant.Microkernel(kc, packedA + ir * kc, bPanel, cTile, ldc, !overwrite, epilogue == null ? null : &fused, prefetch);
                prefetch = null;
            }
            else if (cols == nr && fusable && variant.EightRows != null)
            {
                // A short last micro-panel: at most two calls of the 8- or 4-row kernel over its rows.
                for (int done = 0; done < r; done += 8)
                {
                    int take = Math.Min(8, r - done);
                    TileEpilogue part = fused;
                    part.Residual = fused.Residual == null ? null : fused.Residual + (nint)done * fused.Ldr;
                    var kernel = take > 4 ? variant.EightRows : variant.FourRows;
                    kernel(take, kc, packedA + ir * kc + done, bPanel, cTile + (nint)done * ldc, ldc, !overwrite, epilogue == null ? null : &part, prefetch);
                    prefetch = null;
                }
            }
            else
            {
                variant.Microkernel(kc, packedA + ir * kc, bPanel, tile, nr, false, null, prefetch);
                prefetch = null;
                MergeTile(tile, nr, cTile, ldc, r, cols, overwrite);
                if (epilogue != null)
                {
                    ApplyEpilogue(epilogue, cTile, row0 + ir, r, j0, cols, fused.Residual);
                }
            }
        }
    }

    /// <summary>
    /// The bias and residual of rows [row, row + rows) at column j0 (the residual always, so a caller falling back to
    /// <see cref="ApplyEpilogue"/> can use it); false when the rows span two biases.
    /// </summary>
    private static bool FusedEpilogue(GemmArgs* args, int row, int rows, int j0, TileEpilogue* fused)
    {
        fused->Residual = args->Residual == null ? null : args->Residual + (nint)row * args->Ldr + j0;
        fused->Ldr = args->Ldr;
        fused->Bias = BiasOfRow(args, row, j0);
        int segment = BiasSegment(args);
        return row / segment == (row + rows - 1) / segment;
    }

    /// <summary>Rows that share one bias vector (<see cref="GemmArgs.BiasRows"/>; all of them when it is 0 or there is no bias).</summary>
    private static int BiasSegment(GemmArgs* args) => args->BiasRows > 0 && args->Bias != null ? args->BiasRows : int.MaxValue;

    /// <summary>The bias vector of output row <paramref name="row"/> from column j0; null without a bias.</summary>
    private static float* BiasOfRow(GemmArgs* args, int row, int j0) =>
        args->Bias == null ? null : args->Bias + (nint)(row / BiasSegment(args)) * args->W.N + j0;

    /// <summary>The plain row-major A packer: MR-row micro-panels, k-major, zero-padded.</summary>
    public static void PackRowMajor(float* data, int ld, int row0, int rows, int k0, int kc, int mr, float* packed)
    {
        float* a = data + (nint)row0 * ld + k0;
        for (int ir = 0; ir < rows; ir += mr)
        {
            float* panel = packed + ir * kc;
            int r = Math.Min(mr, rows - ir);
            int vectorized = mr == PanelTranspose.Rows ? PanelTranspose.Pack14Rows(a + (nint)ir * ld, ld, r, kc, panel) : 0;
            for (int rr = 0; rr < r; rr++)
            {
                float* src = a + (nint)(ir + rr) * ld;
                float* dst = panel + rr;
                for (int kk = vectorized; kk < kc; kk++)
                {
                    dst[kk * mr] = src[kk];
                }
            }
            ZeroPadRows(panel + vectorized * mr, r, mr, kc - vectorized);
        }
    }

    /// <summary>Zeroes rows [r, mr) of a k-major micro-panel so a short last panel computes zeros there.</summary>
    public static void ZeroPadRows(float* panel, int r, int mr, int kc)
    {
        for (int rr = r; rr < mr; rr++)
        {
            for (int kk = 0; kk < kc; kk++)
            {
                panel[kk * mr + rr] = 0;
            }
        }
    }

    private static void MergeTile(float* tile, int ldt, float* c, int ldc, int rows, int cols, bool overwrite)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++)
            {
                c[(nint)r * ldc + j] = overwrite ? tile[r * ldt + j] : c[(nint)r * ldc + j] + tile[r * ldt + j];
            }
        }
    }

    /// <summary>Bias and residual for rows [row0, row0 + rows) of columns [j0, j0 + cols), split where the bias changes.</summary>
    private static void ApplyEpilogue(GemmArgs* args, float* c, int row0, int rows, int j0, int cols, float* residual)
    {
        int segment = BiasSegment(args);
        for (int r = row0; r < row0 + rows;)
        {
            int end = (int)Math.Min(row0 + rows, ((long)r / segment + 1) * segment);
            Epilogue(c + (nint)(r - row0) * args->Ldc, args->Ldc, end - r, cols, BiasOfRow(args, r, j0),
                residual == null ? null : residual + (nint)(r - row0) * args->Ldr, args->Ldr);
            r = end;
        }
    }

    private static void Epilogue(float* c, int ldc, int rows, int cols, float* bias, float* residual, int ldr)
    {
        for (int r = 0; r < rows; r++)
        {
            float* row = c + (nint)r * ldc;
            float* res = residual == null ? null : residual + (nint)r * ldr;
            int j = 0;
            for (; j <= cols - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                Vector256<float> v = Vector256.Load(row + j);
                if (bias != null) v += Vector256.Load(bias + j);
                if (res != null) v += Vector256.Load(res + j);
                v.Store(row + j);
            }
            for (; j < cols; j++)
            {
                row[j] += (bias == null ? 0 : bias[j]) + (res == null ? 0 : res[j]);
            }
        }
    }

    /// <summary>
    /// Per-thread A block + edge tile + widened B micro-panel, allocated once per thread for the largest variant and
    /// kept.
    /// </summary>
    private static float* Scratch() =>
        ThreadScratch.Get(ref t_scratch, MaxABlockFloats + GemmMicrokernels.Mr512 * GemmMicrokernels.Nr512 + MaxLongKc * GemmMicrokernels.Nr512);

    /// <summary>The edge tile in the per-thread scratch (after the A block), followed by the widened B micro-panel.</summary>
    private static float* ScratchTile() => Scratch() + MaxABlockFloats;

    /// <summary>Floats of the largest packed A block: a short M's 40 micro-panels or a long one's 16, each as deep as its K block.</summary>
    private static readonly int MaxABlockFloats = GemmMicrokernels.Mr512 * Math.Max(
        MaxMicroPanelsPerBlock * MaxShortKc, WidenedMicroPanelsPerBlock * MaxLongKc);
}
