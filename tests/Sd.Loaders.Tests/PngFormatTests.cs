using System.Text.Json;
using Sd.Loaders.Png;

namespace Sd.Loaders.Tests;

/// <summary>
/// The PNG formats beyond 8-bit gray, RGB and RGBA (1- to 16-bit samples, gray+alpha, palettes with and without tRNS)
/// decode as Pillow 9.4 reads them: the picture's RGB and RGBA equal Pillow's convert("RGB") and convert("RGBA") byte
/// for byte (Data/png-formats-reference.py made the files, each row under another filter type, and the expectations).
/// </summary>
public sealed class PngFormatTests
{
    public static TheoryData<string> Cases() => ReferenceFiles.Names(ReferenceFiles.Png);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decodes_as_pillow_does(string name)
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.Png, name);
        PngImage image = PngFile.Read(new MemoryStream(Convert.FromBase64String(c.GetProperty("png").GetString()!)), name);
        Assert.Equal(Convert.FromBase64String(c.GetProperty("rgb").GetString()!), Pixels(image, 3));
        Assert.Equal(Convert.FromBase64String(c.GetProperty("rgba").GetString()!), Pixels(image, 4));
    }

    /// <summary>The picture as RGB or RGBA: gray repeated, alpha 255 where it has none.</summary>
    private static byte[] Pixels(PngImage image, int channels)
    {
        var pixels = new byte[image.Width * image.Height * channels];
        for (int p = 0; p < image.Width * image.Height; p++)
        {
            for (int c = 0; c < channels; c++)
            {
                pixels[p * channels + c] = c == 3 ? (image.Channels == 4 ? image.Pixels[p * 4 + 3] : (byte)255)
                    : image.Pixels[p * image.Channels + (image.Channels == 1 ? 0 : c)];
            }
        }
        return pixels;
    }
}
