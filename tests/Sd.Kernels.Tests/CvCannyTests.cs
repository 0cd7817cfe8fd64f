using System.Text.Json;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>
/// Canny edges against OpenCV 4.6's cv2.Canny (Data/canny-reference.json from canny-reference.py): synthetic scenes
/// in RGB, gray and four channels, noise, channels whose magnitudes tie, thresholds swapped, fractional and 0, and
/// pictures of one pixel, row or column; bit for bit.
/// </summary>
public sealed class CvCannyTests
{
    [Fact]
    public void Every_case_matches_opencv_bit_for_bit()
    {
        string file = Path.Combine(Path.GetDirectoryName(typeof(CvCannyTests).Assembly.Location)!, "Data", "canny-reference.json");
        using var reference = JsonDocument.Parse(File.ReadAllText(file));
        JsonElement pictures = reference.RootElement.GetProperty("pictures");
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            JsonElement picture = pictures.GetProperty(c.GetProperty("picture").GetString()!);
            int h = picture.GetProperty("size")[0].GetInt32(), w = picture.GetProperty("size")[1].GetInt32();
            byte[] x = System.Convert.FromBase64String(picture.GetProperty("x").GetString()!);
            byte[] bits = System.Convert.FromBase64String(c.GetProperty("edges").GetString()!);
            var expected = new byte[h * w];
            for (int i = 0; i < expected.Length; i++) expected[i] = (bits[i / 8] >> (7 - i % 8) & 1) != 0 ? (byte)255 : (byte)0;
            var edges = new byte[h * w];
            CvCanny.Detect(x, h, w, picture.GetProperty("channels").GetInt32(), c.GetProperty("low").GetDouble(), c.GetProperty("high").GetDouble(), edges);
            int first = expected.AsSpan().CommonPrefixLength(edges);
            Assert.True(first == edges.Length, $"{c.GetProperty("name").GetString()}: first difference at pixel ({first / w}, {first % w})");
            cases++;
        }
        Assert.Equal(14, cases);
    }

    [Fact]
    public void A_step_gives_one_line_of_edges_and_a_flat_picture_none()
    {
        // A vertical step from 0 to 200 between columns 3 and 4: both columns have the same magnitude (800), and the
        // strict comparison on the left keeps the left one only.
        const int h = 6, w = 8;
        var step = new byte[h * w];
        for (int y = 0; y < h; y++) for (int x = 4; x < w; x++) step[y * w + x] = 200;
        var edges = new byte[h * w];
        CvCanny.Detect(step, h, w, 1, 100, 200, edges);
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) Assert.Equal(x == 3 ? 255 : 0, edges[y * w + x]);
        CvCanny.Detect(new byte[h * w], h, w, 1, 0, 0, edges);
        Assert.All(edges, e => Assert.Equal(0, e));
    }

    [Fact]
    public void Hysteresis_keeps_weak_edges_only_when_joined_to_a_strong_one()
    {
        // Two vertical steps down the whole picture, apart: a strong one (magnitude 4 x 100) and a weak one (4 x 40).
        // The weak one is above the low threshold but joined to no strong pixel, so it is dropped.
        const int h = 5, w = 12;
        var picture = new byte[h * w];
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) picture[y * w + x] = (byte)(x >= 3 ? 100 : 0);
        for (int y = 0; y < h; y++) for (int x = 8; x < w; x++) picture[y * w + x] += 40;
        var edges = new byte[h * w];
        CvCanny.Detect(picture, h, w, 1, 100, 300, edges); // strong: 400 > 300; weak: 160, above 100
        for (int y = 0; y < h; y++)
        {
            Assert.Equal(255, edges[y * w + 2]);
            Assert.Equal(0, edges[y * w + 7]); // weak and not joined
        }
        CvCanny.Detect(picture, h, w, 1, 100, 150, edges); // now the weak step is strong on its own
        for (int y = 0; y < h; y++) Assert.Equal(255, edges[y * w + 7]);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var edges = new byte[6];
        Assert.Throws<ArgumentException>(() => CvCanny.Detect(new byte[17], 2, 3, 3, 1, 2, edges));
        Assert.Throws<ArgumentException>(() => CvCanny.Detect(new byte[18], 2, 3, 3, 1, 2, new byte[5]));
        Assert.Throws<ArgumentOutOfRangeException>(() => CvCanny.Detect(new byte[18], 2, 3, 3, double.NaN, 2, edges));
        Assert.Throws<ArgumentOutOfRangeException>(() => CvCanny.Detect(new byte[18], 2, 3, 3, 1, double.PositiveInfinity, edges));
        Assert.Throws<ArgumentOutOfRangeException>(() => CvCanny.Detect(new byte[0], 0, 3, 3, 1, 2, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => CvCanny.Detect(new byte[6], 2, 3, 0, 1, 2, edges));
    }
}
