namespace Sd.Loaders.Webp;

/// <summary>
/// A lossy WebP's alpha plane from its "ALPH" chunk: stored raw or as a headerless lossless stream (alpha in the
/// green channel), then unfiltered (horizontal, vertical or gradient prediction). The encoder's level reduction needs
/// nothing from the decoder (libwebp smooths it only when asked to dither alpha, which Pillow does not).
/// Reference: the WebP container specification's ALPH chunk; libwebp's dec/alpha_dec.c and dsp/filters.c.
/// </summary>
internal static class WebpAlpha
{
    private const int Horizontal = 1, Vertical = 2; // and 3, gradient

    public static byte[] Decode(byte[] data, WebpChunk chunk, int width, int height, string name)
    {
        if (chunk.Length <= 1)
            throw new InvalidFileException(name, "the ALPH chunk is empty");
        int header = data[chunk.Start];
        int method = header & 3, filter = (header >> 2) & 3, levels = (header >> 4) & 3, reserved = header >> 6;
        if (method > 1 || levels > 1 || reserved != 0)
            throw new InvalidFileException(name, $"ALPH chunk header 0x{header:x2}: unknown compression, preprocessing or reserved bits");
        int start = chunk.Start + 1, length = chunk.Length - 1;
        long pixels = (long)width * height;
        var alpha = new byte[pixels];
        if (method == 0)
        {
            if (length < pixels)
                throw new InvalidFileException(name, $"truncated: the raw ALPH chunk has {length} bytes, {pixels} are needed");
            data.AsSpan(start, (int)pixels).CopyTo(alpha);
        }
        else
        {
            uint[] argb = Vp8lDecoder.DecodeHeaderless(data, start, length, width, height, name);
            for (long p = 0; p < pixels; p++)
                alpha[p] = (byte)(argb[p] >> 8);
        }
        if (filter != 0)
            Unfilter(alpha, width, height, filter);
        return alpha;
    }

    /// <summary>Adds back each sample's prediction, in place, row by row (the first row predicts from the left).</summary>
    private static void Unfilter(byte[] a, int width, int height, int filter)
    {
        for (int x = 1; x < width; x++)
            a[x] += a[x - 1];
        for (int y = 1; y < height; y++)
        {
            int row = y * width, above = row - width;
            a[row] += a[above]; // every filter predicts a row's first sample from above
            for (int x = 1; x < width; x++)
            {
                int i = row + x;
                a[i] += filter switch
                {
                    Horizontal => a[i - 1],
                    Vertical => a[above + x],
                    _ => (byte)Math.Clamp( // gradient
                        a[i - 1] + a[above + x] - a[above + x - 1], 0, 255),
                };
            }
        }
    }
}
