namespace Sd.Kernels.Elementwise;

/// <summary>Pillow's resampling filters that Sd's picture paths use.</summary>
public enum PilFilter
{
    /// <summary>Image.LANCZOS: sinc(x) sinc(x / 3) on [-3, 3).</summary>
    Lanczos,

    /// <summary>Image.BICUBIC (Image.resize's default): the cubic convolution with a = -0.5 on (-2, 2).</summary>
    Bicubic,
}

/// <summary>
/// Pillow's 8-bit convolution resize (<c>Image.resize(size, filter)</c> of an RGB or L picture; Resample.c): per
/// axis, each output pixel's taps are the filter's window over the input pixels within its support (widened by
/// the scale when shrinking), normalised to sum to 1 in float64, then rounded to 22-bit fixed point; the picture is
/// resized across (every row), then down (every column of that), each pass summing in integers from a half-unit bias
/// and clamping to 0..255, as Pillow does. An axis whose size does not change is not resampled; a picture of the same
/// size is copied. A source box (Pillow's <c>box=</c>) resamples a region of the picture instead of all of it, an
/// empty one (a row or column edge) too. Bit for bit with Pillow 9.4. Scalar: it runs once per picture (a hires fix's upscale), not per step.
/// </summary>
public static class PilResample
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>
    /// Resizes <paramref name="source"/> (height x width pixels of <paramref name="channels"/> interleaved bytes) into
    /// <paramref name="destination"/> (outHeight x outWidth pixels).
    /// </summary>
    public static void Resize(ReadOnlySpan<byte> source, int height, int width, int channels, Span<byte> destination, int outHeight, int outWidth,
        PilFilter filter = PilFilter.Lanczos) =>
        Resize(source, height, width, channels, destination, outHeight, outWidth, filter, new Box(0, 0, width, height));

    /// <summary>A region of a picture, Pillow's <c>box=(left, top, right, bottom)</c> in whole pixels; empty sides allowed.</summary>
    public readonly record struct Box(int Left, int Top, int Right, int Bottom);

    /// <summary>
    /// Resizes the <paramref name="box"/> of <paramref name="source"/> (height x width pixels of
    /// <paramref name="channels"/> interleaved bytes) into <paramref name="destination"/> (outHeight x outWidth
    /// pixels), as Pillow's <c>resize(size, filter, box)</c>: taps centred in the box, reaching the pixels around it.
    /// </summary>
    public static void Resize(ReadOnlySpan<byte> source, int height, int width, int channels, Span<byte> destination, int outHeight, int outWidth,
        PilFilter filter, Box box)
    {
        CheckSizes(source.Length, height, width, channels, destination.Length, outHeight, outWidth);
        if (!Enum.IsDefined(filter))
        {
            throw new ArgumentOutOfRangeException(nameof(filter), filter, "not Lanczos or Bicubic");
        }
        if (box.Left < 0 || box.Top < 0 || box.Right > width || box.Bottom > height || box.Right < box.Left || box.Bottom < box.Top)
        {
            throw new ArgumentException($"the box {box} is not within the {height}x{width} picture", nameof(box));
        }
        // Pillow's need_horizontal / need_vertical: an axis is resampled unless its box is the whole axis and its size stays.
        bool across = outWidth != width || box.Left != 0 || box.Right != outWidth;
        bool down = outHeight != height || box.Top != 0 || box.Bottom != outHeight;
        if (!across && !down)
        {
            source.CopyTo(destination);
            return;
        }
        // (Pillow crops where a box is the output's size; the taps at whole-pixel offsets are then exact copies, so
        // resampling gives the same bytes.)
        long acrossLength = (long)height * outWidth * channels;
        if (across && down && acrossLength > Array.MaxLength)
        {
            throw new ArgumentException($"resizing {height}x{width}x{channels} to {outHeight}x{outWidth} needs a {height}x{outWidth} intermediate picture, more than an array holds");
        }
        byte[]? acrossRows = null;
        ReadOnlySpan<byte> rows = source;
        if (across)
        {
            // Across every row; Pillow resamples only the rows the vertical pass reads, which gives the same bytes.
            Span<byte> target = !down ? destination : acrossRows = new byte[acrossLength];
            Taps taps = Taps.Of(filter, width, box.Left, box.Right, outWidth);
            for (int y = 0; y < height; y++)
            {
                Pass(source.Slice(y * width * channels, width * channels), channels, target.Slice(y * outWidth * channels, outWidth * channels), channels, channels, taps);
            }
            rows = acrossRows ?? destination;
        }
        if (down)
        {
            // Down the columns: the same sum with whole rows as the pixels, every byte of a row a lane (Pillow's order).
            int stride = outWidth * channels;
            Pass(rows, stride, destination, stride, stride, Taps.Of(filter, height, box.Top, box.Bottom, outHeight));
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
        /// <param name="inSize">The axis's pixels; taps may reach any of them.</param>
        /// <param name="in0">Where the region resampled starts.</param>
        /// <param name="in1">Where it ends (<paramref name="in0"/> for an edge: every output pixel centred on it).</param>
        public static Taps Of(PilFilter filter, int inSize, int in0, int in1, int outSize)
        {
            double scale = (double)(in1 - in0) / outSize, filterScale = Math.Max(scale, 1.0);
            double support = (filter == PilFilter.Lanczos ? 3.0 : 2.0) * filterScale;
            int size = (int)Math.Ceiling(support) * 2 + 1;
            var first = new int[outSize];
            var count = new int[outSize];
            var weights = new int[outSize * size];
            var k = new double[size];
            for (int i = 0; i < outSize; i++)
            {
                double center = in0 + (i + 0.5) * scale, total = 0.0, ss = 1.0 / filterScale;
                // C's (int) casts truncate toward zero, as C#'s do.
                int min = Math.Max((int)(center - support + 0.5), 0);
                int n = Math.Min((int)(center + support + 0.5), inSize) - min;
                for (int j = 0; j < n; j++)
                {
                    double x = (j + min - center + 0.5) * ss;
                    k[j] = filter == PilFilter.Lanczos ? Lanczos(x) : Bicubic(x);
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
        private static double Lanczos(double x) => -3.0 <= x && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0.0;

        /// <summary>bicubic_filter: Keys' cubic convolution with a = -0.5, as Pillow evaluates it.</summary>
        private static double Bicubic(double x)
        {
            const double A = -0.5;
            x = Math.Abs(x);
            return x < 1.0 ? ((A + 2.0) * x - (A + 3.0)) * x * x + 1 : x < 2.0 ? (((x - 5) * x + 8) * x - 4) * A : 0.0;
        }

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
