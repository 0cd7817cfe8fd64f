namespace Sd.Kernels.Layout;

/// <summary>
/// 2-D transpose dst[j, i] = src[i, j]: NCHW <-> NHWC per image is a [C, H*W] <-> [H*W, C] transpose. Used at the
/// public boundary only (once per call), so the fast variant is cache tiling rather than SIMD shuffles.
/// </summary>
public static unsafe class TransposeKernels
{
    /// <summary>Tile edge: a 32x32 float tile is 4 KiB, so source and destination tiles sit in L1 together.</summary>
    private const int Tile = 32;

    public static void Transpose_Scalar(float* src, float* dst, int rows, int cols)
    {
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                dst[(nint)j * rows + i] = src[(nint)i * cols + j];
            }
        }
    }

    public static void Transpose_Tiled(float* src, float* dst, int rows, int cols)
    {
        for (int i0 = 0; i0 < rows; i0 += Tile)
        {
            int i1 = Math.Min(i0 + Tile, rows);
            for (int j0 = 0; j0 < cols; j0 += Tile)
            {
                int j1 = Math.Min(j0 + Tile, cols);
                for (int i = i0; i < i1; i++)
                {
                    float* row = src + (nint)i * cols;
                    for (int j = j0; j < j1; j++)
                    {
                        dst[(nint)j * rows + i] = row[j];
                    }
                }
            }
        }
    }

    /// <summary>[N, C, H, W] -> [N, H, W, C].</summary>
    public static void NchwToNhwc(float* src, float* dst, int n, int c, int hw)
    {
        for (int b = 0; b < n; b++)
        {
            Transpose_Tiled(src + (nint)b * c * hw, dst + (nint)b * c * hw, c, hw);
        }
    }

    /// <summary>[N, H, W, C] -> [N, C, H, W].</summary>
    public static void NhwcToNchw(float* src, float* dst, int n, int c, int hw)
    {
        for (int b = 0; b < n; b++)
        {
            Transpose_Tiled(src + (nint)b * c * hw, dst + (nint)b * c * hw, hw, c);
        }
    }
}
