using System.Text.Json;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>
/// The 8-bit Lanczos resize against Pillow 9.4's Image.resize(size, LANCZOS) (Data/lanczos-reference.json from
/// lanczos-reference.py: RGB and L pictures up, down, one axis only and to uneven sizes, with flat areas whose ringing
/// is clamped): bit for bit.
/// </summary>
public sealed class PilLanczosTests
{
    [Fact]
    public void Every_case_matches_pillow_bit_for_bit()
    {
        string file = Path.Combine(Path.GetDirectoryName(typeof(PilLanczosTests).Assembly.Location)!, "Data", "lanczos-reference.json");
        using var reference = JsonDocument.Parse(File.ReadAllText(file));
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            int channels = c.GetProperty("channels").GetInt32();
            int h = c.GetProperty("in")[0].GetInt32(), w = c.GetProperty("in")[1].GetInt32();
            int oh = c.GetProperty("out")[0].GetInt32(), ow = c.GetProperty("out")[1].GetInt32();
            byte[] x = System.Convert.FromBase64String(c.GetProperty("x").GetString()!), expected = System.Convert.FromBase64String(c.GetProperty("y").GetString()!);
            var y = new byte[expected.Length];
            PilLanczos.Resize(x, h, w, channels, y, oh, ow);
            Assert.True(expected.AsSpan().SequenceEqual(y), $"{h}x{w}x{channels} to {oh}x{ow}: first difference at byte {expected.AsSpan().CommonPrefixLength(y)}");
            cases++;
        }
        Assert.Equal(11, cases);
    }

    [Fact]
    public void The_same_size_is_a_copy_and_wrong_lengths_are_refused()
    {
        byte[] x = [1, 2, 3, 4, 5, 6];
        var y = new byte[6];
        PilLanczos.Resize(x, 1, 2, 3, y, 1, 2);
        Assert.Equal(x, y);
        Assert.Throws<ArgumentException>(() => PilLanczos.Resize(x, 2, 2, 3, y, 1, 2));
        Assert.Throws<ArgumentException>(() => PilLanczos.Resize(x, 1, 2, 3, new byte[5], 1, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => PilLanczos.Resize(x, 1, 2, 3, y, 0, 2));
    }
}
