using System.Text.Json;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>
/// The 8-bit resize against Pillow 9.4's Image.resize(size, filter, box) (Data/resample-reference.json from
/// resample-reference.py: RGB and L pictures up, down, one axis only and to uneven sizes, with flat areas whose ringing
/// is clamped, by Lanczos and bicubic, whole and by regions, empty edge regions included): bit for bit.
/// </summary>
public sealed class PilResampleTests
{
    [Fact]
    public void Every_case_matches_pillow_bit_for_bit()
    {
        string file = Path.Combine(Path.GetDirectoryName(typeof(PilResampleTests).Assembly.Location)!, "Data", "resample-reference.json");
        using var reference = JsonDocument.Parse(File.ReadAllText(file));
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            int channels = c.GetProperty("channels").GetInt32();
            int h = c.GetProperty("in")[0].GetInt32(), w = c.GetProperty("in")[1].GetInt32();
            int oh = c.GetProperty("out")[0].GetInt32(), ow = c.GetProperty("out")[1].GetInt32();
            byte[] x = System.Convert.FromBase64String(c.GetProperty("x").GetString()!), expected = System.Convert.FromBase64String(c.GetProperty("y").GetString()!);
            var y = new byte[expected.Length];
            PilFilter filter = c.GetProperty("filter").GetString() == "bicubic" ? PilFilter.Bicubic : PilFilter.Lanczos;
            var box = new PilResample.Box(0, 0, w, h);
            if (c.TryGetProperty("box", out JsonElement b) && b.ValueKind == JsonValueKind.Array)
            {
                box = new PilResample.Box(b[0].GetInt32(), b[1].GetInt32(), b[2].GetInt32(), b[3].GetInt32());
            }
            PilResample.Resize(x, h, w, channels, y, oh, ow, filter, box);
            Assert.True(expected.AsSpan().SequenceEqual(y), $"{h}x{w}x{channels} {filter} {box} to {oh}x{ow}: first difference at byte {expected.AsSpan().CommonPrefixLength(y)}");
            cases++;
        }
        Assert.Equal(22, cases);
    }

    [Fact]
    public void The_same_size_is_a_copy_and_wrong_lengths_are_refused()
    {
        byte[] x = [1, 2, 3, 4, 5, 6];
        var y = new byte[6];
        PilResample.Resize(x, 1, 2, 3, y, 1, 2);
        Assert.Equal(x, y);
        Assert.Throws<ArgumentException>(() => PilResample.Resize(x, 2, 2, 3, y, 1, 2));
        Assert.Throws<ArgumentException>(() => PilResample.Resize(x, 1, 2, 3, new byte[5], 1, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => PilResample.Resize(x, 1, 2, 3, y, 0, 2));
        // Boxes outside the picture or turned inside out, and filters Sd does not have.
        foreach (PilResample.Box box in new PilResample.Box[] { new(-1, 0, 2, 1), new(0, 0, 3, 1), new(0, 0, 2, 2), new(2, 0, 1, 1), new(0, 1, 2, 0) })
        {
            Assert.Throws<ArgumentException>(() => PilResample.Resize(x, 1, 2, 3, y, 1, 2, PilFilter.Lanczos, box));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => PilResample.Resize(x, 1, 2, 3, y, 1, 2, (PilFilter)2, new PilResample.Box(0, 0, 2, 1)));
        // A tall sliver to a wide line: the across pass would hold 70000 x 40000 bytes, more than an array can.
        Assert.Contains("more than an array holds", Assert.Throws<ArgumentException>(() =>
            PilResample.Resize(new byte[70000], 70000, 1, 1, new byte[40000], 1, 40000)).Message);
    }
}
