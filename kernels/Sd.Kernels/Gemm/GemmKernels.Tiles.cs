using System.Runtime.Intrinsics;

namespace Sd.Kernels.Gemm;

// The tile level: microkernel calls over a row block's MR x NR tiles, A packing, and the bias/residual epilogue of
// tiles the microkernel cannot finish itself.
public static unsafe partial class GemmKernels
{
    /// <summary>
    /// C[rows, cols] (=|+=) A B for A in 16-channel groups (<see cref="ChannelGroupPanel"/> micro-panels
    /// <paramref name="depth"/> channels deep, from group <paramref name="packedA"/> points into) and one float B
    /// micro-panel (kc x NR): for kernels that build their own B panels (streamed Winograd weights). Runs on the
    /// calling thread; edge tiles go through the per-thread scratch tile.
    /// </summary>
    public static void MultiplyPanel(GemmVariant variant, int rows, int cols, int kc, float* packedA, int depth, float* bPanel, float* c, int ldc, bool overwrite) =>
        MultiplyTiles(variant, variant.ChannelGroups, rows, cols, kc, packedA, depth, bPanel, c, ldc, overwrite, null, 0, 0, null);

    /// <summary>
    /// C[rows, cols] (=|+=) A B for the block at (row0, j0) of <paramref name="epilogue"/>'s C, adding its bias and
    /// residual when that is not null (the last K block). A's micro-panels are <paramref name="depth"/> values deep
    /// (kc for a packed block) in the layout of <paramref name="kernels"/>. Full tiles add bias and residual in the
    /// microkernel's store; edge tiles and tiles that straddle two per-image biases (<see cref="GemmArgs.BiasRows"/>)
    /// take a separate pass.
    /// </summary>
    private static void MultiplyTiles(GemmVariant variant, TileKernels kernels, int rows, int cols, int kc, float* packedA, int depth,
        float* bPanel, float* c, int ldc, bool overwrite, GemmArgs* epilogue, int row0, int j0, float* prefetch)
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
                kernels.Microkernel(kc, packedA + (nint)ir * depth, bPanel, cTile, ldc, !overwrite, epilogue == null ? null : &fused, prefetch);
                prefetch = null;
            }
            else if (cols == nr && fusable && kernels.EightRows != null)
            {
                // A short last micro-panel: at most two calls of the 8- or 4-row kernel over its rows.
                for (int done = 0; done < r; done += 8)
                {
                    int take = Math.Min(8, r - done);
                    TileEpilogue part = fused;
                    part.Residual = fused.Residual == null ? null : fused.Residual + (nint)done * fused.Ldr;
                    var kernel = take > 4 ? kernels.EightRows : kernels.FourRows;
                    kernel(take, kc, packedA + (nint)ir * depth + done * kernels.RowStride, bPanel, cTile + (nint)done * ldc, ldc, !overwrite, epilogue == null ? null : &part, prefetch);
                    prefetch = null;
                }
            }
            else
            {
                kernels.Microkernel(kc, packedA + (nint)ir * depth, bPanel, tile, nr, false, null, prefetch);
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
}
