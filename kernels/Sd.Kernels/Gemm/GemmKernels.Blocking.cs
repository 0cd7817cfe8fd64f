namespace Sd.Kernels.Gemm;

// How a product is blocked and split over the threads: K blocks, row blocks (Mc), column groups.
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
    /// Rows per row block (Mc) of an <paramref name="m"/>-row product with F32 weights on one thread: a short M (up to
    /// 40 micro-panels) is one block, so each weight panel is streamed once (<see cref="Run"/> on several threads may
    /// split it by rows, see <see cref="ShortRowSplit"/>).
    /// </summary>
    public static int RowBlock(GemmVariant variant, int m) => RowBlock(variant.Mr, WeightFormat.F32, m);
}
