namespace Sd.Loaders.Bmp;

/// <summary>
/// RLE8 and RLE4 BMP pixel data decoded as Pillow 9.4's BmpRleDecoder decodes it, to one palette index a pixel in
/// file row order: runs (cut at the row's end), absolute runs (padded to a 16-bit word of the file), end of line (the
/// row filled with 0), deltas (0s up to the new place) and end of bitmap. As in Pillow, a delta reads four bytes and
/// moves by the last two, an RLE4 absolute run of an odd count reads half the count of bytes, rounded down, and its
/// place in the row still moves by the whole count; data that ends before the last pixel is refused (Pillow's "not
/// enough image data").
/// Reference: Pillow's BmpImagePlugin.BmpRleDecoder.decode.
/// </summary>
internal static class BmpRle
{
    public static byte[] Decode(byte[] data, long offset, int width, int height, bool rle4, string name)
    {
        long size = (long)width * height;
        var pixels = new List<byte>((int)Math.Min(size + width, int.MaxValue));
        long at = offset, x = 0;
        while (pixels.Count < size)
        {
            if (at + 2 > data.Length)
                break;
            int count = data[at], value = data[at + 1];
            at += 2;
            if (count != 0)
            {
                // Encoded: a run of one index (RLE4: the two nibbles in turn), cut at the row's end.
                int run = (int)Math.Max(0, Math.Min(count, width - x));
                for (int i = 0; i < run; i++)
                    pixels.Add((byte)(!rle4 ? value : (i & 1) == 0 ? value >> 4 : value & 15));
                x += run;
            }
            else if (value == 0)
            {
                while (pixels.Count % width != 0)
                    pixels.Add(0);
                x = 0;
            }
            else if (value == 1)
            {
                break;
            }
            else if (value == 2)
            {
                // Pillow 9.4 reads the delta's two bytes, then two more, and moves by those.
                if (at + 2 > data.Length)
                    break;
                at += 2;
                if (at + 2 > data.Length)
                    throw BmpHeader.Invalid(name, $"the run-length delta at byte {at - 4} runs past the end of the file");
                long skip = data[at] + (long)data[at + 1] * width;
                at += 2;
                if (pixels.Count + skip > size + width)
                    skip = size + width - pixels.Count; // past the last row: the rest is never read
                for (long i = 0; i < skip; i++)
                    pixels.Add(0);
                x = pixels.Count % width;
            }
            else
            {
                int bytes = rle4 ? value / 2 : value;
                int read = (int)Math.Min(bytes, data.Length - at);
                for (int i = 0; i < read; i++)
                {
                    byte b = data[at + i];
                    if (rle4)
                    {
                        pixels.Add((byte)(b >> 4));
                        pixels.Add((byte)(b & 15));
                    }
                    else
                    {
                        pixels.Add(b);
                    }
                }
                at += read;
                if (read < bytes)
                    break;
                x += value;
                if (at % 2 != 0)
                    at++; // to the next 16-bit word of the file
            }
        }
        if (pixels.Count < size)
            throw BmpHeader.Invalid(name, $"the run-length data ends after {pixels.Count} of the picture's {size} pixels");
        return pixels.ToArray();
    }
}
