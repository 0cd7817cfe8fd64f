using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Gemm;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Convolution;

/// <summary>
/// 3x3 stride-1 padding-1 convolution by Winograd F(4x4, 3x3): per 4x4 output tile, 36 products replace 144
/// multiply-adds per (ci, co) pair, a 4x cut in GEMM work. Tiles go in blocks sized to a workspace budget, each
/// block in three parallel phases: input transform into V, 36 [tiles, Cin] matrices written straight as the GEMM's
/// A micro-panels (<see cref="ChannelGroupPanel"/>: a tile's 16 channels are one vector store, and no packing pass
/// reads V again); 36 GEMMs V_p U_p^T into M [36][tiles][Cout], split into (position, row block, column group) tasks
/// so that every transformed weight is streamed once per block whatever the channel count; output transform with
/// bias and residual fused.
/// Reference: Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016).
/// </summary>
public static unsafe partial class WinogradConv
{
    private const int Positions = WinogradWeights.Positions;

    /// <summary>Workspace cap (V + M), in floats: 16M floats = 64 MiB, whatever the image size.</summary>
    public const long MaxWorkspaceFloats = 16L << 20;

    private struct Context
    {
        public float* Input;
        public int InputStride;
        public float* Output;
        public float* Bias;
        public bool BiasPerImage;
        public float* Residual;
        public int ResidualStride;
        public ConvActivation Activation;
        public int OutputStride;
        public int Height;
        public int Width;
        public int InChannels;
        public int OutChannels;
        public int TilesX;
        public int TilesPerImage;
        public int BlockStart;
        public int BlockTiles;
        public int TilesPerTask;
        public float* V;
        public int VDepth;
        public nint VPositionFloats;
        public bool NonTemporalV;
        public float* M;
        public int LdM;
        public PackedWeightsView* Weights;
        public GemmVariant Variant;
        public int RowBlocks;
        public int Groups;
        public int PanelsPerGroup;

        // Streamed weights (WinogradConv.Streamed.cs): the 3x3 weights and their channel blocks.
        public PackedWeightsView Raw;
        public int ChannelBlocks;
        public int RowsPerTask;
        public int PositionRowsPerTask;
    }

    /// <summary>
    /// Tiles per block for a layer with stored weights. A block's V and M (36 (Cin + Cout) floats a tile) pass from
    /// phase to phase through the cache while they fit in <see cref="CachedWorkspaceFloats"/>, through memory beyond;
    /// and every block reads all transformed weights (36 Cin Cout floats) again. So blocks are cache-sized where that
    /// costs at most a tile's own V and M per tile in weight reads (few channels), else as large as the cap allows.
    /// </summary>
    public static int BlockTiles(int batch, int height, int width, int inChannels, int outChannels)
    {
        long tiles = (long)batch * ((height + 3) / 4) * ((width + 3) / 4);
        long perTile = Positions * (long)(ChannelGroupPanel.WholeGroups(inChannels) + outChannels);
        long cachedTiles = CachedWorkspaceFloats / perTile;
        bool cached = cachedTiles * (ChannelGroupPanel.WholeGroups(inChannels) + outChannels) >= (long)inChannels * outChannels;
        return BalancedBlockTiles(tiles, perTile, cached ? cachedTiles : MaxWorkspaceFloats / perTile);
    }

    /// <summary>
    /// V and M up to this many floats (16 MiB) stay in a server CPU's last-level cache between the phases. Beyond
    /// it the input transform writes V with streaming stores: a V that large is read back from memory anyway, and
    /// ordinary stores first read every line they fill (Zen 5, alternating, ms: 2x64x64 320->320 12.94 -> 12.29,
    /// 640->320 25.84 -> 23.92, 960->320 39.41 -> 36.11; 2x32x32 640->640 11.96 -> 11.16).
    /// Cache-sized blocks against blocks up to the cap, AVX2 Zen 3 (32 MiB L3), 2 threads, in-process pairs:
    /// 1x512x512 128 -> 128 channels 0.85-0.89x the time, 1x512x512 256 -> 256 0.90-0.94x, 1x256x256 256 -> 256
    /// 0.92-0.97x, 2x64x64 320 -> 320 0.95-1.00x; at 512 channels 1.02-1.06x (each block re-reads 38 MB of transformed
    /// weights), which the rule in <see cref="BlockTiles"/> avoids.
    /// </summary>
    private const long CachedWorkspaceFloats = 4L << 20;

    /// <summary>
    /// Tiles per block when each tile needs <paramref name="perTile"/> workspace floats and a block wants
    /// <paramref name="wanted"/> tiles: at least 128 tiles (one GEMM row block's worth), within the workspace cap, in
    /// the fewest equal blocks (a 512-tile layer in blocks of 485 + 27 ran its second block at half the rate of the
    /// first).
    /// </summary>
    private static int BalancedBlockTiles(long tiles, long perTile, long wanted)
    {
        long largest = Math.Max(Math.Min(wanted, MaxWorkspaceFloats / perTile), 128);
        long blocks = (tiles + largest - 1) / largest;
        return (int)((tiles + blocks - 1) / blocks);
    }

    /// <summary>Workspace floats <see cref="Run"/> needs for a layer (the caller's arena provides them).</summary>
    public static long WorkspaceFloats(int batch, int height, int width, int inChannels, int outChannels) =>
        BlockWorkspaceFloats(BlockTiles(batch, height, width, inChannels, outChannels), inChannels, outChannels);

    /// <summary>V (its micro-panels' rows past the last tile included) and M for blocks of up to this many tiles.</summary>
    private static long BlockWorkspaceFloats(int blockTiles, int inChannels, int outChannels) =>
        Positions * ((long)(blockTiles + MaxMr) * ChannelGroupPanel.WholeGroups(inChannels) + (long)blockTiles * outChannels);

    /// <summary>The most rows an A micro-panel has (MR of any variant): V leaves this many rows past a block's tiles.</summary>
    private const int MaxMr = 16;

    /// <summary>
    /// output[N, H, W, Cout] (pixel stride <paramref name="outputStride"/>) = conv3x3(input [N, H, W, Cin], pixel
    /// stride <paramref name="inputStride"/>, 0 for Cin) + bias + residual (pixel stride
    /// <paramref name="residualStride"/>; may be the output itself), then <paramref name="activation"/>; any H, W.
    /// With <paramref name="biasPerImage"/>, <paramref name="bias"/> holds one Cout vector per image (a ResNet's
    /// conv bias plus its time embedding). <paramref name="workspace"/> holds <see cref="WorkspaceFloats"/> floats.
    /// </summary>
    public static void Run(GemmVariant variant, int batch, int height, int width, float* input, WinogradWeights weights,
        float* bias, bool biasPerImage, float* residual, int residualStride, float* output, int outputStride, float* workspace,
        int inputStride = 0, ConvActivation activation = default)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Conv3x3,
            new Diagnostics.KernelShape("conv3x3 Winograd {0}x{1}x{2}, {3} to {4} channels", batch, height, width, weights.InChannels, weights.OutChannels));
        if (weights[0].PanelWidth != variant.Nr)
        {
            throw new ArgumentException($"weights packed for NR={weights[0].PanelWidth}, the {variant.Name} kernel uses NR={variant.Nr}", nameof(weights));
        }
        int blockTiles = BlockTiles(batch, height, width, weights.InChannels, weights.OutChannels);
        var ctx = new Context { Weights = weights.Views, Activation = activation };
        RunBlocks(&ctx, variant, batch, height, width, weights.InChannels, weights.OutChannels, input, inputStride, bias, biasPerImage,
            residual, residualStride, output, outputStride, workspace, blockTiles, &StoredGemmPhase);
    }

    /// <summary>
    /// Fills the context fields every variant shares (the caller has set its weights), lays out the workspace (V, then
    /// M), then runs the tiles in blocks of <paramref name="blockTiles"/>: input transform, the variant's GEMM phase,
    /// output transform.
    /// </summary>
    private static void RunBlocks(Context* ctx, GemmVariant variant, int batch, int height, int width, int inChannels, int outChannels,
        float* input, int inputStride, float* bias, bool biasPerImage, float* residual, int residualStride, float* output, int outputStride,
        float* workspace, int blockTiles, delegate*<Context*, void> gemmPhase)
    {
        if (variant.Mr > MaxMr)
        {
            throw new ArgumentException($"the {variant.Name} kernel's {variant.Mr}-row micro-panels exceed the {MaxMr} rows V leaves", nameof(variant));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(outputStride, outChannels);
        inputStride = inputStride == 0 ? inChannels : inputStride;
        ArgumentOutOfRangeException.ThrowIfLessThan(inputStride, inChannels);
        Diagnostics.FlopCounter.Add(2L * batch * height * width * outChannels * 9 * inChannels);
        int tilesY = (height + 3) / 4, tilesX = (width + 3) / 4;
        int tileCount = batch * tilesY * tilesX;
        ctx->Input = input;
        ctx->InputStride = inputStride;
        ctx->Output = output;
        ctx->Bias = bias;
        ctx->BiasPerImage = biasPerImage;
        ctx->Residual = residual;
        ctx->ResidualStride = residualStride;
        ctx->OutputStride = outputStride;
        ctx->Height = height;
        ctx->Width = width;
        ctx->InChannels = inChannels;
        ctx->OutChannels = outChannels;
        ctx->LdM = outChannels;
        ctx->Variant = variant;
        ctx->TilesX = tilesX;
        ctx->TilesPerImage = tilesY * tilesX;
        ctx->VDepth = ChannelGroupPanel.WholeGroups(inChannels);
        ctx->V = workspace;
        ctx->M = workspace + Positions * (long)(blockTiles + MaxMr) * ctx->VDepth;
        int threads = WorkerPool.Shared.ThreadCount;
        for (int start = 0; start < tileCount; start += blockTiles)
        {
            ctx->BlockStart = start;
            ctx->BlockTiles = Math.Min(blockTiles, tileCount - start);
            ctx->VPositionFloats = (nint)((ctx->BlockTiles + variant.Mr - 1) / variant.Mr * variant.Mr) * ctx->VDepth;
            ctx->NonTemporalV = (long)Positions * ctx->BlockTiles * (inChannels + outChannels) > CachedWorkspaceFloats
                && inChannels % 16 == 0 && ((nint)ctx->V & 63) == 0;
            int transformTasks = Math.Min(ctx->BlockTiles, threads * 8);
            ctx->TilesPerTask = (ctx->BlockTiles + transformTasks - 1) / transformTasks;
            transformTasks = (ctx->BlockTiles + ctx->TilesPerTask - 1) / ctx->TilesPerTask;
            WorkerPool.Shared.Run(&InputTask, ctx, transformTasks);
            gemmPhase(ctx);
            WorkerPool.Shared.Run(&OutputTask, ctx, transformTasks);
        }
    }

    /// <summary>
    /// 36 GEMMs V_p U_p^T as (position, row block, column group) tasks. Up to 40 micro-panels of tiles (560; a
    /// 64x64-latent batch-2 layer's 512) are one row block, as <see cref="GemmKernels.Run"/> splits a short M: in
    /// fixed 112-row blocks, the 128 tiles of a 32x32-latent batch-2 layer were 112 + 16 rows, and the 16-row block
    /// streamed every transformed weight a second time (a 2x32x32x640 layer's GEMM phase ran 20-30% slower than the
    /// same 36 products as single row blocks).
    /// </summary>
    private static void StoredGemmPhase(Context* ctx)
    {
        int threads = WorkerPool.Shared.ThreadCount;
        int panels = ctx->Weights[0].Panels;
        int rowBlock = GemmKernels.RowBlock(ctx->Variant, ctx->BlockTiles);
        ctx->RowBlocks = (ctx->BlockTiles + rowBlock - 1) / rowBlock;
        int perPosition = Math.Max(1, (threads * 4 + Positions - 1) / Positions / ctx->RowBlocks);
        ctx->Groups = Math.Min(perPosition, panels);
        ctx->PanelsPerGroup = (panels + ctx->Groups - 1) / ctx->Groups;
        ctx->Groups = (panels + ctx->PanelsPerGroup - 1) / ctx->PanelsPerGroup;
        WorkerPool.Shared.Run(&GemmTask, ctx, Positions * ctx->RowBlocks * ctx->Groups);
    }

    private static void InputTask(void* state, int index)
    {
        Context* ctx = (Context*)state;
        int first = index * ctx->TilesPerTask;
        int last = Math.Min(first + ctx->TilesPerTask, ctx->BlockTiles);
        for (int t = first; t < last; t++)
        {
            (int image, int y0, int x0) = TileOrigin(ctx, ctx->BlockStart + t);
            float* src = ctx->Input + (nint)image * ctx->Height * ctx->Width * ctx->InputStride;
            WinogradTransforms.InputTile(src, ctx->Height, ctx->Width, ctx->InChannels, ctx->InputStride, y0 - 1, x0 - 1,
                TileRow(ctx, t), ctx->VPositionFloats, (nint)ctx->Variant.Mr * ChannelGroupPanel.Group, ctx->NonTemporalV);
        }
        if (last == ctx->BlockTiles)
        {
            ZeroRowsPastTheTiles(ctx);
        }
        if (ctx->NonTemporalV && Sse.IsSupported)
        {
            Sse.StoreFence(); // streaming stores are weakly ordered: V must be complete before the GEMM tasks read it
        }
    }

    /// <summary>Where tile t's first channel group sits in V's first position: row t % MR of micro-panel t / MR.</summary>
    private static float* TileRow(Context* ctx, int t)
    {
        int mr = ctx->Variant.Mr;
        return ctx->V + (nint)(t / mr) * mr * ctx->VDepth + (t % mr) * ChannelGroupPanel.Group;
    }

    /// <summary>
    /// Zeroes the rows of each position's last micro-panel past the block's tiles: a short panel's full-height
    /// microkernel call reads them (and drops their results), and workspace left over from another layer may hold
    /// anything.
    /// </summary>
    private static void ZeroRowsPastTheTiles(Context* ctx)
    {
        int padded = (int)(ctx->VPositionFloats / ctx->VDepth);
        int groups = ctx->VDepth / ChannelGroupPanel.Group;
        nint groupStride = (nint)ctx->Variant.Mr * ChannelGroupPanel.Group;
        for (int t = ctx->BlockTiles; t < padded; t++)
        {
            for (int p = 0; p < Positions; p++)
            {
                float* row = TileRow(ctx, t) + p * ctx->VPositionFloats;
                for (int g = 0; g < groups; g++)
                {
                    new Span<float>(row + g * groupStride, ChannelGroupPanel.Group).Clear();
                }
            }
        }
    }

    private static void GemmTask(void* state, int index)
    {
        Context* ctx = (Context*)state;
        int group = index % ctx->Groups;
        int rest = index / ctx->Groups;
        int rowBlock = rest % ctx->RowBlocks;
        int p = rest / ctx->RowBlocks;
        int rowBlockSize = GemmKernels.RowBlock(ctx->Variant, ctx->BlockTiles);
        var args = new GemmArgs
        {
            M = ctx->BlockTiles,
            A = APacker.ChannelGroups(ctx->V + p * ctx->VPositionFloats, ctx->VDepth),
            W = ctx->Weights[p],
            C = ctx->M + (nint)p * ctx->BlockTiles * ctx->LdM,
            Ldc = ctx->LdM,
        };
        int p0 = group * ctx->PanelsPerGroup;
        GemmKernels.RunSerial(ctx->Variant, ref args, rowBlock * rowBlockSize, rowBlockSize, p0, p0 + ctx->PanelsPerGroup);
    }

    private static void OutputTask(void* state, int index)
    {
        Context* ctx = (Context*)state;
        int first = index * ctx->TilesPerTask;
        int last = Math.Min(first + ctx->TilesPerTask, ctx->BlockTiles);
        for (int t = first; t < last; t++)
        {
            (int image, int y0, int x0) = TileOrigin(ctx, ctx->BlockStart + t);
            nint imageOffset = (nint)image * ctx->Height * ctx->Width;
            WinogradTransforms.OutputTile(ctx->M + (nint)t * ctx->LdM, (nint)ctx->BlockTiles * ctx->LdM, ctx->OutChannels,
                ctx->Bias == null ? null : ctx->BiasPerImage ? ctx->Bias + (nint)image * ctx->OutChannels : ctx->Bias,
                ctx->Residual == null ? null : ctx->Residual + imageOffset * ctx->ResidualStride, ctx->ResidualStride,
                ctx->Output + imageOffset * ctx->OutputStride, ctx->OutputStride,
                ctx->Height, ctx->Width, y0, x0, ctx->Activation);
        }
    }

    private static (int Image, int Y0, int X0) TileOrigin(Context* ctx, int tile)
    {
        int image = tile / ctx->TilesPerImage;
        int within = tile - image * ctx->TilesPerImage;
        int ty = within / ctx->TilesX;
        return (image, ty * 4, (within - ty * ctx->TilesX) * 4);
    }
}
