using System.Text.Json;
using Sd.Loaders.Png;
using Sd.Loaders.Webp;

namespace Sd.Loaders.Tests;

/// <summary>
/// WebP pictures decode as Pillow 9.4 (libwebp 1.2.4) reads them: the pixels equal Pillow's byte for byte, RGB or
/// RGBA as Pillow's mode says, for lossy pictures (every loop filter, segments, token partitions, odd sizes, alpha
/// compressed or raw under each filter) and lossless ones (transforms, colour cache, palettes of every packing)
/// (Data/webp-formats-reference.py made the files with Pillow's encoder, cwebp and libwebp, and the expectations).
/// </summary>
public sealed class WebpFormatTests
{
    public static TheoryData<string> Cases() => ReferenceFiles.Names(ReferenceFiles.Webp);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decodes_as_pillow_does(string name)
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.Webp, name);
        PngImage image = WebpFile.Read(new MemoryStream(Convert.FromBase64String(c.GetProperty("webp").GetString()!)), name);
        Assert.Equal((c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32()), (image.Width, image.Height));
        Assert.Equal(c.GetProperty("mode").GetString() == "RGBA" ? 4 : 3, image.Channels);
        byte[] expected = Convert.FromBase64String(c.GetProperty("pixels").GetString()!);
        int differing = 0, largest = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] != image.Pixels[i])
                differing++;
            largest = Math.Max(largest, Math.Abs(expected[i] - image.Pixels[i]));
        }
        Assert.True(differing == 0, $"{differing} of {expected.Length} bytes differ from Pillow's, by up to {largest}");
    }
}
