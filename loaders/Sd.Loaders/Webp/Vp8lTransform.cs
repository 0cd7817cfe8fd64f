namespace Sd.Loaders.Webp;

/// <summary>
/// One of a lossless stream's transforms and its inverse: prediction from neighbours (14 modes per tile), the
/// cross-colour transform (per-tile multipliers), green subtracted from red and blue, and colour indexing (a palette,
/// several small indexes packed per pixel). Reference: the WebP lossless specification; libwebp's dsp/lossless.c,
/// whose arithmetic (per-channel averages rounding down, the clamps, mode 11's select) this is.
/// </summary>
internal sealed class Vp8lTransform(int kind, int width, int bits, uint[] data)
{
    public const int Predictor = 0, CrossColor = 1, SubtractGreen = 2, ColorIndexing = 3;

    private const uint Black = 0xff000000;

    public int Kind => kind;

    /// <summary>The pixels before this transform (width <c>width</c> x <paramref name="height"/>).</summary>
    public uint[] Invert(uint[] pixels, int height)
    {
        switch (kind)
        {
            case Predictor:
                InvertPrediction(pixels, height);
                return pixels;
            case CrossColor:
                InvertCrossColor(pixels, height);
                return pixels;
            case SubtractGreen:
                for (int i = 0; i < pixels.Length; i++)
                {
                    uint argb = pixels[i], green = (argb >> 8) & 0xff;
                    pixels[i] = (argb & 0xff00ff00) | (((argb & 0x00ff00ff) + (green << 16 | green)) & 0x00ff00ff);
                }
                return pixels;
            default:
                return Unpalette(pixels, height);
        }
    }

    /// <summary>The palette read from the stream (each colour coded as the difference from the one before) as
    /// the full table of 2^(8 >> bits) colours an index can name, transparent black past the coded ones.</summary>
    public static uint[] ExpandPalette(uint[] coded, int bits)
    {
        var palette = new uint[1 << (8 >> bits)]; // at least the coded colours: bits follow from their count
        palette[0] = coded[0];
        for (int i = 1; i < coded.Length; i++)
            palette[i] = Add(coded[i], palette[i - 1]);
        return palette;
    }

    private void InvertPrediction(uint[] p, int height)
    {
        int tilesWide = (width + (1 << bits) - 1) >> bits;
        p[0] = Add(p[0], Black);
        for (int x = 1; x < width; x++) // the first row predicts from the left
            p[x] = Add(p[x], p[x - 1]);
        for (int y = 1; y < height; y++)
        {
            int row = y * width;
            p[row] = Add(p[row], p[row - width]); // the first column from above
            for (int x = 1; x < width; x++)
            {
                int mode = (int)(data[(y >> bits) * tilesWide + (x >> bits)] >> 8) & 0xf;
                int i = row + x;
                // The top-right of the last column is the first pixel of this row, as the flat layout gives it.
                p[i] = Add(p[i], Predict(mode, p[i - 1], p[i - width], p[i - width - 1], p[i - width + 1]));
            }
        }
    }

    private static uint Predict(int mode, uint left, uint top, uint topLeft, uint topRight) => mode switch
    {
        1 => left,
        2 => top,
        3 => topRight,
        4 => topLeft,
        5 => Average(Average(left, topRight), top),
        6 => Average(left, topLeft),
        7 => Average(left, top),
        8 => Average(topLeft, top),
        9 => Average(top, topRight),
        10 => Average(Average(left, topLeft), Average(top, topRight)),
        11 => Select(top, left, topLeft),
        12 => ClampedGradient(left, top, topLeft),
        13 => ClampedHalfGradient(Average(left, top), topLeft),
        _ => Black, // 0, and 14-15, which libwebp treats as 0
    };

    /// <summary>Per channel, a + b - c's sign decides: the neighbour (top or left) closer to the gradient.</summary>
    private static uint Select(uint top, uint left, uint topLeft)
    {
        int score = 0; // sum over channels of |left - topLeft| - |top - topLeft|
        for (int shift = 0; shift < 32; shift += 8)
        {
            int c = Channel(topLeft, shift);
            score += Math.Abs(Channel(left, shift) - c) - Math.Abs(Channel(top, shift) - c);
        }
        return score <= 0 ? top : left;
    }

    /// <summary>Per channel, a + b - c clamped to a byte.</summary>
    private static uint ClampedGradient(uint a, uint b, uint c)
    {
        uint result = 0;
        for (int shift = 0; shift < 32; shift += 8)
            result |= (uint)Math.Clamp(Channel(a, shift) + Channel(b, shift) - Channel(c, shift), 0, 255) << shift;
        return result;
    }

    /// <summary>Per channel, a + (a - b) / 2 (rounding toward zero) clamped to a byte.</summary>
    private static uint ClampedHalfGradient(uint a, uint b)
    {
        uint result = 0;
        for (int shift = 0; shift < 32; shift += 8)
        {
            int av = Channel(a, shift);
            result |= (uint)Math.Clamp(av + (av - Channel(b, shift)) / 2, 0, 255) << shift;
        }
        return result;
    }

    private static int Channel(uint argb, int shift) => (int)(argb >> shift) & 0xff;

    private void InvertCrossColor(uint[] p, int height)
    {
        int tilesWide = (width + (1 << bits) - 1) >> bits;
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                uint code = data[(y >> bits) * tilesWide + (x >> bits)];
                sbyte greenToRed = (sbyte)code, greenToBlue = (sbyte)(code >> 8), redToBlue = (sbyte)(code >> 16);
                uint argb = p[y * width + x];
                sbyte green = (sbyte)(argb >> 8);
                int red = ((int)(argb >> 16) + (greenToRed * green >> 5)) & 0xff;
                int blue = ((int)argb + (greenToBlue * green >> 5) + (redToBlue * (sbyte)red >> 5)) & 0xff;
                p[y * width + x] = (argb & 0xff00ff00) | (uint)(red << 16) | (uint)blue;
            }
        }
    }

    /// <summary>Indexes (in green; with small palettes 2, 4 or 8 packed per coded pixel, lowest bits first) to colours.</summary>
    private uint[] Unpalette(uint[] coded, int height)
    {
        int codedWidth = (width + (1 << bits) - 1) >> bits;
        int indexBits = 8 >> bits, mask = (1 << indexBits) - 1;
        var pixels = new uint[(long)width * height];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int packed = (int)(coded[y * codedWidth + (x >> bits)] >> 8) & 0xff;
                int index = (packed >> ((x & ((1 << bits) - 1)) * indexBits)) & mask;
                pixels[y * width + x] = data[index];
            }
        }
        return pixels;
    }

    /// <summary>Per-channel sum, each channel modulo 256.</summary>
    private static uint Add(uint a, uint b) =>
        (((a & 0xff00ff00) + (b & 0xff00ff00)) & 0xff00ff00) | (((a & 0x00ff00ff) + (b & 0x00ff00ff)) & 0x00ff00ff);

    /// <summary>Per-channel average, rounding down.</summary>
    private static uint Average(uint a, uint b) => (((a ^ b) & 0xfefefefe) >> 1) + (a & b);
}
