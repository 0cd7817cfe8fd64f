using System.Text.Json;
using Sd.Engine.Imaging;

namespace Sd.Engine.Tests;

/// <summary>
/// Pillow 9.4's GaussianBlur (three extended box passes each way), byte for byte on RGBa and gray pictures: A1111's
/// fill radii 0 to 256, fractional radii, boxes wider than the picture, 1-pixel rows and columns
/// (Data/pil-gaussian-blur-reference.json), and the box radius as Pillow's float32 arithmetic gives it.
/// </summary>
public sealed class PilGaussianBlurTests
{
    [Fact]
    public void Every_case_is_pillows_blur_byte_for_byte()
    {
        using JsonDocument document = ReferenceData.Json("pil-gaussian-blur-reference.json");
        int cases = 0;
        foreach (JsonElement c in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!;
            float radius = c.GetProperty("radius").GetSingle();
            Assert.Equal(c.GetProperty("box_radius").GetSingle(), PilGaussianBlur.BoxRadius(radius, 3));
            byte[] pixels = Convert.FromBase64String(c.GetProperty("pixels").GetString()!);
            byte[] expected = Convert.FromBase64String(c.GetProperty("blurred").GetString()!);
            byte[] actual = PilGaussianBlur.Blur(pixels, c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(),
                c.GetProperty("channels").GetInt32(), radius);
            int first = expected.AsSpan().CommonPrefixLength(actual);
            Assert.True(first == expected.Length && actual.Length == expected.Length,
                $"{name}: byte {first} is {(first < actual.Length ? actual[first] : -1)}, Pillow's {(first < expected.Length ? expected[first] : -1)}");
            cases++;
        }
        Assert.Equal(14, cases);
    }

    [Fact]
    public void Radius_0_leaves_the_picture_as_it_is()
    {
        byte[] pixels = new byte[7 * 5 * 4];
        new Random(3).NextBytes(pixels);
        Assert.Equal(pixels, PilGaussianBlur.Blur(pixels, 7, 5, 4, 0));
    }
}
