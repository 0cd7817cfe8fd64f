using Sd.Engine.Tensors;

namespace Sd.Engine.Vae;

/// <summary>
/// diffusers' VAE tiling: the input is cut into overlapping square tiles (stride = 75% of a tile), each tile is run
/// on its own, neighbouring outputs are cross-faded linearly over 25% of a tile (with the tile above, then the tile
/// to the left, each already blended, exactly as diffusers' in-place blend_v / blend_h do), and each tile keeps its
/// top-left (tile - blend) square. Memory is bounded by one tile's run whatever the image size.
/// Reference: diffusers AutoencoderKL.tiled_decode / tiled_encode, blend_v, blend_h (0.27).
/// </summary>
internal static unsafe class VaeTilingRunner
{
    public const double OverlapFactor = 0.25;

    /// <summary>Runs one tile: input [N, th, tw, Cin] -> output [N, th * scale, tw * scale, Cout].</summary>
    public delegate void TileRunner(Tensor input, Tensor output);

    /// <param name="inputTile">Tile edge in input pixels (64 latents for decode, 512 pixels for encode in SD).</param>
    /// <param name="scaleNumerator">Output pixels per input pixel as a fraction (8/1 for decode, 1/8 for encode).</param>
    public static void Run(Tensor input, Tensor output, int inputTile, int scaleNumerator, int scaleDenominator, TileRunner run)
    {
        int batch = input.Dim(0), height = input.Dim(1), width = input.Dim(2), cin = input.Dim(3), cout = output.Dim(3);
        int outputTile = inputTile * scaleNumerator / scaleDenominator;
        int stride = (int)(inputTile * (1 - OverlapFactor));
        int blend = (int)(outputTile * OverlapFactor);
        int rowLimit = outputTile - blend;
        if (stride < 1 || (long)rowLimit * scaleDenominator != (long)stride * scaleNumerator)
        {
            // Each tile's kept square must start where its input does, scaled; otherwise tiles land past the output.
            throw new ArgumentException($"a {inputTile}-pixel tile at scale {scaleNumerator}/{scaleDenominator} does not overlap its neighbours by a whole quarter", nameof(inputTile));
        }
        Tensor?[] previousRow = new Tensor?[(width + stride - 1) / stride];
        Tensor?[] currentRow = new Tensor?[previousRow.Length];
        try
        {
            int tileRow = 0;
            for (int y = 0; y < height; y += stride, tileRow++)
            {
                int tileColumn = 0;
                for (int x = 0; x < width; x += stride, tileColumn++)
                {
                    int th = Math.Min(inputTile, height - y), tw = Math.Min(inputTile, width - x);
                    using Tensor tileInput = Tensor.Allocate([batch, th, tw, cin]);
                    CopyBlock(input, y, x, tileInput, 0, 0, th, tw);
                    Tensor tileOutput = Tensor.Allocate([batch, th * scaleNumerator / scaleDenominator, tw * scaleNumerator / scaleDenominator, cout]);
                    currentRow[tileColumn] = tileOutput;
                    run(tileInput, tileOutput);
                    if (tileRow > 0)
                    {
                        BlendVertical(previousRow[tileColumn]!, tileOutput, blend);
                    }
                    if (tileColumn > 0)
                    {
                        BlendHorizontal(currentRow[tileColumn - 1]!, tileOutput, blend);
                    }
                    int keepH = Math.Min(rowLimit, tileOutput.Dim(1)), keepW = Math.Min(rowLimit, tileOutput.Dim(2));
                    CopyBlock(tileOutput, 0, 0, output, tileRow * rowLimit, tileColumn * rowLimit, keepH, keepW);
                }
                foreach (Tensor? t in previousRow) t?.Dispose();
                (previousRow, currentRow) = (currentRow, previousRow);
                Array.Clear(currentRow);
            }
        }
        finally
        {
            foreach (Tensor? t in previousRow) t?.Dispose();
            foreach (Tensor? t in currentRow) t?.Dispose();
        }
    }

    /// <summary>b's first rows fade in from a's last rows: b[y] = a[h - extent + y] (1 - y/extent) + b[y] y/extent.</summary>
    private static void BlendVertical(Tensor a, Tensor b, int extent)
    {
        extent = Math.Min(Math.Min(a.Dim(1), b.Dim(1)), extent);
        int batch = b.Dim(0), width = b.Dim(2), channels = b.Dim(3);
        for (int n = 0; n < batch; n++)
        for (int y = 0; y < extent; y++)
        {
            // Weights as PyTorch applies Python floats to float32 tensors: computed in double, rounded once.
            float wb = (float)((double)y / extent), wa = (float)(1 - (double)y / extent);
            float* rowA = Pixel(a, n, a.Dim(1) - extent + y, 0);
            float* rowB = Pixel(b, n, y, 0);
            int count = Math.Min(width, a.Dim(2)) * channels;
            for (int i = 0; i < count; i++)
            {
                rowB[i] = rowA[i] * wa + rowB[i] * wb;
            }
        }
    }

    /// <summary>b's first columns fade in from a's last columns.</summary>
    private static void BlendHorizontal(Tensor a, Tensor b, int extent)
    {
        extent = Math.Min(Math.Min(a.Dim(2), b.Dim(2)), extent);
        int batch = b.Dim(0), height = Math.Min(a.Dim(1), b.Dim(1)), channels = b.Dim(3);
        for (int n = 0; n < batch; n++)
        for (int y = 0; y < height; y++)
        for (int x = 0; x < extent; x++)
        {
            float wb = (float)((double)x / extent), wa = (float)(1 - (double)x / extent);
            float* pa = Pixel(a, n, y, a.Dim(2) - extent + x);
            float* pb = Pixel(b, n, y, x);
            for (int c = 0; c < channels; c++)
            {
                pb[c] = pa[c] * wa + pb[c] * wb;
            }
        }
    }

    private static float* Pixel(Tensor t, int n, int y, int x) => t.Data + (((long)n * t.Dim(1) + y) * t.Dim(2) + x) * t.Dim(3);

    /// <summary>Copies an h x w block of every image from src at (sy, sx) to dst at (dy, dx).</summary>
    private static void CopyBlock(Tensor src, int sy, int sx, Tensor dst, int dy, int dx, int h, int w)
    {
        int channels = src.Dim(3);
        for (int n = 0; n < src.Dim(0); n++)
        for (int y = 0; y < h; y++)
        {
            new ReadOnlySpan<float>(Pixel(src, n, sy + y, sx), w * channels).CopyTo(new Span<float>(Pixel(dst, n, dy + y, dx), w * channels));
        }
    }
}
