namespace Sd.Engine.Imaging;

/// <summary>
/// Pillow 9.4's ImageFilter.GaussianBlur on 8-bit pictures, byte for byte: not a true Gaussian but three passes of an
/// "extended" box blur (a box of fractional radius: whole pixels inside, the two edge pixels weighted by the
/// fraction; Gwosdek et al. 2011) across each row, then the same down each column, in 24-bit fixed point with the last
/// pixel repeated past each edge. Every channel is blurred alone (a premultiplied RGBa picture's alpha too).
/// Runs once per picture (A1111's masked content "fill"), not per step: a plain scalar loop.
/// </summary>
/// Reference: Pillow 9.4 libImaging/BoxBlur.c (ImagingGaussianBlur, _gaussian_blur_radius, ImagingBoxBlur,
/// ImagingHorizontalBoxBlur, ImagingLineBoxBlur32/8).
internal static class PilGaussianBlur
{
    private const int Passes = 3;

    /// <summary>
    /// The box radius whose <paramref name="passes"/> passes have the variance of a Gaussian of standard deviation
    /// <paramref name="radius"/>, in C's single-precision float arithmetic as Pillow computes it.
    /// </summary>
    public static float BoxRadius(float radius, int passes)
    {
        float sigma2 = radius * radius / passes;
        float length = (float)Math.Sqrt(12.0 * sigma2 + 1.0);
        float whole = (float)Math.Floor((length - 1.0) / 2.0);
        float fraction = (2 * whole + 1) * (whole * (whole + 1) - 3 * sigma2);
        fraction /= 6 * (sigma2 - (whole + 1) * (whole + 1));
        return whole + fraction;
    }

    /// <summary>The blurred copy of <paramref name="pixels"/> ([H, W, channels], interleaved).</summary>
    public static byte[] Blur(ReadOnlySpan<byte> pixels, int width, int height, int channels, float radius)
    {
        float box = BoxRadius(radius, Passes);
        byte[] rows = pixels.ToArray();
        BlurRows(rows, width, height, channels, box);
        byte[] columns = Transpose(rows, width, height, channels);
        BlurRows(columns, height, width, channels, box);
        return Transpose(columns, height, width, channels);
    }

    /// <summary>Three box passes along every row of <paramref name="pixels"/> in place.</summary>
    private static void BlurRows(byte[] pixels, int width, int height, int channels, float box)
    {
        int radius = (int)box;
        uint ww = (uint)((1 << 24) / (box * 2 + 1));
        uint fw = ((1u << 24) - (uint)(radius * 2 + 1) * ww) / 2;
        var line = new byte[width * channels];
        for (int pass = 0; pass < Passes; pass++)
        {
            for (int y = 0; y < height; y++)
            {
                Span<byte> row = pixels.AsSpan(y * width * channels, width * channels);
                for (int c = 0; c < channels; c++)
                    Line(row, line, width, channels, c, radius, ww, fw);
                line.CopyTo(row);
            }
        }
    }

    /// <summary>
    /// Channel <paramref name="c"/> of one row: a running sum over radius pixels each side (the row's ends repeated
    /// beyond them) weighted by <paramref name="ww"/>, plus the two pixels just outside weighted by
    /// <paramref name="fw"/>: 2^24 / (2 box + 1) each, and the rest of 2^24 split between the outer two. The window's
    /// ends are clamped to the row (both at once when it is wider than the row); uint arithmetic wraps as C's.
    /// </summary>
    private static void Line(ReadOnlySpan<byte> input, Span<byte> output, int width, int channels, int c, int radius, uint ww, uint fw)
    {
        int last = width - 1;
        int edgeA = Math.Min(radius + 1, width), edgeB = Math.Max(width - radius - 1, 0);
        uint acc = (uint)(input[c] * (radius + 1));
        for (int x = 0; x < edgeA - 1; x++)
            acc += input[x * channels + c];
        acc += (uint)(input[last * channels + c] * (radius - edgeA + 1));
        for (int x = 0; x <= last; x++)
        {
            int leaving = (x < edgeA ? 0 : x - radius - 1) * channels + c;
            int entering = (x < edgeB ? x + radius : last) * channels + c;
            int outside = (x < edgeB ? x + radius + 1 : last) * channels + c;
            acc += (uint)(input[entering] - input[leaving]);
            uint bulk = acc * ww + (uint)(input[leaving] + input[outside]) * fw;
            output[x * channels + c] = (byte)((bulk + (1u << 23)) >> 24);
        }
    }

    private static byte[] Transpose(byte[] pixels, int width, int height, int channels)
    {
        var transposed = new byte[pixels.Length];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
                pixels.AsSpan((y * width + x) * channels, channels).CopyTo(transposed.AsSpan((x * height + y) * channels));
        }
        return transposed;
    }
}
