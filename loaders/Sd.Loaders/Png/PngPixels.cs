namespace Sd.Loaders.Png;

/// <summary>
/// The PNG pixel formats beyond 8-bit gray, RGB and RGBA, and how their unfiltered rows become the 1-, 3- or 4-channel
/// 8-bit pixels of a <see cref="PngImage"/>, as Pillow reads them (checked against Pillow 9.4 in the tests):
/// gray of 1, 2 or 4 bits scaled to 0-255 (x 255, 85, 17); 16-bit samples by their high byte, except 16-bit gray,
/// which Pillow opens as 32-bit integers and clamps to 255 on conversion; gray+alpha as RGBA; palette pictures (1 to 8
/// bits) through their PLTE colours, as RGBA when a tRNS chunk gives alpha, an index past the palette being the gray
/// (index, index, index) of Pillow's default palette.
/// </summary>
internal static class PngPixels
{
    /// <summary>Whether the PNG spec allows this bit depth for this colour type (table 11.1).</summary>
    public static bool IsValid(byte colorType, byte bitDepth) => colorType switch
    {
        0 => bitDepth is 1 or 2 or 4 or 8 or 16,
        3 => bitDepth is 1 or 2 or 4 or 8,
        2 or 4 or 6 => bitDepth is 8 or 16,
        _ => false,
    };

    /// <summary>Samples per pixel as stored: gray 1, RGB 3, palette index 1, gray+alpha 2, RGBA 4.</summary>
    public static int StoredSamples(byte colorType) => colorType switch
    {
        0 or 3 => 1,
        2 => 3,
        4 => 2,
        _ => 4,
    };

    /// <summary>Whether rows decode straight into pixels (8-bit gray, RGB, RGBA): no expansion pass.</summary>
    public static bool IsDirect(byte colorType, byte bitDepth) => bitDepth == 8 && colorType is 0 or 2 or 6;

    /// <summary>Channels of the decoded picture: gray 1, RGB and palette 3, gray+alpha, RGBA and palette with alpha 4.</summary>
    public static int Channels(byte colorType, bool paletteAlpha) => colorType switch
    {
        0 => 1,
        2 => 3,
        3 => paletteAlpha ? 4 : 3,
        _ => 4,
    };

    /// <summary>
    /// Expands unfiltered rows (<paramref name="rowBytes"/> each) into <paramref name="channels"/>-channel 8-bit
    /// pixels. <paramref name="palette"/> holds the PLTE's RGB triples and <paramref name="alpha"/> the tRNS values
    /// (both only for colour type 3).
    /// </summary>
    public static byte[] Expand(byte[] rows, int rowBytes, int width, int height, byte colorType, byte bitDepth, int channels,
        byte[]? palette, byte[]? alpha)
    {
        var pixels = new byte[(long)width * height * channels];
        int samples = StoredSamples(colorType);
        for (int y = 0; y < height; y++)
        {
            ReadOnlySpan<byte> row = rows.AsSpan(y * rowBytes, rowBytes);
            Span<byte> output = pixels.AsSpan(y * width * channels, width * channels);
            for (int x = 0; x < width; x++)
            {
                Span<byte> pixel = output.Slice(x * channels, channels);
                if (colorType == 3)
                {
                    int index = Sample(row, x, bitDepth);
                    bool known = 3 * index + 2 < palette!.Length;
                    pixel[0] = known ? palette[3 * index] : (byte)index;
                    pixel[1] = known ? palette[3 * index + 1] : (byte)index;
                    pixel[2] = known ? palette[3 * index + 2] : (byte)index;
                    if (channels == 4) pixel[3] = index < alpha!.Length ? alpha[index] : (byte)255;
                }
                else if (colorType == 0)
                {
                    int value = Sample(row, x, bitDepth);
                    pixel[0] = (byte)(bitDepth == 16 ? Math.Min(value, 255) : value * (255 / ((1 << bitDepth) - 1)));
                }
                else
                {
                    // 8 or 16 bits per sample: the sample's first (high) byte.
                    int step = bitDepth / 8;
                    for (int s = 0; s < samples; s++)
                    {
                        pixel[colorType == 4 && s == 1 ? 3 : s] = row[(x * samples + s) * step];
                    }
                    if (colorType == 4)
                    {
                        pixel[1] = pixel[2] = pixel[0];
                    }
                }
            }
        }
        return pixels;
    }

    /// <summary>Sample x of a one-sample-per-pixel row: packed from the high bits for depths under 8, big-endian for 16.</summary>
    private static int Sample(ReadOnlySpan<byte> row, int x, byte bitDepth) => bitDepth switch
    {
        16 => row[2 * x] << 8 | row[2 * x + 1],
        8 => row[x],
        _ => row[x * bitDepth / 8] >> (8 - bitDepth - x * bitDepth % 8) & ((1 << bitDepth) - 1),
    };
}
