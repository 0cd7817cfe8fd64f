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
        else if (groups > 1 && call.A.Grouped == null && (long)rowBlocks * mc * KBlock(variant.Mr, call.M, call.W.K) <= MaxSharedAFloats)
        {
            RunWithSharedA(&context, rowBlocks * mc, tasks);
        }
        else
        {
            WorkerPool.Shared.Run(&RunTask, &context, tasks);
        }
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
        bool grouped = args->A.Grouped != null;
        TileKernels kernels = grouped ? variant.ChannelGroups : variant.KMajor;
        int kb = KBlock(mr, args->M, k);
        if (grouped)
        {
            kb = ChannelGroupPanel.WholeGroups(kb); // K blocks start on a group
        }
        for (int pc = ctx->K0; pc < ctx->K1; pc += kb)
        {
            int kc = Math.Min(kb, ctx->K1 - pc);
            bool first = pc == 0 && !args->AccumulateIntoC;
            bool last = pc + kc == k;
            float* packedA = scratch;
            int depth = kc;
            if (grouped)
            {
                // Group g of a micro-panel starts at g x MR x 16 = pc x MR floats.
                packedA = args->A.Grouped + (nint)row0 * args->A.GroupedDepth + (nint)pc * mr;
                depth = args->A.GroupedDepth;
            }
            else if (ctx->SharedA != null)
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
                MultiplyTiles(variant, kernels, rows, cols, kc, packedA, depth, bPanel, cBlock, ldc, first, epilogue ? args : null, row0, j0,
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
