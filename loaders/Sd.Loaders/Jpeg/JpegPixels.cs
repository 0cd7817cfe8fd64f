using Sd.Loaders.Png;

namespace Sd.Loaders.Jpeg;

/// <summary>What a JPEG's components hold (libjpeg's jpeg_color_space).</summary>
internal enum JpegColor { Gray, YCbCr, Rgb, Cmyk, Ycck }

/// <summary>
/// A decoded frame's coefficients to 8-bit gray or RGB pixels, as libjpeg-turbo gives them to Pillow and Pillow's
/// convert("RGB") gives them on: the islow IDCT, "fancy" (triangle-filter) upsampling where libjpeg uses it (2x
/// horizontal, 2x vertical or both, of a component wider than 2 samples for the horizontal kinds; box replication for
/// other factors), YCbCr to RGB in 16-bit fixed point, and CMYK to RGB as Pillow does it. Reference: libjpeg-turbo's
/// jdsample.c and jdcolor.c (the edges follow its SIMD code, which repeats the first and last sample, and the C code's
/// rows); Pillow's JpegImagePlugin.py ("CMYK;I") and Convert.c (cmyk2rgb).
/// </summary>
internal static class JpegPixels
{
    // YCbCr -> RGB terms per chroma value, as libjpeg builds them: round(1.402 x) and round(1.772 x) for R and B,
    // G's two terms kept at 16 fraction bits (rounding folded into Cb's) and shifted after adding.
    private static readonly int[] CrToR = Table(91881, 0, shift: true);
    private static readonly int[] CbToB = Table(116130, 0, shift: true);
    private static readonly int[] CrToG = Table(-46802, 0, shift: false);
    private static readonly int[] CbToG = Table(-22554, 1 << 15, shift: false);

    public static PngImage ToImage(JpegFrame frame, JpegColor color, IReadOnlyDictionary<string, string> text)
    {
        int width = frame.Width, height = frame.Height;
        var planes = new byte[frame.Components.Length][];
        for (int i = 0; i < planes.Length; i++)
            planes[i] = Upsample(frame, frame.Components[i], Samples(frame.Components[i]));
        if (color == JpegColor.Gray)
            return new PngImage(width, height, 1, planes[0], text);

        var pixels = new byte[(long)width * height * 3];
        byte[] first = planes[0], second = planes[1], third = planes[2];
        for (long p = 0; p < (long)width * height; p++)
        {
            int a = first[p], b = second[p], c = third[p];
            if (color is JpegColor.YCbCr or JpegColor.Ycck)
                (a, b, c) = (Clamp(a + CrToR[c]), Clamp(a + ((CbToG[b] + CrToG[c]) >> 16)), Clamp(a + CbToB[b]));
            if (color is JpegColor.Cmyk or JpegColor.Ycck)
            {
                // libjpeg hands CMYK over as stored, YCCK as 255 minus the RGB of its YCC part; Pillow inverts both
                // (it assumes Adobe's inverted CMYK), so the ink it sees is 255 - sample for CMYK and the RGB itself
                // for YCCK, with K's sample as 255 - ink.
                int k = planes[3][p];
                if (color == JpegColor.Cmyk)
                    (a, b, c) = (255 - a, 255 - b, 255 - c);
                (a, b, c) = (k - MulDiv255(a, k), k - MulDiv255(b, k), k - MulDiv255(c, k));
            }
            pixels[3 * p] = (byte)a;
            pixels[3 * p + 1] = (byte)b;
            pixels[3 * p + 2] = (byte)c;
        }
        return new PngImage(width, height, 3, pixels, text);
    }

    /// <summary>The component's samples: every block holding any, IDCT'd into a plane 8 x BlocksWide wide.</summary>
    private static byte[] Samples(JpegComponent c)
    {
        int stride = c.BlocksWide * 8;
        var samples = new byte[(long)stride * c.BlocksHigh * 8];
        for (int by = 0; by < c.BlocksHigh; by++)
        {
            for (int bx = 0; bx < c.BlocksWide; bx++)
                IslowIdct.Transform(c.Block(by, bx), c.Quant, samples.AsSpan(by * 8 * stride + bx * 8), stride);
        }
        return samples;
    }

    /// <summary>The component at the picture's size (width x height bytes).</summary>
    private static byte[] Upsample(JpegFrame frame, JpegComponent c, byte[] samples)
    {
        int width = frame.Width, height = frame.Height, stride = c.BlocksWide * 8;
        int wide = c.SampledWidth, high = c.SampledHeight;
        int hx = frame.MaxH / c.H, vx = frame.MaxV / c.V;
        var output = new byte[(long)width * height];
        for (int y = 0; y < height; y++)
        {
            Span<byte> line = output.AsSpan(y * width, width);
            int row = y / vx;
            ReadOnlySpan<byte> near = samples.AsSpan(row * stride, wide);
            // The row beside: above for the upper output row of a pair, below for the lower, the edge repeated.
            int besideRow = y % 2 == 0 ? Math.Max(row - 1, 0) : Math.Min(row + 1, high - 1);
            ReadOnlySpan<byte> beside = samples.AsSpan(besideRow * stride, wide);
            if (hx == 1 && vx == 1)
                near[..width].CopyTo(line);
            else if (hx == 2 && vx == 1 && wide > 2)
                Triangle(near, line);
            else if (hx == 1 && vx == 2)
                Vertical(near, beside, line, bias: y % 2 == 0 ? 1 : 2);
            else if (hx == 2 && vx == 2 && wide > 2)
                Both(near, beside, line);
            else
                Box(near, line, hx);
        }
        return output;
    }

    /// <summary>2x horizontal: each output 3/4 its nearer input and 1/4 the next farther (jdsample h2v1).</summary>
    private static void Triangle(ReadOnlySpan<byte> input, Span<byte> output)
    {
        int last = input.Length - 1;
        for (int i = 0; i <= last && 2 * i < output.Length; i++)
        {
            int three = 3 * input[i];
            output[2 * i] = (byte)((three + input[Math.Max(i - 1, 0)] + 1) >> 2);
            if (2 * i + 1 < output.Length)
                output[2 * i + 1] = (byte)((three + input[Math.Min(i + 1, last)] + 2) >> 2);
        }
    }

    /// <summary>2x vertical: 3/4 the nearer row and 1/4 the other (jdsample h1v2).</summary>
    private static void Vertical(ReadOnlySpan<byte> near, ReadOnlySpan<byte> beside, Span<byte> output, int bias)
    {
        for (int i = 0; i < output.Length; i++)
            output[i] = (byte)((3 * near[i] + beside[i] + bias) >> 2);
    }

    /// <summary>2x both ways: the vertical 3:1 column sums, then 3:1 across them (jdsample h2v2).</summary>
    private static void Both(ReadOnlySpan<byte> near, ReadOnlySpan<byte> beside, Span<byte> output)
    {
        int last = near.Length - 1;
        for (int i = 0; i <= last && 2 * i < output.Length; i++)
        {
            int sum = 3 * near[i] + beside[i];
            int left = 3 * near[Math.Max(i - 1, 0)] + beside[Math.Max(i - 1, 0)];
            output[2 * i] = (byte)((3 * sum + left + 8) >> 4);
            if (2 * i + 1 < output.Length)
            {
                int right = 3 * near[Math.Min(i + 1, last)] + beside[Math.Min(i + 1, last)];
                output[2 * i + 1] = (byte)((3 * sum + right + 7) >> 4);
            }
        }
    }

    /// <summary>Each input repeated <paramref name="factor"/> times across (rows were repeated by the caller).</summary>
    private static void Box(ReadOnlySpan<byte> input, Span<byte> output, int factor)
    {
        for (int x = 0; x < output.Length; x++)
            output[x] = input[x / factor];
    }

    private static byte Clamp(int value) => (byte)Math.Clamp(value, 0, 255);

    /// <summary>a x b / 255, rounded as Pillow's MULDIV255 rounds it (exact for bytes).</summary>
    private static int MulDiv255(int a, int b)
    {
        int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    }

    private static int[] Table(int multiplier, int add, bool shift)
    {
        var table = new int[256];
        for (int i = 0; i < 256; i++)
        {
            int term = multiplier * (i - 128) + add;
            table[i] = shift ? (term + (1 << 15)) >> 16 : term;
        }
        return table;
    }
}
