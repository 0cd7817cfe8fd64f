using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Gemm;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Convolution;

/// <summary>
/// Winograd F(4x4, 3x3) with streamed weights: instead of storing U = G g G^T (36 float32 matrices, 4x the memory of
/// float32 3x3 weights and 8x of F16 ones), each GEMM task transforms one NR-wide panel of the implicit-GEMM packed
/// weights (<see cref="ImplicitGemmConv.PackWeights"/>, any <see cref="WeightFormat"/>) for a block of input
/// channels into an L2-resident buffer of the 36 positions' B micro-panels, and multiplies the pre-packed transformed
/// input by them. The transform costs about 150 vector operations per (input channel, 8 output channels) against 36
/// multiply-adds per tile there, so it pays wherever there are a few dozen tiles; the weights stay as they were
/// loaded. U is computed in float (stored Winograd weights round it once from double): results differ from
/// <see cref="Run"/> by a few ulp.
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

    /// <summary>Rows the pre-packed V leaves per position beyond the tiles: room to pad them to any MR.</summary>
    private const int MaxMr = 16;

    [ThreadStatic]
    private static float* t_streamed;

    private static int ChannelBlocks(int inChannels) => (inChannels + StreamChannelBlock - 1) / StreamChannelBlock;

    /// <summary>Tiles per block of a streamed layer: V, packed V and M within the workspace cap.</summary>
    private static int StreamedBlockTiles(int batch, int height, int width, int inChannels, int outChannels)
    {
        long tiles = (long)batch * ((height + 3) / 4) * ((width + 3) / 4);
        long perTile = Positions * ((long)inChannels + outChannels + (long)ChannelBlocks(inChannels) * StreamChannelBlock);
        return (int)Math.Min(tiles, Math.Max(MaxWorkspaceFloats / perTile, 128));
    }

    /// <summary>Workspace floats <see cref="RunStreamed"/> needs for a layer.</summary>
    public static long StreamedWorkspaceFloats(int batch, int height, int width, int inChannels, int outChannels)
    {
        long blockTiles = StreamedBlockTiles(batch, height, width, inChannels, outChannels);
        return Positions * (blockTiles * (inChannels + outChannels) + (blockTiles + MaxMr) * ChannelBlocks(inChannels) * StreamChannelBlock);
    }

    /// <summary>
    /// <see cref="Run"/> with the 3x3 weights as packed for implicit GEMM ([Cout, 9 x Cin], k = tap x Cin + ci) and
    /// transformed on the fly; the workspace holds <see cref="StreamedWorkspaceFloats"/> floats.
    /// </summary>
    public static void RunStreamed(GemmVariant variant, int batch, int height, int width, float* input, PackedWeights weights,
        float* bias, bool biasPerImage, float* residual, int residualStride, float* output, int outputStride, float* workspace)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Conv3x3);
        if (weights.PanelWidth != variant.Nr || weights.K % 9 != 0 || variant.Nr % 8 != 0 || variant.Mr > MaxMr)
        {
            throw new ArgumentException($"weights [{weights.N}, {weights.K}] packed for NR={weights.PanelWidth} are not 3x3 weights for the {variant.Name} kernel", nameof(weights));
        }
        int inChannels = weights.K / 9, outChannels = weights.N;
        int blockTiles = StreamedBlockTiles(batch, height, width, inChannels, outChannels);
        var ctx = new Context
        {
            V = workspace, M = workspace + (long)Positions * blockTiles * inChannels, Raw = new PackedWeightsView(weights),
            ChannelBlocks = ChannelBlocks(inChannels), TilesStride = blockTiles + MaxMr,
        };
        ctx.PackedV = ctx.M + (long)Positions * blockTiles * outChannels;
        RunBlocks(&ctx, variant, batch, height, width, inChannels, outChannels, input, bias, biasPerImage,
            residual, residualStride, output, outputStride, blockTiles, &StreamedGemmPhase);
    }

    /// <summary>V packed once for all tasks, then (row range, weight panel) tasks that transform their weights.</summary>
    private static void StreamedGemmPhase(Context* ctx)
    {
        WorkerPool.Shared.Run(&PackVTask, ctx, Positions * ctx->ChannelBlocks);
        // Each task transforms its weight panel once for all its rows: as many rows per task as still leaves about 4
        // tasks per thread.
        int rowBlock = GemmKernels.RowBlock(ctx->Variant);
        int rowBlocks = (ctx->BlockTiles + rowBlock - 1) / rowBlock;
        int perTask = Math.Max(1, rowBlocks * ctx->Raw.Panels / (WorkerPool.Shared.ThreadCount * 4));
        ctx->RowsPerTask = Math.Min(rowBlocks, perTask) * rowBlock;
        ctx->RowBlocks = (ctx->BlockTiles + ctx->RowsPerTask - 1) / ctx->RowsPerTask;
        WorkerPool.Shared.Run(&StreamedGemmTask, ctx, ctx->RowBlocks * ctx->Raw.Panels);
    }

    /// <summary>Packs V of one (position, channel block) into MR-row micro-panels for every GEMM task to share.</summary>
    private static void PackVTask(void* state, int index)
    {
        Context* ctx = (Context*)state;
        int p = index / ctx->ChannelBlocks, block = index % ctx->ChannelBlocks;
        int c0 = block * StreamChannelBlock;
        GemmKernels.PackRowMajor(ctx->V + (nint)p * ctx->BlockTiles * ctx->InChannels, ctx->InChannels, 0, ctx->BlockTiles,
            c0, Math.Min(StreamChannelBlock, ctx->InChannels - c0), ctx->Variant.Mr, PackedVBlock(ctx, p, block));
    }

    private static float* PackedVBlock(Context* ctx, int position, int block) =>
        ctx->PackedV + ((nint)position * ctx->ChannelBlocks + block) * ctx->TilesStride * StreamChannelBlock;

    /// <summary>One (row range, weight panel): per channel block, transform the panel's weights, then 36 GEMM panels.</summary>
    private static void StreamedGemmTask(void* state, int index)
    {
        Context* ctx = (Context*)state;
        GemmVariant variant = ctx->Variant;
        int nr = variant.Nr, panel = index % ctx->Raw.Panels;
        int row0 = index / ctx->Raw.Panels * ctx->RowsPerTask;
        int rows = Math.Min(ctx->RowsPerTask, ctx->BlockTiles - row0);
        int col0 = panel * nr;
        int cols = Math.Min(nr, ctx->OutChannels - col0);
        float* u = StreamScratch();
        float* staged = u + Positions * PositionStride(StreamChannelBlock, GemmMicrokernels.Nr512);
        float** taps = stackalloc float*[9];
        for (int block = 0; block < ctx->ChannelBlocks; block++)
        {
            int c0 = block * StreamChannelBlock;
            int kc = Math.Min(StreamChannelBlock, ctx->InChannels - c0);
            StageTaps(ctx, panel, c0, kc, staged, taps);
            TransformWeights(taps, kc, nr, u);
            for (int p = 0; p < Positions; p++)
            {
                GemmKernels.MultiplyPanel(variant, rows, cols, kc, PackedVBlock(ctx, p, block) + (nint)row0 * kc, u + p * PositionStride(kc, nr),
                    ctx->M + ((nint)p * ctx->BlockTiles + row0) * ctx->LdM + col0, ctx->LdM, overwrite: block == 0);
            }
        }
    }

    /// <summary>
    /// Points <paramref name="taps"/>[t] at the kc x NR rows of tap t for channels [c0, c0 + kc) of a weight panel:
    /// in place for float32, widened into <paramref name="staged"/> for 16-bit weights.
    /// </summary>
    private static void StageTaps(Context* ctx, int panel, int c0, int kc, float* staged, float** taps)
    {
        int nr = ctx->Raw.PanelWidth;
        byte* stored = ctx->Raw.Panel(panel);
        WeightFormat format = ctx->Raw.Format;
        for (int t = 0; t < 9; t++)
        {
            nint first = ((nint)t * ctx->InChannels + c0) * nr;
            if (format == WeightFormat.F32)
            {
                taps[t] = (float*)stored + first;
            }
            else
            {
                taps[t] = staged + (nint)t * kc * nr;
                Convert.Widen.PanelKernelFor(format)((ushort*)stored + first, taps[t], (nint)kc * nr);
            }
        }
    }

    /// <summary>
    /// U = G g G^T for kc input channels x NR output channels, 8 output channels per vector: taps[t][k * nr + j] is
    /// g[tap t] of (channel k, output j); u[p * (kc x NR + pad) + k * nr + j] receives position p (row-major 6 x 6).
    /// </summary>
    private static void TransformWeights(float** taps, int kc, int nr, float* u)
    {
        Vector256<float>* column = stackalloc Vector256<float>[18];
        Vector256<float>* row = stackalloc Vector256<float>[6];
        nint positionStride = PositionStride(kc, nr);
        for (int k = 0; k < kc; k++)
        {
            for (int j = 0; j < nr; j += 8)
            {
                nint at = (nint)k * nr + j;
                for (int c = 0; c < 3; c++)
                {
                    // G g: column c of the 3x3 kernel (rows 0..2) -> 6 values, kept as column[i * 3 + c].
                    Transform3(Vector256.Load(taps[c] + at), Vector256.Load(taps[3 + c] + at), Vector256.Load(taps[6 + c] + at), column + c, 3);
                }
                for (int i = 0; i < 6; i++)
                {
                    Transform3(column[i * 3], column[i * 3 + 1], column[i * 3 + 2], row, 1); // (G g) G^T: row i
                    for (int c = 0; c < 6; c++)
                    {
                        row[c].Store(u + (i * 6 + c) * positionStride + at);
                    }
                }
            }
        }
    }

    private static nint PositionStride(int kc, int nr) => (nint)kc * nr + PositionPad;

    /// <summary>The 6 outputs of G (6x3) applied to a 3-vector (the float form of WinogradWeights' transform).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transform3(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float>* output, int stride)
    {
        Vector256<float> sum = a + c;
        Vector256<float> sixth = Vector256.Create(1f / 6);
        Vector256<float> outer = a * Vector256.Create(1f / 24) + c * sixth;
        Vector256<float> middle = b * Vector256.Create(1f / 12);
        output[0] = a * Vector256.Create(0.25f);
        output[stride] = -(sum + b) * sixth;
        output[2 * stride] = -(sum - b) * sixth;
        output[3 * stride] = outer + middle;
        output[4 * stride] = outer - middle;
        output[5 * stride] = c;
    }

    /// <summary>Per-thread U blocks (36 positions) and staged 16-bit taps (9), for the widest panel.</summary>
    private static float* StreamScratch()
    {
        if (t_streamed == null)
        {
            nuint floats = (nuint)(Positions + 9) * (StreamChannelBlock * GemmMicrokernels.Nr512 + PositionPad);
            t_streamed = (float*)NativeMemory.AlignedAlloc(floats * sizeof(float), 64);
        }
        return t_streamed;
    }
}
