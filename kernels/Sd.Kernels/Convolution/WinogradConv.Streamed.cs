using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Convert;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Gemm;
using Sd.Kernels.Memory;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Convolution;

/// <summary>
/// Winograd F(4x4, 3x3) with streamed weights: instead of storing U = G g G^T (36 float32 matrices, 4x the memory of
/// float32 3x3 weights and 8x of F16 ones), each GEMM task transforms one NR-wide panel of the implicit-GEMM packed
/// weights (<see cref="ImplicitGemmConv.PackWeights"/>, any <see cref="WeightFormat"/>) for a block of input
/// channels into an L2-resident buffer of the 36 positions' B micro-panels, and multiplies V's micro-panels by them.
/// The transform costs about 80 vector operations and 36 stores per (input channel, vector of output channels)
/// against 36 multiply-adds per tile there, so it pays from 8 tiles on; the weights stay as they were loaded. U is
/// computed in float (stored Winograd weights round it once from double): results differ from <see cref="Run"/> by a
/// few ulp.
/// </summary>
public static unsafe partial class WinogradConv
{
    /// <summary>Input channels per streamed weight block: 36 x 128 x NR 32 floats = 576 KiB of U, inside a 1 MiB L2.</summary>
    public const int StreamChannelBlock = 128;

    /// <summary>
    /// Floats between the positions' U panels beyond kc x NR: one cache line, so the 36 panels written together do not
    /// all map to the same L1 set (kc x NR x 4 bytes is a multiple of 4 KiB).
    /// </summary>
    private const int PositionPad = 16;

    [ThreadStatic]
    private static ThreadScratch? t_streamed;

    private static int ChannelBlocks(int inChannels) => (inChannels + StreamChannelBlock - 1) / StreamChannelBlock;

    /// <summary>Tiles per block of a streamed layer: V and M within the workspace cap.</summary>
    private static int StreamedBlockTiles(int batch, int height, int width, int inChannels, int outChannels)
    {
        long tiles = (long)batch * ((height + 3) / 4) * ((width + 3) / 4);
        long perTile = Positions * ((long)ChannelGroupPanel.WholeGroups(inChannels) + outChannels);
        return BalancedBlockTiles(tiles, perTile, MaxWorkspaceFloats / perTile);
    }

    /// <summary>Workspace floats <see cref="RunStreamed"/> needs for a layer.</summary>
    public static long StreamedWorkspaceFloats(int batch, int height, int width, int inChannels, int outChannels) =>
        BlockWorkspaceFloats(StreamedBlockTiles(batch, height, width, inChannels, outChannels), inChannels, outChannels);

    /// <summary>
    /// <see cref="Run"/> with the 3x3 weights as packed for implicit GEMM ([Cout, 9 x Cin], k = tap x Cin + ci) and
    /// transformed on the fly; the workspace holds <see cref="StreamedWorkspaceFloats"/> floats.
    /// </summary>
    public static void RunStreamed(GemmVariant variant, int batch, int height, int width, float* input, PackedWeights weights,
        float* bias, bool biasPerImage, float* residual, int residualStride, float* output, int outputStride, float* workspace,
        int inputStride = 0, ConvActivation activation = default)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Conv3x3,
            new Diagnostics.KernelShape("conv3x3 Winograd (weights transformed per call) {0}x{1}x{2}, {3} to {4} channels", batch, height, width, weights.K / 9, weights.N));
        if (weights.PanelWidth != variant.Nr || weights.K % 9 != 0 || variant.Nr % 8 != 0)
        {
            throw new ArgumentException($"weights [{weights.N}, {weights.K}] packed for NR={weights.PanelWidth} are not 3x3 weights for the {variant.Name} kernel", nameof(weights));
        }
        int inChannels = weights.K / 9, outChannels = weights.N;
        int blockTiles = StreamedBlockTiles(batch, height, width, inChannels, outChannels);
        var ctx = new Context { Raw = new PackedWeightsView(weights), ChannelBlocks = ChannelBlocks(inChannels), Activation = activation };
        RunBlocks(&ctx, variant, batch, height, width, inChannels, outChannels, input, inputStride, bias, biasPerImage,
            residual, residualStride, output, outputStride, workspace, blockTiles, &StreamedGemmPhase);
    }

    /// <summary>
    /// From this many tiles per block, a GEMM task takes one row of positions (6 of 36) and
    /// <see cref="PositionRowPanels"/> weight panels instead of all 36 positions and one panel. One panel per task
    /// reads the whole packed V once per panel: from L3 when it is small (a 16x16-latent layer's 32 tiles x 1280
    /// channels, 5.9 MB), from memory when it is not (128 tiles x 1280 channels, 23.6 MB, read 40 times). A position
    /// row re-transforms its panels' weights for each of the 6 rows, but reads each block of V once per 4 panels and
    /// keeps its C (6 positions x rows x 128 columns) in L2 across the channel blocks. Two threads, weights flushed,
    /// alternating runs, 2x32x32 layers, all positions and one panel -> one position row and 4 panels (ms): 640->640
    /// 15.4-15.7 -> 13.9-14.1, 1280->640 36.0-36.9 -> 28.4-30.2, 1920->640 56.7 -> 42.8-43.3, 1280->1280 70.5-71.5 ->
    /// 54.0-55.5 (stored weights: 42.6). At 32 tiles and fewer the 6-fold transform costs more than the reads save
    /// (2x16x16 1280->1280 16-17 -> 18 ms, 2x8x8 1280->1280 5-7 -> 10 ms).
    /// </summary>
    private const int PositionRowMinTiles = 64;

    /// <summary>Whether a block of this many tiles runs position-row tasks (see <see cref="PositionRowMinTiles"/>).</summary>
    private static bool TakesPositionRows(int blockTiles) => blockTiles >= PositionRowMinTiles;

    /// <summary>
    /// Weight panels per position-row task: its U (6 positions x 128 channels x 128 columns) is 384 KiB, and its 24
    /// position panels fit the per-thread U scratch, sized for one panel's 36.
    /// </summary>
    private const int PositionRowPanels = 4;

    /// <summary>Rows per position-row task, so that its C stays 384 KiB however many tiles a block has.</summary>
    private const int PositionRowMaxRows = 128;

    /// <summary>The 6 x 6 transformed tile's rows: a position-row task's 6 positions are one of them.</summary>
    private const int PositionRows = 6;

    /// <summary>
    /// (panel group, row range, position rows) tasks, each multiplying its positions' V by its panels' weights
    /// transformed on the fly (see <see cref="PositionRowMinTiles"/>).
    /// </summary>
    private static void StreamedGemmPhase(Context* ctx)
    {
        int mr = ctx->Variant.Mr;
        bool positionRow = TakesPositionRows(ctx->BlockTiles);
        int rowRanges = positionRow ? (ctx->BlockTiles + PositionRowMaxRows - 1) / PositionRowMaxRows : 1;
        ctx->RowsPerTask = ((ctx->BlockTiles + rowRanges - 1) / rowRanges + mr - 1) / mr * mr;
        ctx->RowBlocks = (ctx->BlockTiles + ctx->RowsPerTask - 1) / ctx->RowsPerTask;
        ctx->PanelsPerGroup = Math.Min(positionRow ? PositionRowPanels : 1, ctx->Raw.Panels);
        ctx->Groups = (ctx->Raw.Panels + ctx->PanelsPerGroup - 1) / ctx->PanelsPerGroup;
        ctx->PositionRowsPerTask = positionRow ? 1 : PositionRows;
        WorkerPool.Shared.Run(&StreamedGemmTask, ctx, ctx->Groups * ctx->RowBlocks * (PositionRows / ctx->PositionRowsPerTask));
    }

    /// <summary>
    /// One (panel group, row range, position rows). Consecutive tasks share a panel group, so the threads read its
    /// weights from memory about once between them. Per channel block: transform the group's panels for the task's
    /// positions, then multiply every position by every panel.
    /// </summary>
    private static void StreamedGemmTask(void* state, int index)
    {
        Context* ctx = (Context*)state;
        GemmVariant variant = ctx->Variant;
        int nr = variant.Nr;
        int rowCount = ctx->PositionRowsPerTask, positions = rowCount * PositionRows;
        int firstRow = index % (PositionRows / rowCount) * rowCount;
        int rest = index / (PositionRows / rowCount);
        int row0 = rest % ctx->RowBlocks * ctx->RowsPerTask;
        int p0 = rest / ctx->RowBlocks * ctx->PanelsPerGroup;
        int p1 = Math.Min(p0 + ctx->PanelsPerGroup, ctx->Raw.Panels);
        int rows = Math.Min(ctx->RowsPerTask, ctx->BlockTiles - row0);
        float* u = StreamScratch();
        byte** taps = stackalloc byte*[9];
        byte** nextTaps = stackalloc byte*[9];
        for (int block = 0; block < ctx->ChannelBlocks; block++)
        {
            int c0 = block * StreamChannelBlock;
            int kc = Math.Min(StreamChannelBlock, ctx->InChannels - c0);
            nint ps = PositionStride(kc, nr);
            for (int panel = p0; panel < p1; panel++)
            {
                FindTaps(ctx, panel, c0, taps);
                TransformWeights(taps, ctx->Raw.Format, kc, nr, firstRow, rowCount, u + (panel - p0) * positions * ps, ps);
            }
            nint prefetchLines = 0;
            if (Sse.IsSupported && ctx->BlockTiles <= PrefetchMaxTiles && block + 1 < ctx->ChannelBlocks)
            {
                FindTaps(ctx, p0, c0 + kc, nextTaps);
                prefetchLines = (nint)Math.Min(StreamChannelBlock, ctx->InChannels - c0 - kc) * nr * ctx->Raw.Format.ElementBytes() / 64;
            }
            for (int j = 0; j < positions; j++)
            {
                PrefetchTaps(nextTaps, prefetchLines, j, positions);
                int p = firstRow * PositionRows + j;
                // The channel block's first group in the row range's first micro-panel: c0 / 16 groups of MR x 16 floats.
                float* a = ctx->V + p * ctx->VPositionFloats + (nint)row0 * ctx->VDepth + (nint)c0 * variant.Mr;
                float* c = ctx->M + ((nint)p * ctx->BlockTiles + row0) * ctx->LdM;
                for (int panel = p0; panel < p1; panel++)
                {
                    int col0 = panel * nr;
                    GemmKernels.MultiplyPanel(variant, rows, Math.Min(nr, ctx->OutChannels - col0), kc, a, ctx->VDepth,
                        u + ((panel - p0) * positions + j) * ps, c + col0, ctx->LdM, overwrite: block == 0);
                }
            }
        }
    }

    /// <summary>Points <paramref name="taps"/>[t] at tap t's kc x NR weights for channels from c0 of a weight panel.</summary>
    private static void FindTaps(Context* ctx, int panel, int c0, byte** taps)
    {
        nint elementBytes = ctx->Raw.Format.ElementBytes();
        byte* stored = ctx->Raw.Panel(panel);
        for (int t = 0; t < 9; t++)
        {
            taps[t] = stored + ((nint)t * ctx->InChannels + c0) * ctx->Raw.PanelWidth * elementBytes;
        }
    }

    /// <summary>
    /// Blocks of at most this many tiles request each channel block's weights while multiplying the one before
    /// (<see cref="PrefetchTaps"/>): with 8 tiles (8x8 latents) a product is one short micro-tile per position and
    /// the transform waited for memory (2x8x8 1280->1280, alternating: F32 6.67 -> 6.41 ms, 2560->1280 14.35 -> 13.59
    /// ms, F16 7.31 -> 6.59 ms); at 32 tiles the requests cost 1-3% (1280->1280 16.30 -> 16.54 ms, 2560->1280 38.95
    /// -> 40.21 ms), and position-row tasks ran 2-3% slower with them.
    /// </summary>
    private const int PrefetchMaxTiles = 16;

    /// <summary>
    /// Requests slice <paramref name="slice"/> of <paramref name="slices"/> of the 9 taps' first
    /// <paramref name="lines"/> cache lines into L2 (none when lines is 0), for a task that transforms all 36 positions
    /// of one panel to spread the next channel block's weights over its 36 products.
    /// </summary>
    private static void PrefetchTaps(byte** taps, nint lines, int slice, int slices)
    {
        nint begin = lines * slice / slices, end = lines * (slice + 1) / slices;
        for (int t = 0; t < 9; t++)
        {
            for (nint line = begin; line < end; line++)
            {
                Sse.Prefetch1(taps[t] + line * 64);
            }
        }
    }

    /// <summary>
    /// Rows [first, first + count) of U = G g G^T (positions 6 first .. 6 (first + count) - 1, row-major 6 x 6) for kc
    /// input channels x NR output channels: taps[t][k * nr + j] is g[tap t] of (channel k, output j), in
    /// <paramref name="format"/>; u[i * stride + k * nr + j] receives the i-th of those positions. One vector of output
    /// channels at a time, G g in registers (a version that kept it in stack arrays, 8 channels per vector, spent a
    /// third of a 16x16-latent layer's time here). 16-bit weights are widened as they are loaded (no widened copy, half
    /// the bytes read). Widening each block's taps into a buffer first, or a position-row layer's weights once into
    /// the GEMM's float32 buffer, ran F16 layers 4-8% behind float32; now they run ahead (2x32x32 F16, alternating,
    /// ms: 640->640 14.93 -> 13.93, 960->640 22.61 -> 21.22; 2x8x8 1280->1280 5.9 -> 4.9-5.0 against 5.5-5.8 for
    /// float32).
    /// </summary>
    private static void TransformWeights(byte** taps, WeightFormat format, int kc, int nr, int first, int count, float* u, nint stride)
    {
        if (Vector512.IsHardwareAccelerated && nr % 16 == 0)
        {
            TransformWeights<Vector512<float>, F32x16, F32Weights, SixteenBitWeights<FiniteF16Widen>, SixteenBitWeights<BF16Widen>>(taps, format, kc, nr, first, count, u, stride);
        }
        else
        {
            TransformWeights<Vector256<float>, F32x8, F32Weights, SixteenBitWeights<FiniteF16Widen>, SixteenBitWeights<BF16Widen>>(taps, format, kc, nr, first, count, u, stride);
        }
    }

    /// <summary>The transform for one weight format (each load struct serves both vector widths).</summary>
    private static void TransformWeights<TVec, V, TF32, TF16, TBF16>(byte** taps, WeightFormat format, int kc, int nr, int first, int count, float* u, nint stride)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
        where TF32 : struct, IWeightLoad<TVec>
        where TF16 : struct, IWeightLoad<TVec>
        where TBF16 : struct, IWeightLoad<TVec>
    {
        switch (format)
        {
            case WeightFormat.F32:
                TransformWeights<TVec, V, TF32>(taps, kc, nr, first, count, u, stride);
                break;
            case WeightFormat.F16:
                TransformWeights<TVec, V, TF16>(taps, kc, nr, first, count, u, stride);
                break;
            default:
                TransformWeights<TVec, V, TBF16>(taps, kc, nr, first, count, u, stride);
                break;
        }
    }

    private static void TransformWeights<TVec, V, TLoad>(byte** taps, int kc, int nr, int first, int count, float* u, nint stride)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
        where TLoad : struct, IWeightLoad<TVec>
    {
        if (count == PositionRows)
        {
            TransformAllRows<TVec, V, TLoad>(taps, kc, nr, u, stride);
            return;
        }
        for (int row = first; row < first + count; row++)
        {
            TransformRow<TVec, V, TLoad>(taps, kc, nr, row, u + (row - first) * PositionRows * stride, stride);
        }
    }

    [SkipLocalsInit]
    private static void TransformAllRows<TVec, V, TLoad>(byte** taps, int kc, int nr, float* u, nint ps)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
        where TLoad : struct, IWeightLoad<TVec>
    {
        byte* g0 = taps[0], g1 = taps[1], g2 = taps[2], g3 = taps[3], g4 = taps[4], g5 = taps[5], g6 = taps[6], g7 = taps[7], g8 = taps[8];
        for (nint at = 0; at < (nint)kc * nr; at += V.Count)
        {
            // G g: column c of the 3x3 kernel (taps c, 3 + c, 6 + c) -> rows 0..5 of column c.
            Transform3<TVec, V>(TLoad.Load(g0, at), TLoad.Load(g3, at), TLoad.Load(g6, at), out TVec r0c0, out TVec r1c0, out TVec r2c0, out TVec r3c0, out TVec r4c0, out TVec r5c0);
            Transform3<TVec, V>(TLoad.Load(g1, at), TLoad.Load(g4, at), TLoad.Load(g7, at), out TVec r0c1, out TVec r1c1, out TVec r2c1, out TVec r3c1, out TVec r4c1, out TVec r5c1);
            Transform3<TVec, V>(TLoad.Load(g2, at), TLoad.Load(g5, at), TLoad.Load(g8, at), out TVec r0c2, out TVec r1c2, out TVec r2c2, out TVec r3c2, out TVec r4c2, out TVec r5c2);
            // (G g) G^T: row i -> positions 6i .. 6i + 5.
            float* dst = u + at;
            StoreTransformedRow<TVec, V>(r0c0, r0c1, r0c2, dst, ps);
            StoreTransformedRow<TVec, V>(r1c0, r1c1, r1c2, dst + 6 * ps, ps);
            StoreTransformedRow<TVec, V>(r2c0, r2c1, r2c2, dst + 12 * ps, ps);
            StoreTransformedRow<TVec, V>(r3c0, r3c1, r3c2, dst + 18 * ps, ps);
            StoreTransformedRow<TVec, V>(r4c0, r4c1, r4c2, dst + 24 * ps, ps);
            StoreTransformedRow<TVec, V>(r5c0, r5c1, r5c2, dst + 30 * ps, ps);
        }
    }

    /// <summary>G (6 x 3) row-major, the float form of WinogradWeights' transform, for one row at a time.</summary>
    private static ReadOnlySpan<float> G =>
    [
        1f / 4, 0, 0,
        -1f / 6, -1f / 6, -1f / 6,
        -1f / 6, 1f / 6, -1f / 6,
        1f / 24, 1f / 12, 1f / 6,
        1f / 24, -1f / 12, 1f / 6,
        0, 0, 1,
    ];

    /// <summary>
    /// One row of U: row <paramref name="row"/> of G g is G's row times each kernel column; its 6 positions are G
    /// times that 3-vector. Fused multiply-adds, so it may differ from <see cref="TransformAllRows"/> in the last bit.
    /// </summary>
    [SkipLocalsInit]
    private static void TransformRow<TVec, V, TLoad>(byte** taps, int kc, int nr, int row, float* u, nint stride)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
        where TLoad : struct, IWeightLoad<TVec>
    {
        TVec top = V.Create(G[3 * row]), middle = V.Create(G[3 * row + 1]), bottom = V.Create(G[3 * row + 2]);
        byte* g0 = taps[0], g1 = taps[1], g2 = taps[2], g3 = taps[3], g4 = taps[4], g5 = taps[5], g6 = taps[6], g7 = taps[7], g8 = taps[8];
        for (nint at = 0; at < (nint)kc * nr; at += V.Count)
        {
            // Column c of the kernel is taps c, 3 + c, 6 + c.
            TVec c0 = V.FusedMultiplyAdd(TLoad.Load(g6, at), bottom, V.FusedMultiplyAdd(TLoad.Load(g3, at), middle, V.Multiply(TLoad.Load(g0, at), top)));
            TVec c1 = V.FusedMultiplyAdd(TLoad.Load(g7, at), bottom, V.FusedMultiplyAdd(TLoad.Load(g4, at), middle, V.Multiply(TLoad.Load(g1, at), top)));
            TVec c2 = V.FusedMultiplyAdd(TLoad.Load(g8, at), bottom, V.FusedMultiplyAdd(TLoad.Load(g5, at), middle, V.Multiply(TLoad.Load(g2, at), top)));
            StoreTransformedRow<TVec, V>(c0, c1, c2, u + at, stride);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTransformedRow<TVec, V>(TVec a, TVec b, TVec c, float* dst, nint stride)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        Transform3<TVec, V>(a, b, c, out TVec o0, out TVec o1, out TVec o2, out TVec o3, out TVec o4, out TVec o5);
        V.Store(o0, dst);
        V.Store(o1, dst + stride);
        V.Store(o2, dst + 2 * stride);
        V.Store(o3, dst + 3 * stride);
        V.Store(o4, dst + 4 * stride);
        V.Store(o5, dst + 5 * stride);
    }

    private static nint PositionStride(int kc, int nr) => (nint)kc * nr + PositionPad;

    /// <summary>
    /// The 6 outputs of G (6x3) applied to a 3-vector (the float form of WinogradWeights' transform; -(x) / 6 is
    /// written x * (-1/6), the same value).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transform3<TVec, V>(TVec a, TVec b, TVec c, out TVec o0, out TVec o1, out TVec o2, out TVec o3, out TVec o4, out TVec o5)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        TVec sum = V.Add(a, c);
        TVec negativeSixth = V.Create(-1f / 6);
        TVec outer = V.Add(V.Multiply(a, V.Create(1f / 24)), V.Multiply(c, V.Create(1f / 6)));
        TVec middle = V.Multiply(b, V.Create(1f / 12));
        o0 = V.Multiply(a, V.Create(0.25f));
        o1 = V.Multiply(V.Add(sum, b), negativeSixth);
        o2 = V.Multiply(V.Subtract(sum, b), negativeSixth);
        o3 = V.Add(outer, middle);
        o4 = V.Subtract(outer, middle);
        o5 = c;
    }

    /// <summary>Per-thread U blocks (36 positions), for the widest panel.</summary>
    private static float* StreamScratch() =>
        ThreadScratch.Get(ref t_streamed, Positions * (StreamChannelBlock * GemmMicrokernels.Nr512 + PositionPad));
}
