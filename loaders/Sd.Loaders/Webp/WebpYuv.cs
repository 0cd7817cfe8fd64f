namespace Sd.Loaders.Webp;

/// <summary>
/// A lossy WebP's Y, U and V planes to 8-bit RGB or RGBA, as libwebp gives them to Pillow: "fancy" upsampling of the
/// half-resolution chroma (each output sample weights the four nearest chroma samples 9:3:3:1, edges repeated) and
/// BT.601 limited-range YUV to RGB in libwebp's 14-bit fixed point. Reference: libwebp's dsp/upsampling.c (the
/// line-pair upsampler, its rounding as written there), dsp/yuv.h and dec/io_dec.c (which rows pair up).
/// </summary>
internal static class WebpYuv
{
    /// <param name="alpha">The alpha plane (width x height) for 4 channels; null gives opaque pixels.</param>
    /// <param name="channels">3 for RGB, 4 for RGBA.</param>
    public static byte[] ToPixels(Vp8Planes planes, byte[]? alpha, int channels)
    {
        int width = planes.Width, height = planes.Height;
        var pixels = new byte[(long)width * height * channels];
        var lines = new Lines(planes, pixels, channels);
        lines.Pair(-1, 0, 0, 0); // the first row on its own, chroma row 0 standing for the row above too
        int y = 1;
        for (; y + 1 < height; y += 2)
            lines.Pair(y, y + 1, (y - 1) / 2, (y + 1) / 2);
        if (y < height) // an even height leaves the last row on its own
            lines.Pair(-1, y, y / 2, y / 2);
        if (channels == 4)
        {
            for (long p = 0; p < (long)width * height; p++)
                pixels[4 * p + 3] = alpha == null ? (byte)255 : alpha[p];
        }
        return pixels;
    }

    /// <summary>Writes output rows from Y rows and the chroma rows between them.</summary>
    private readonly struct Lines(Vp8Planes planes, byte[] pixels, int channels)
    {
        /// <summary>Writes row <paramref name="upper"/> (unless -1), nearer chroma row <paramref name="aboveRow"/>,
        /// and row <paramref name="lower"/>, nearer chroma row <paramref name="belowRow"/>.</summary>
        public void Pair(int upper, int lower, int aboveRow, int belowRow)
        {
            if (upper >= 0)
                Line(upper, aboveRow, belowRow);
            Line(lower, belowRow, aboveRow);
        }

        /// <summary>One output row: 3/4 of chroma row <paramref name="near"/>, 1/4 of <paramref name="far"/>
        /// vertically, and the same split horizontally, in libwebp's two-step rounding.</summary>
        private void Line(int row, int near, int far)
        {
            int width = planes.Width, cs = planes.CStride;
            int lastPair = (width - 1) >> 1;
            ReadOnlySpan<byte> y = planes.Y.AsSpan(row * planes.YStride, width);
            for (int plane = 0; plane < 2; plane++)
            {
                byte[] c = plane == 0 ? planes.U : planes.V;
                ReadOnlySpan<byte> n = c.AsSpan(near * cs, lastPair + 1), f = c.AsSpan(far * cs, lastPair + 1);
                Span<byte> chroma = plane == 0 ? _u : _v;
                chroma[0] = (byte)((3 * n[0] + f[0] + 2) >> 2);
                for (int x = 1; x <= lastPair; x++)
                {
                    // With n0/f0 the samples left of the output pair and n1/f1 right of it.
                    int n0 = n[x - 1], f0 = f[x - 1], n1 = n[x], f1 = f[x];
                    int sum = n0 + n1 + f0 + f1 + 8;
                    int nearLeftFarRight = (sum + 2 * (n0 + f1)) >> 3; // weights n0 and f1 double
                    int nearRightFarLeft = (sum + 2 * (n1 + f0)) >> 3;
                    chroma[2 * x - 1] = (byte)((nearRightFarLeft + n0) >> 1);
                    chroma[2 * x] = (byte)((nearLeftFarRight + n1) >> 1);
                }
                if ((width & 1) == 0)
                    chroma[width - 1] = (byte)((3 * n[lastPair] + f[lastPair] + 2) >> 2);
            }
            long at = (long)row * width * channels;
            for (int x = 0; x < width; x++, at += channels)
            {
                int luma = MultHigh(y[x], 19077), u = _u[x], v = _v[x];
                pixels[at] = Clip(luma + MultHigh(v, 26149) - 14234);
                pixels[at + 1] = Clip(luma - MultHigh(u, 6419) - MultHigh(v, 13320) + 8708);
                pixels[at + 2] = Clip(luma + MultHigh(u, 33050) - 17685);
            }
        }

        private readonly byte[] _u = new byte[planes.Width], _v = new byte[planes.Width];
    }

    private static int MultHigh(int v, int coefficient) => (v * coefficient) >> 8;

    /// <summary>A 14-bit fixed-point value (6 fraction bits) to a byte, clamped.</summary>
    private static byte Clip(int v) => (v & ~16383) == 0 ? (byte)(v >> 6) : v < 0 ? (byte)0 : (byte)255;
}
