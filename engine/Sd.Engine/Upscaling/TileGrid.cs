namespace Sd.Engine.Upscaling;

/// <summary>
/// AUTOMATIC1111's overlapping tile grid (modules/images.py, split_grid and combine_grid) on 8-bit RGB pictures: tile
/// origins spread evenly with at least <c>overlap</c> pixels shared, the last row and column flush with the far edge
/// (negative, reading black, when the picture is smaller than a tile); joining pastes each tile over the previous one
/// through a linear mask across the overlap, first along each row, then row under row, with Pillow's blend rounding.
/// </summary>
internal sealed class TileGrid
{
    private TileGrid(int width, int height, int tile, int overlap, int[] columns, int[] rows)
    {
        Width = width;
        Height = height;
        Tile = tile;
        Overlap = overlap;
        Columns = columns;
        Rows = rows;
    }

    public int Width { get; }

    public int Height { get; }

    public int Tile { get; }

    public int Overlap { get; }

    /// <summary>Each tile column's left edge.</summary>
    public int[] Columns { get; }

    /// <summary>Each tile row's top edge.</summary>
    public int[] Rows { get; }

    /// <summary>split_grid(image, tile, tile, overlap).</summary>
    public static TileGrid Split(int width, int height, int tile, int overlap) =>
        new(width, height, tile, overlap, Origins(width, tile, overlap), Origins(height, tile, overlap));

    private static int[] Origins(int side, int tile, int overlap)
    {
        int count = (int)Math.Ceiling((side - overlap) / (double)(tile - overlap));
        double step = count > 1 ? (side - tile) / (double)(count - 1) : 0;
        var origins = new int[count];
        for (int i = 0; i < count; i++)
        {
            int origin = (int)(i * step); // Python's int(): toward zero
            origins[i] = origin + tile >= side ? side - tile : origin;
        }
        return origins;
    }

    /// <summary>image.crop((x, y, x + w, y + h)): pixels outside the picture are black.</summary>
    public static byte[] Crop(byte[] rgb, int height, int width, int x, int y, int w, int h)
    {
        var tile = new byte[(long)w * h * 3];
        for (int row = 0; row < h; row++)
        {
            int sy = y + row;
            if ((uint)sy >= (uint)height) continue;
            int from = Math.Max(0, -x), to = Math.Min(w, width - x);
            if (to > from)
            {
                Array.Copy(rgb, ((long)sy * width + x + from) * 3, tile, ((long)row * w + from) * 3, (long)(to - from) * 3);
            }
        }
        return tile;
    }

    /// <summary>combine_grid of the tiles (tiles[row][column], each Tile x scale square) on the grid scaled by <paramref name="scale"/>.</summary>
    public byte[] Combine(byte[][][] tiles, int scale)
    {
        int imageW = Width * scale, imageH = Height * scale, tile = Tile * scale, overlap = Overlap * scale;
        byte[] mask = Mask(overlap);
        var image = new byte[(long)imageW * imageH * 3];
        var row = new byte[(long)imageW * tile * 3];
        for (int r = 0; r < Rows.Length; r++)
        {
            Array.Clear(row);
            for (int c = 0; c < Columns.Length; c++)
            {
                int x = Columns[c] * scale;
                if (x == 0)
                {
                    Paste(row, imageW, tile, tiles[r][c], tile, 0, 0, tile, tile, 0, 0, null, vertical: false);
                    continue;
                }
                Paste(row, imageW, tile, tiles[r][c], tile, 0, 0, overlap, tile, x, 0, mask, vertical: false);
                Paste(row, imageW, tile, tiles[r][c], tile, overlap, 0, tile - overlap, tile, x + overlap, 0, null, vertical: false);
            }
            int y = Rows[r] * scale;
            if (y == 0)
            {
                Paste(image, imageW, imageH, row, imageW, 0, 0, imageW, tile, 0, 0, null, vertical: true);
                continue;
            }
            Paste(image, imageW, imageH, row, imageW, 0, 0, imageW, overlap, 0, y, mask, vertical: true);
            Paste(image, imageW, imageH, row, imageW, 0, overlap, imageW, tile - overlap, 0, y + overlap, null, vertical: true);
        }
        return image;
    }

    /// <summary>make_mask_image: (float32) i * 255 / overlap truncated to a byte, for i in [0, overlap).</summary>
    private static byte[] Mask(int overlap)
    {
        var mask = new byte[overlap];
        for (int i = 0; i < overlap; i++)
        {
            mask[i] = (byte)(i * 255f / overlap);
        }
        return mask;
    }

    /// <summary>
    /// Image.paste of the source region (sx, sy, w, h) at (dx, dy), clipped to the destination. With a mask (indexed
    /// by the region's column, or its row when <paramref name="vertical"/>), Pillow's paste_mask_L blend:
    /// (out x (255 - m) + in x m) / 255 rounded as its DIV255 does.
    /// </summary>
    private static void Paste(byte[] dst, int dstW, int dstH, byte[] src, int srcW, int sx, int sy, int w, int h, int dx, int dy, byte[]? mask, bool vertical)
    {
        for (int j = 0; j < h; j++)
        {
            int ty = dy + j;
            if ((uint)ty >= (uint)dstH) continue;
            for (int i = 0; i < w; i++)
            {
                int tx = dx + i;
                if ((uint)tx >= (uint)dstW) continue;
                long d = ((long)ty * dstW + tx) * 3, s = ((long)(sy + j) * srcW + sx + i) * 3;
                if (mask == null)
                {
                    dst[d] = src[s];
                    dst[d + 1] = src[s + 1];
                    dst[d + 2] = src[s + 2];
                    continue;
                }
                int m = mask[vertical ? j : i];
                for (int k = 0; k < 3; k++)
                {
                    int v = dst[d + k] * (255 - m) + src[s + k] * m + 128;
                    dst[d + k] = (byte)(((v >> 8) + v) >> 8);
                }
            }
        }
    }
}
