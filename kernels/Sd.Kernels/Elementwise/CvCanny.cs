namespace Sd.Kernels.Elementwise;

/// <summary>
/// OpenCV 4.6's <c>cv2.Canny(picture, low, high)</c> with its defaults (3x3 Sobel, L1 gradient), the edge maps
/// canny ControlNets are trained on and diffusers' and A1111's canny preprocessors make. Bit for bit:
/// <list type="bullet">
/// <item>the gradient is Sobel's (x: [-1 0 1] by rows [1 2 1]; y its transpose) over the picture replicated at its
/// edges, per channel; a pixel takes the channel of largest |dx| + |dy|, the first on a tie;</item>
/// <item>non-maximum suppression compares that magnitude with its two neighbours across the gradient's direction, told
/// apart in integers by tan 22.5 degrees in 15-bit fixed point, with OpenCV's mix of &gt; and &gt;= (the side it runs
/// from is strict); outside the picture the magnitude is 0;</item>
/// <item>hysteresis keeps the suppressed pixels above <c>floor(low)</c> that are 8-connected to one above
/// <c>floor(high)</c> (the thresholds swapped when low &gt; high).</item>
/// </list>
/// Scalar only: it runs once per picture, not per step (a 512x512 picture takes a few milliseconds), so it has no
/// vector path to keep equal to this one.
/// </summary>
/// Reference: OpenCV 4.6 modules/imgproc/src/canny.cpp (Canny, parallelCanny, finalPass) and deriv.cpp (Sobel with
/// BORDER_REPLICATE).
public static class CvCanny
{
    /// <summary>tan(22.5 degrees) in 15-bit fixed point, rounded as OpenCV's TG22.</summary>
    private const int Shift = 15;
    private const int Tan22 = 13573; // (int)(0.41421356 * 2^15 + 0.5)

    // The map's states, as OpenCV's: a candidate that hysteresis may keep, a pixel that is no edge, and an edge.
    private const byte Candidate = 0, NotEdge = 1, Edge = 2;

    /// <summary>
    /// The edges of <paramref name="pixels"/> (height x width pixels of <paramref name="channels"/> interleaved bytes)
    /// into <paramref name="edges"/> (height x width bytes): 255 on an edge, 0 elsewhere.
    /// </summary>
    public static void Detect(ReadOnlySpan<byte> pixels, int height, int width, int channels, double low, double high, Span<byte> edges)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        long count = (long)height * width;
        if (pixels.Length != count * channels || edges.Length != count)
        {
            throw new ArgumentException($"a {height}x{width} picture of {channels} channels has {count * channels} bytes and {count} edge bytes; got {pixels.Length} and {edges.Length}");
        }
        if (!double.IsFinite(low) || !double.IsFinite(high))
        {
            throw new ArgumentOutOfRangeException(nameof(low), $"the thresholds must be finite numbers, got {low} and {high}");
        }
        if (low > high)
        {
            (low, high) = (high, low);
        }
        // cvFloor; beyond +-2^30 every magnitude (at most 2040) compares the same.
        int lowMagnitude = (int)Math.Floor(Math.Clamp(low, -1e9, 1e9)), highMagnitude = (int)Math.Floor(Math.Clamp(high, -1e9, 1e9));

        int stride = width + 2; // the map and magnitude rows have a border column on either side
        if ((long)(height + 2) * stride > Array.MaxLength)
        {
            throw new ArgumentException($"a {height}x{width} picture is too large for an edge map in one array");
        }
        var map = new byte[(height + 2) * stride];
        map.AsSpan().Fill(NotEdge); // the border stays so; suppression marks every pixel inside
        var magnitude = new int[3 * stride]; // rows i - 2, i - 1 and i, by i mod 3; their border columns stay 0
        var dx = new short[2 * width]; // rows i - 1 and i, by i mod 2
        var dy = new short[2 * width];
        var stack = new Stack<int>(Math.Max(1024, (int)(count / 10)));
        var outside = new int[stride]; // the magnitudes above the first row

        for (int i = 0; i <= height; i++)
        {
            Span<int> below = magnitude.AsSpan(i % 3 * stride + 1, width);
            if (i < height)
            {
                Gradient(pixels, height, width, channels, i, dx.AsSpan(i % 2 * width, width), dy.AsSpan(i % 2 * width, width), below);
            }
            else
            {
                below.Clear(); // below the last row
            }
            if (i > 0)
            {
                int row = i - 1;
                ReadOnlySpan<int> above = row == 0 ? outside : magnitude.AsSpan((row + 2) % 3 * stride, stride);
                Suppress(magnitude.AsSpan(row % 3 * stride, stride), above, magnitude.AsSpan(i % 3 * stride, stride),
                    dx.AsSpan(row % 2 * width, width), dy.AsSpan(row % 2 * width, width), lowMagnitude, highMagnitude,
                    map, (row + 1) * stride + 1, stride, stack);
            }
        }
        Hysteresis(map, stride, stack);
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                edges[y * width + x] = map[(y + 1) * stride + x + 1] == Edge ? (byte)255 : (byte)0;
            }
        }
    }

    /// <summary>
    /// Row <paramref name="y"/>'s Sobel gradients (rows above and below replicated at the picture's edges) of the
    /// channel with the largest |dx| + |dy| per pixel, and that magnitude.
    /// </summary>
    private static void Gradient(ReadOnlySpan<byte> pixels, int height, int width, int channels, int y, Span<short> dx, Span<short> dy, Span<int> magnitude)
    {
        int rowBytes = width * channels;
        ReadOnlySpan<byte> up = pixels.Slice(Math.Max(y - 1, 0) * rowBytes, rowBytes);
        ReadOnlySpan<byte> middle = pixels.Slice(y * rowBytes, rowBytes);
        ReadOnlySpan<byte> down = pixels.Slice(Math.Min(y + 1, height - 1) * rowBytes, rowBytes);
        for (int x = 0; x < width; x++)
        {
            int left = Math.Max(x - 1, 0) * channels, centre = x * channels, right = Math.Min(x + 1, width - 1) * channels;
            int best = -1;
            for (int c = 0; c < channels; c++)
            {
                int gx = up[right + c] - up[left + c] + 2 * (middle[right + c] - middle[left + c]) + down[right + c] - down[left + c];
                int gy = down[left + c] - up[left + c] + 2 * (down[centre + c] - up[centre + c]) + down[right + c] - up[right + c];
                int m = Math.Abs(gx) + Math.Abs(gy);
                if (m > best) // strictly: the first channel wins a tie
                {
                    best = m;
                    dx[x] = (short)gx;
                    dy[x] = (short)gy;
                }
            }
            magnitude[x] = best;
        }
    }

    /// <summary>
    /// Non-maximum suppression of one row (<paramref name="middle"/>, with its neighbours <paramref name="above"/> and
    /// <paramref name="below"/>; each row with its border columns), marking the map from <paramref name="start"/>:
    /// strong survivors are edges that seed hysteresis, the others candidates. As OpenCV's sequential Canny, a strong
    /// pixel next to an edge (the one before it in the row, or above) is left a candidate, which hysteresis joins to
    /// that edge all the same: 4.6's parallel version seeds every strong pixel, with the same edges.
    /// </summary>
    private static void Suppress(ReadOnlySpan<int> middle, ReadOnlySpan<int> above, ReadOnlySpan<int> below, ReadOnlySpan<short> dx, ReadOnlySpan<short> dy,
        int low, int high, byte[] map, int start, int stride, Stack<int> stack)
    {
        bool previousPushed = false;
        for (int x = 0; x < dx.Length; x++)
        {
            int j = x + 1; // in the bordered rows
            int m = middle[j];
            bool maximum = false;
            if (m > low)
            {
                int xs = dx[x], ys = dy[x];
                int ax = Math.Abs(xs), ay = Math.Abs(ys) << Shift;
                int tan22 = ax * Tan22;
                if (ay < tan22)
                {
                    maximum = m > middle[j - 1] && m >= middle[j + 1]; // gradient along the row
                }
                else if (ay > tan22 + (ax << (Shift + 1))) // tan 67.5 = tan 22.5 + 2
                {
                    maximum = m > above[j] && m >= below[j]; // gradient down the column
                }
                else
                {
                    int s = (xs ^ ys) < 0 ? -1 : 1; // the diagonal the gradient runs along
                    maximum = m > above[j - s] && m > below[j + s];
                }
            }
            int at = start + x;
            if (!maximum)
            {
                previousPushed = false;
                map[at] = NotEdge;
            }
            else if (!previousPushed && m > high && map[at - stride] != Edge)
            {
                map[at] = Edge;
                stack.Push(at);
                previousPushed = true;
            }
            else
            {
                map[at] = Candidate;
            }
        }
    }

    /// <summary>Grows the edges into every candidate 8-connected to one; the map's border is never a candidate.</summary>
    private static void Hysteresis(byte[] map, int stride, Stack<int> stack)
    {
        ReadOnlySpan<int> neighbours = [-1, 1, -stride - 1, -stride, -stride + 1, stride - 1, stride, stride + 1];
        while (stack.TryPop(out int at))
        {
            foreach (int step in neighbours)
            {
                if (map[at + step] == Candidate)
                {
                    map[at + step] = Edge;
                    stack.Push(at + step);
                }
            }
        }
    }
}
