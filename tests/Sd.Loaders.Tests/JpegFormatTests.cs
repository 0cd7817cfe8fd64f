using System.Text.Json;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Png;

namespace Sd.Loaders.Tests;

/// <summary>
/// JPEG pictures decode as Pillow 9.4 (libjpeg-turbo) reads them: the pixels equal Pillow's convert("RGB") byte for
/// byte, for every sampling layout, progressive and refining scans, restart intervals, gray, RGB, CMYK, YCCK and odd
/// sizes (Data/jpeg-formats-reference.py made the files with Pillow's encoder, cjpeg and libjpeg, and the
/// expectations).
/// </summary>
public sealed class JpegFormatTests
{
    public static TheoryData<string> Cases() => ReferenceFiles.Names(ReferenceFiles.Jpeg);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decodes_as_pillow_does(string name)
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.Jpeg, name);
        PngImage image = JpegFile.Read(new MemoryStream(Convert.FromBase64String(c.GetProperty("jpeg").GetString()!)), name);
        Assert.Equal((c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32()), (image.Width, image.Height));
        Assert.Equal(c.GetProperty("mode").GetString() == "L" ? 1 : 3, image.Channels);
        byte[] expected = Convert.FromBase64String(c.GetProperty("rgb").GetString()!);
        byte[] actual = Rgb(image);
        int differing = 0, largest = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] != actual[i])
                differing++;
            largest = Math.Max(largest, Math.Abs(expected[i] - actual[i]));
        }
        Assert.True(differing == 0, $"{differing} of {expected.Length} bytes differ from Pillow's, by up to {largest}");
    }

    /// <summary>The picture as RGB: gray repeated.</summary>
    private static byte[] Rgb(PngImage image)
    {
        if (image.Channels == 3)
            return image.Pixels;
        var rgb = new byte[image.Pixels.Length * 3];
        for (int p = 0; p < image.Pixels.Length; p++)
            rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = image.Pixels[p];
        return rgb;
    }
}
