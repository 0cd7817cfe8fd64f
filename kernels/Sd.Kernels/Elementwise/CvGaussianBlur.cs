using System.Runtime.Intrinsics;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// OpenCV 4.6's <c>cv2.GaussianBlur</c> of an 8-bit gray picture along one axis (ksize (n, 1) across the rows or
/// (1, n) down the columns), as A1111 blurs its inpainting masks. For 8-bit pictures OpenCV runs a bit-exact
/// fixed-point filter: the Gaussian's taps in units of 1/256 (<see cref="Taps"/>), summed over the picture reflected
/// at its edges (BORDER_REFLECT_101: ...cb|abc...), and the sum rounded half up to a byte, (sum + 128) &gt;&gt; 8. The sums
/// are integers below 2^16, so float lanes hold them exactly and the vector path equals the scalar reference bit for
/// bit. Runs once per mask.
/// </summary>
/// Reference: OpenCV 4.6 modules/imgproc/src/smooth.dispatch.cpp (getGaussianKernelBitExact,
/// getGaussianKernelFixedPoint_ED, GaussianBlur's CV_8U branch) and smooth.simd.hpp (the ufixedpoint16 row and column
/// passes); borderInterpolate for BORDER_REFLECT_101.
public static unsafe class CvGaussianBlur
{
    /// <summary>One tap's unit: OpenCV's ufixedpoint16 has 8 fraction bits.</summary>
    private const int One = 256;

    private static readonly delegate*<float*, int, int*, float*, int, float*, void> DownKernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &Down<Vector512<float>, F32x16>,
        SimdLevel.Vector256 => &Down<Vector256<float>, F32x8>,
        _ => &DownScalar,
    };

    /// <summary>
    /// OpenCV's fixed-point Gaussian of <paramref name="size"/> taps (odd) and standard deviation
    /// <paramref name="sigma"/> (&gt; 0): the double kernel exp(-x^2 / (2 sigma^2)) normalised to sum 1, each side tap
    /// scaled by 256 and rounded (half to even) with the rounding error carried to the next tap, and the centre tap
    /// whatever makes the sum exactly 256.
    /// </summary>
    public static int[] Taps(int size, double sigma)
    {
        if (size < 1 || size % 2 == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "a Gaussian kernel has an odd number of taps");
        }
        if (!(sigma > 0) || !double.IsFinite(sigma))
        {
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "the standard deviation must be a finite number above 0");
        }
        int half = size / 2;
        double scale = -0.125 / (sigma * sigma); // x runs over 2 x the offset, so -1 / (2 sigma^2) / 4
        var values = new double[half];
        double sum = 0;
        for (int i = 0, x = 1 - size; i < half; i++, x += 2)
        {
            values[i] = Math.Exp((double)x * x * scale);
            sum += values[i];
        }
        double reciprocal = 1 / (sum * 2 + 1); // the centre's value is exp(0) = 1
        var taps = new int[size];
        double error = 0;
        int sides = 0;
        for (int i = 0; i < half; i++)
        {
            double adjusted = values[i] * reciprocal * One + error;
            int tap = (int)Math.Round(adjusted, MidpointRounding.ToEven); // cvRound
            error = adjusted - tap;
            taps[i] = taps[size - 1 - i] = tap;
            sides += tap;
        }
        taps[half] = One - 2 * sides;
        return taps;
    }

    /// <summary>
    /// Blurs <paramref name="source"/> (height x width bytes) into <paramref name="destination"/> along one axis:
    /// across each row (<paramref name="across"/>, cv2's ksize (n, 1)) or down each column (ksize (1, n)).
    /// </summary>
    public static void Blur(ReadOnlySpan<byte> source, Span<byte> destination, int height, int width, bool across, ReadOnlySpan<int> taps) =>
        Run(source, destination, height, width, across, taps);

    /// <summary>The scalar reference of <see cref="Blur"/>, summing bytes in integers: the tests' oracle.</summary>
    public static void Blur_Scalar(ReadOnlySpan<byte> source, Span<byte> destination, int height, int width, bool across, ReadOnlySpan<int> taps)
    {
        Check(source.Length, destination.Length, height, width, taps);
        int lines = across ? height : width, length = across ? width : height;
        int along = across ? 1 : width, next = across ? width : 1; // steps between a line's pixels, and between lines
        int half = taps.Length / 2;
        for (int line = 0; line < lines; line++)
        {
            for (int p = 0; p < length; p++)
            {
                int sum = 0;
                for (int i = 0; i < taps.Length; i++)
                {
                    sum += taps[i] * source[line * next + Reflect101(p + i - half, length) * along];
                }
                destination[line * next + p * along] = (byte)((sum + One / 2) >> 8);
            }
        }
    }

    /// <summary>OpenCV's borderInterpolate for BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), repeated for short lines.</summary>
    private static int Reflect101(int p, int length)
    {
        if (length == 1)
        {
            return 0;
        }
        while ((uint)p >= (uint)length)
        {
            p = p < 0 ? -p : 2 * length - 2 - p;
        }
        return p;
    }

    private static void Check(int sourceLength, int destinationLength, int height, int width, ReadOnlySpan<int> taps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        long pixels = (long)height * width;
        if (sourceLength != pixels || destinationLength != pixels)
        {
            throw new ArgumentException($"a {height}x{width} picture has {pixels} bytes; got {sourceLength} in and {destinationLength} out");
        }
        int sum = 0;
        foreach (int tap in taps)
        {
            if (tap is < 0 or > One)
            {
                throw new ArgumentException($"taps are in [0, {One}], got {tap}", nameof(taps));
            }
            sum += tap;
        }
        if (taps.Length % 2 == 0 || sum != One)
        {
            throw new ArgumentException($"the taps must be an odd number summing to {One} (got {taps.Length} summing to {sum})", nameof(taps));
        }
    }

    /// <summary>
    /// The picture as floats laid out so the blur runs down columns (transposed when it runs across rows), the
    /// column pass, then the rounded bytes written back in the picture's layout.
    /// </summary>
    private static void Run(ReadOnlySpan<byte> source, Span<byte> destination, int height, int width, bool across, ReadOnlySpan<int> taps)
    {
        Check(source.Length, destination.Length, height, width, taps);
        int rows = across ? width : height, columns = across ? height : width; // of the laid-out matrix
        int half = taps.Length / 2;
        // Each output row reads rows y + i - half; rowOf[y + i] is that row, reflected.
        var rowOf = new int[rows + taps.Length - 1];
        for (int j = 0; j < rowOf.Length; j++) rowOf[j] = Reflect101(j - half, rows);
        // The non-zero taps only: a wide kernel's tails round to 0.
        var weights = new float[taps.Length];
        var offsets = new int[taps.Length];
        int count = 0;
        for (int i = 0; i < taps.Length; i++)
        {
            if (taps[i] != 0)
            {
                weights[count] = taps[i];
                offsets[count++] = i;
            }
        }
        var laid = new float[(long)rows * columns];
        var sums = new float[(long)rows * columns];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                laid[across ? (long)x * height + y : (long)y * width + x] = source[y * width + x];
            }
        }
        var inputRows = new int[count];
        fixed (float* input = laid, output = sums, w = weights)
        fixed (int* rowsRead = inputRows)
        {
            for (int y = 0; y < rows; y++)
            {
                for (int t = 0; t < count; t++) rowsRead[t] = rowOf[y + offsets[t]];
                DownKernel(input, columns, rowsRead, w, count, output + (long)y * columns);
            }
        }
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                float sum = sums[across ? (long)x * height + y : (long)y * width + x];
                destination[y * width + x] = (byte)(((int)sum + One / 2) >> 8);
            }
        }
    }

    /// <summary>One output row: the sum over t &lt; count of weights[t] x input row rowsRead[t], over all columns.</summary>
    private static void DownScalar(float* input, int columns, int* rowsRead, float* weights, int count, float* output)
    {
        for (int x = 0; x < columns; x++)
        {
            float sum = 0;
            for (int t = 0; t < count; t++)
            {
                sum += weights[t] * input[(long)rowsRead[t] * columns + x];
            }
            output[x] = sum;
        }
    }

    /// <summary>
    /// <see cref="DownScalar"/> a vector of columns at a time; the last vector overlaps the one before it (the sums
    /// are exact, so columns done twice come out the same), and rows narrower than a vector take the scalar loop.
    /// </summary>
    private static void Down<TVec, V>(float* input, int columns, int* rowsRead, float* weights, int count, float* output)
        where TVec : struct
        where V : IF32Vector<TVec>
    {
        if (columns < V.Count)
        {
            DownScalar(input, columns, rowsRead, weights, count, output);
            return;
        }
        for (int x = 0; ; x += V.Count)
        {
            x = Math.Min(x, columns - V.Count);
            TVec sum = V.Zero;
            for (int t = 0; t < count; t++)
            {
                sum = V.FusedMultiplyAdd(V.Create(weights[t]), V.Load(input + (long)rowsRead[t] * columns + x), sum);
            }
            V.Store(sum, output + x);
            if (x == columns - V.Count)
            {
                return;
            }
        }
    }
}
