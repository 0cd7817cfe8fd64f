using System.Text.Json;
using Sd.Engine.Imaging;
using Sd.Engine.Tensors;
using Sd.Loaders.Png;

namespace Sd.Engine.Tests;

/// <summary>
/// A1111's resize modes for img2img and inpainting inputs, byte for byte with its resize_image on Pillow 9.4
/// (Data/resize-mode-reference.json), and masks read as Pillow's convert("L").
/// </summary>
public sealed class PictureResizeTests
{
    private static JsonElement Reference(string name)
    {
        using JsonDocument document = ReferenceData.Json("resize-mode-reference.json");
        return document.RootElement.GetProperty(name).Clone();
    }

    private static byte[] Bytes(JsonElement c, string name) => [.. c.GetProperty(name).EnumerateArray().Select(v => (byte)v.GetInt32())];

    [Fact]
    public void Every_mode_is_a1111s_resize_image_on_pillow()
    {
        int cases = 0;
        foreach (JsonElement c in Reference("cases").EnumerateArray())
        {
            int channels = c.GetProperty("mode").GetString() == "L" ? 1 : 3;
            var picture = new PngImage(c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(), channels, Bytes(c, "pixels"));
            var mode = (ResizeMode)c.GetProperty("resize_mode").GetInt32();
            PngImage resized = PictureResize.Resize(picture, c.GetProperty("to_width").GetInt32(), c.GetProperty("to_height").GetInt32(), mode);
            string name = $"{c.GetProperty("mode").GetString()} {picture.Width}x{picture.Height} {mode} to {c.GetProperty("to_width").GetInt32()}x{c.GetProperty("to_height").GetInt32()}";
            byte[] expected = Bytes(c, "expected");
            int first = expected.AsSpan().CommonPrefixLength(resized.Pixels);
            Assert.True(first == expected.Length && resized.Pixels.Length == expected.Length,
                $"{name}: byte {first} (pixel {first / channels}) is {(first < resized.Pixels.Length ? resized.Pixels[first] : -1)}, Pillow's {(first < expected.Length ? expected[first] : -1)}");
            Assert.Equal((channels, c.GetProperty("to_width").GetInt32(), c.GetProperty("to_height").GetInt32()), (resized.Channels, resized.Width, resized.Height));
            cases++;
        }
        Assert.Equal(15, cases);
    }

    [Fact]
    public void A_mask_is_read_as_pillows_gray()
    {
        foreach (JsonElement c in Reference("gray").EnumerateArray())
        {
            int channels = c.GetProperty("mode").GetString() == "RGBA" ? 4 : 3;
            var picture = new PngImage(c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(), channels, Bytes(c, "pixels"));
            byte[] expected = Bytes(c, "expected");
            Assert.Equal(expected, ImageConversion.GrayBytes(picture));
            using Tensor mask = ImageConversion.MaskFromPng(picture);
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i] / 255f, mask.Span[i]);
        }
        // A gray picture is its own bytes.
        var gray = new PngImage(2, 1, 1, [1, 2]);
        Assert.Same(gray.Pixels, ImageConversion.GrayBytes(gray));
    }

    [Fact]
    public void A_picture_of_the_size_stays_and_bad_arguments_are_refused()
    {
        var picture = new PngImage(4, 2, 3, new byte[24]);
        Assert.Same(picture, PictureResize.Resize(picture, 4, 2, ResizeMode.Fill));
        Assert.Throws<ArgumentException>(() => PictureResize.Resize(new PngImage(4, 2, 4, new byte[32]), 8, 8, ResizeMode.Just));
        Assert.Throws<ArgumentOutOfRangeException>(() => PictureResize.Resize(picture, 0, 8, ResizeMode.Just));
        Assert.Throws<ArgumentOutOfRangeException>(() => PictureResize.Resize(picture, 8, 8, (ResizeMode)3));
        // A sliver fitted into a square has no pixel across; covering a large square with one would pass a picture's limits.
        Assert.Contains("a 1x200 picture fitted into 64x64 at its aspect ratio would be 0x64",
            Assert.Throws<ArgumentException>(() => PictureResize.Resize(new PngImage(1, 200, 3, new byte[600]), 64, 64, ResizeMode.Fill)).Message);
        Assert.Contains("a 1x5000 picture covering 16384x16384 at its aspect ratio would be 16384x81920000",
            Assert.Throws<ArgumentException>(() => PictureResize.Resize(new PngImage(1, 5000, 3, new byte[15000]), 16384, 16384, ResizeMode.Crop)).Message);
    }
}
