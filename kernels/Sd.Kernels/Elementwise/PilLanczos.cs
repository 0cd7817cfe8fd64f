namespace Sd.Kernels.Elementwise;

/// <summary>
/// Pillow's 8-bit Lanczos resize (<c>Image.resize(size, Image.LANCZOS)</c> of an RGB or L picture; Resample.c): per
/// axis, each output pixel's taps are the a = 3 Lanczos window over the input pixels within its support (widened by
/// the scale when shrinking), normalised to sum to 1 in float64, then rounded to 22-bit fixed point; the picture is
/// resized across (every row), then down (every column of that), each pass summing in integers from a half-unit bias
/// and clamping to 0..255, as Pillow does. An axis whose size does not change is not resampled; a picture of the same
/// size is copied. Bit for bit with Pillow 9.4. Scalar: it runs once per picture (a hires fix's upscale), not per step.
/// </summary>
public static class PilLanczos
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>
    /// Resizes <paramref name="source"/> (height x width pixels of <paramref name="channels"/> interleaved bytes) into
    /// <paramref name="destination"/> (outHeight x outWidth pixels).
    /// </summary>
    public static void Resize(ReadOnlySpan<byte> source, int height, int width, int channels, Span<byte> destination, int outHeight, int outWidth)
    {
        CheckSizes(source.Length, height, width, channels, destination.Length, outHeight, outWidth);
        if (outWidth == width && outHeight == height)
        {
            source.CopyTo(destination);
            return;
        }
        byte[]? across = null;
        ReadOnlySpan<byte> rows = source;
        if (outWidth != width)
        {
            // Across every row; Pillow resamples only the rows the vertical pass reads, which gives the same bytes.
            Span<byte> target = outHeight == height ? destination : across = new byte[height * outWidth * channels];
            Taps taps = Taps.Of(width, outWidth);
            for (int y = 0; y < height; y++)
            {
                Pass(source.Slice(y * width * channels, width * channels), channels, target.Slice(y * outWidth * channels, outWidth * channels), channels, channels, taps);
            }
            rows = across ?? destination;
        }
        if (outHeight != height)
        {
            // Down the columns: the same sum with whole rows as the pixels, every byte of a row a lane (Pillow's order).
            int stride = outWidth * channels;
            Pass(rows, stride, destination, stride, stride, Taps.Of(height, outHeight));
        }
    }

    /// <summary>
    /// One axis: output pixel i is the clamped fixed-point sum of its taps over the input pixels from its first, each
    /// <paramref name="inStride"/> bytes apart; <paramref name="lanes"/> bytes side by side (a pixel's channels across
    /// a row, a whole row down the columns).
    /// </summary>
    private static void Pass(ReadOnlySpan<byte> input, int inStride, Span<byte> output, int outStride, int lanes, Taps taps)
    {
        for (int i = 0; i < taps.First.Length; i++)
        {
            int first = taps.First[i], n = taps.Count[i];
            ReadOnlySpan<int> k = taps.Weights.AsSpan(i * taps.Size, n);
            for (int c = 0; c < lanes; c++)
            {
                int sum = 1 << (PrecisionBits - 1);
                for (int j = 0; j < n; j++)
                {
                    sum += input[(first + j) * inStride + c] * k[j];
                }
                output[i * outStride + c] = Clip8(sum);
            }
        }
    }

    /// <summary>Throws unless both sizes are positive and the buffers hold exactly those pictures (Pillow's resizes share it).</summary>
    internal static void CheckSizes(int sourceLength, int height, int width, int channels, int destinationLength, int outHeight, int outWidth)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outWidth, 1);
        if (sourceLength != (long)height * width * channels || destinationLength != (long)outHeight * outWidth * channels)
        {
            throw new ArgumentException($"a {height}x{width}x{channels} picture resized to {outHeight}x{outWidth} needs {(long)height * width * channels} and {(long)outHeight * outWidth * channels} bytes; got {sourceLength} and {destinationLength}");
        }
    }

    private static byte Clip8(int sum) => sum >= 1 << PrecisionBits << 8 ? (byte)255 : sum <= 0 ? (byte)0 : (byte)(sum >> PrecisionBits);

    /// <summary>Pillow's precompute_coeffs and normalize_coeffs_8bpc for one axis.</summary>
    private sealed record Taps(int[] First, int[] Count, int[] Weights, int Size)
    {
        public static Taps Of(int inSize, int outSize)
        {
            double scale = (double)inSize / outSize, filterScale = Math.Max(scale, 1.0);
            double support = 3.0 * filterScale;
            int size = (int)Math.Ceiling(support) * 2 + 1;
            var first = new int[outSize];
            var count = new int[outSize];
            var weights = new int[outSize * size];
            var k = new double[size];
            for (int i = 0; i < outSize; i++)
            {
                double center = (i + 0.5) * scale, total = 0.0, ss = 1.0 / filterScale;
                // C's (int) casts truncate toward zero, as C#'s do.
                int min = Math.Max((int)(center - support + 0.5), 0);
                int n = Math.Min((int)(center + support + 0.5), inSize) - min;
                for (int j = 0; j < n; j++)
                {
                    k[j] = Window((j + min - center + 0.5) * ss);
                    total += k[j];
                }
                for (int j = 0; j < n; j++)
                {
                    double w = total != 0.0 ? k[j] / total : k[j];
                    weights[i * size + j] = (int)(w < 0 ? -0.5 + w * (1 << PrecisionBits) : 0.5 + w * (1 << PrecisionBits));
                }
                first[i] = min;
                count[i] = n;
            }
            return new Taps(first, count, weights, size);
        }

        /// <summary>lanczos_filter: sinc(x) sinc(x / 3) on [-3, 3).</summary>
        private static double Window(double x) => -3.0 <= x && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0.0;

        private static double Sinc(double x)
        {
            if (x == 0.0)
            {
                return 1.0;
            }
            x *= Math.PI;
            return Math.Sin(x) / x;
        }
    }
}
