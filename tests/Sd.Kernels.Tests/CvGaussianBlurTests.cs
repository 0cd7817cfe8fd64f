using System.Text.Json;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>
/// The one-axis 8-bit Gaussian blur against OpenCV 4.6's cv2.GaussianBlur (Data/gaussian-blur-reference.json from
/// gaussian-blur-reference.py: A1111's mask blur kernels for eleven sigmas from 1 to 64 and other sizes, across the rows and down
/// the columns, masks, noise and lone pixels, pictures narrower than the kernel): bit for bit, by the fast path and by
/// the scalar reference.
/// </summary>
public sealed class CvGaussianBlurTests
{
    [Fact]
    public void Every_case_matches_opencv_bit_for_bit()
    {
        string file = Path.Combine(Path.GetDirectoryName(typeof(CvGaussianBlurTests).Assembly.Location)!, "Data", "gaussian-blur-reference.json");
        using var reference = JsonDocument.Parse(File.ReadAllText(file));
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            int h = c.GetProperty("size")[0].GetInt32(), w = c.GetProperty("size")[1].GetInt32();
            bool across = c.GetProperty("across").GetBoolean();
            int[] taps = CvGaussianBlur.Taps(c.GetProperty("taps").GetInt32(), c.GetProperty("sigma").GetDouble());
            byte[] x = System.Convert.FromBase64String(c.GetProperty("x").GetString()!), expected = System.Convert.FromBase64String(c.GetProperty("y").GetString()!);
            var fast = new byte[x.Length];
            var scalar = new byte[x.Length];
            CvGaussianBlur.Blur(x, fast, h, w, across, taps);
            CvGaussianBlur.Blur_Scalar(x, scalar, h, w, across, taps);
            string name = $"{h}x{w} {taps.Length} taps sigma {c.GetProperty("sigma").GetDouble()} {(across ? "across" : "down")}";
            Assert.True(expected.AsSpan().SequenceEqual(scalar), $"{name}, scalar: first difference at byte {expected.AsSpan().CommonPrefixLength(scalar)}");
            Assert.True(expected.AsSpan().SequenceEqual(fast), $"{name}: first difference at byte {expected.AsSpan().CommonPrefixLength(fast)}");
            cases++;
        }
        Assert.Equal(28, cases);
    }

    [Fact]
    public void Taps_sum_to_one_in_fixed_point_and_carry_their_rounding()
    {
        // A1111's blur 4: 21 taps. The sides are rounded with the error carried, the centre takes the rest.
        int[] taps = CvGaussianBlur.Taps(21, 4);
        Assert.Equal(256, taps.Sum());
        Assert.Equal(taps, taps.Reverse());
        Assert.True(taps[10] > taps[9] && taps[0] > 0);
        Assert.Equal([256], CvGaussianBlur.Taps(1, 3));
        // One tap rounding 0.5 (half to even) would be 0 or 1; the error carried makes the next tap pick it up.
        Assert.Equal(256, CvGaussianBlur.Taps(321, 64).Sum());
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CvGaussianBlur.Taps(4, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => CvGaussianBlur.Taps(0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => CvGaussianBlur.Taps(5, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => CvGaussianBlur.Taps(5, double.NaN));
        var x = new byte[6];
        Assert.Throws<ArgumentException>(() => CvGaussianBlur.Blur(x, new byte[5], 2, 3, true, [256]));
        Assert.Throws<ArgumentException>(() => CvGaussianBlur.Blur(x, new byte[6], 3, 3, true, [256]));
        Assert.Throws<ArgumentException>(() => CvGaussianBlur.Blur(x, new byte[6], 2, 3, true, [128, 128]));
        Assert.Throws<ArgumentException>(() => CvGaussianBlur.Blur(x, new byte[6], 2, 3, true, [64, 64, 64]));
        Assert.Throws<ArgumentException>(() => CvGaussianBlur.Blur(x, new byte[6], 2, 3, true, [-1, 258, -1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => CvGaussianBlur.Blur([], [], 0, 3, true, [256]));
    }
}
