using System.Text.Json;
using Sd.Engine.Imaging;
using Sd.Loaders.Png;

namespace Sd.Engine.Tests;

/// <summary>
/// A1111's inpainting pictures (a see-through picture flattened onto white; the mask read, inverted, blurred; Whole
/// picture or Only masked; masked content "fill"; the overlay after the run), byte for byte with A1111 1.10's code on Pillow 9.4 and OpenCV
/// 4.6 (Data/a1111-inpaint-reference.json).
/// </summary>
public sealed class A1111InpaintTests
{
    private static PngImage Picture(JsonElement c, string name, int width, int height, int channels) =>
        new(width, height, channels, System.Convert.FromBase64String(c.GetProperty(name).GetString()!));

    private static void Same(PngImage expected, PngImage actual, string what)
    {
        Assert.True((expected.Width, expected.Height, expected.Channels) == (actual.Width, actual.Height, actual.Channels),
            $"{what}: {actual.Width}x{actual.Height}x{actual.Channels}, A1111's {expected.Width}x{expected.Height}x{expected.Channels}");
        int first = expected.Pixels.AsSpan().CommonPrefixLength(actual.Pixels);
        Assert.True(first == expected.Pixels.Length, $"{what}: byte {first} is {(first < actual.Pixels.Length ? actual.Pixels[first] : -1)}, A1111's {(first < expected.Pixels.Length ? expected.Pixels[first] : -1)}");
    }

    [Fact]
    public void Every_case_is_a1111s_pictures_byte_for_byte()
    {
        using JsonDocument document = ReferenceData.Json("a1111-inpaint-reference.json");
        int cases = 0;
        foreach (JsonElement c in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!;
            int runWidth = c.GetProperty("run_width").GetInt32(), runHeight = c.GetProperty("run_height").GetInt32();
            int maskChannels = c.GetProperty("mask_mode").GetString() switch { "L" => 1, "RGB" => 3, _ => 4 };
            PngImage picture = Picture(c, "picture", c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(),
                c.GetProperty("picture_mode").GetString() == "RGBA" ? 4 : 3);
            PngImage mask = Picture(c, "mask", c.GetProperty("mask_width").GetInt32(), c.GetProperty("mask_height").GetInt32(), maskChannels);
            var settings = new InpaintSettings
            {
                MaskBlur = c.GetProperty("blur").GetInt32(), OnlyMasked = c.GetProperty("only_masked").GetBoolean(),
                Padding = c.GetProperty("padding").GetInt32(), InvertMask = c.GetProperty("invert").GetBoolean(),
                MaskedContent = c.GetProperty("fill").GetBoolean() ? MaskedContent.Fill : MaskedContent.Original,
            };
            A1111Inpaint inpaint = A1111Inpaint.Prepare(picture, mask, runWidth, runHeight, (ResizeMode)c.GetProperty("resize_mode").GetInt32(), settings);
            Same(Picture(c, "run_picture", runWidth, runHeight, 3), inpaint.Picture, $"{name}, run picture");
            if (c.GetProperty("run_mask").ValueKind == JsonValueKind.Null)
            {
                Assert.Null(inpaint.Mask);
            }
            else
            {
                Same(Picture(c, "run_mask", runWidth, runHeight, 1), inpaint.Mask!, $"{name}, run mask");
            }
            PictureRegion? expectedRegion = c.GetProperty("paste_to") is { ValueKind: JsonValueKind.Array } p
                ? new PictureRegion(p[0].GetInt32(), p[1].GetInt32(), p[2].GetInt32(), p[3].GetInt32()) : null;
            Assert.Equal(expectedRegion, inpaint.PasteTo);
            var result = new PngImage(runWidth, runHeight, 3, System.Convert.FromBase64String(c.GetProperty("result").GetString()!),
                new Dictionary<string, string> { ["parameters"] = name });
            PngImage final = inpaint.Finish(result);
            Same(Picture(c, "final", c.GetProperty("final_width").GetInt32(), c.GetProperty("final_height").GetInt32(), 3), final, $"{name}, final picture");
            Assert.Equal(name, final.Text["parameters"]);
            cases++;
        }
        Assert.Equal(23, cases);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var picture = new PngImage(16, 16, 3, new byte[16 * 16 * 3]);
        var mask = new PngImage(16, 16, 1, new byte[16 * 16]);
        var settings = new InpaintSettings();
        Assert.Throws<ArgumentOutOfRangeException>(() => A1111Inpaint.Prepare(picture, mask, 0, 16, ResizeMode.Just, settings with { OnlyMasked = true }));
        // A mask the mode cannot bring to the size is the mask's error.
        Assert.Equal("mask", Assert.Throws<ArgumentException>(() =>
            A1111Inpaint.Prepare(picture, new PngImage(1, 300, 1, new byte[300]), 16, 16, ResizeMode.Fill, settings)).ParamName);
        Assert.Throws<ArgumentException>(() => A1111Inpaint.Prepare(new PngImage(16, 16, 1, new byte[256]), mask, 16, 16, ResizeMode.Just, settings));
        Assert.Throws<ArgumentException>(() => A1111Inpaint.Prepare(picture, mask, 16, 16, ResizeMode.Just, settings with { MaskBlur = 65 }));
        Assert.Throws<ArgumentException>(() => A1111Inpaint.Prepare(picture, mask, 16, 16, ResizeMode.Just, settings with { MaskBlur = -1 }));
        Assert.Throws<ArgumentException>(() => A1111Inpaint.Prepare(picture, mask, 16, 16, ResizeMode.Just, settings with { Padding = 257 }));
        Assert.Contains("masked content 7", Assert.Throws<ArgumentException>(() =>
            A1111Inpaint.Prepare(picture, mask, 16, 16, ResizeMode.Just, settings with { MaskedContent = (MaskedContent)7 })).Message);
        Assert.Contains("the mask is 8x16", Assert.Throws<ArgumentException>(() =>
            A1111Inpaint.Prepare(picture, new PngImage(8, 16, 1, new byte[128]), 16, 16, ResizeMode.Just, settings with { OnlyMasked = true })).Message);
        A1111Inpaint inpaint = A1111Inpaint.Prepare(picture, mask, 16, 16, ResizeMode.Just, settings);
        Assert.Throws<ArgumentException>(() => inpaint.Finish(new PngImage(8, 16, 3, new byte[8 * 16 * 3])));
        Assert.Throws<ArgumentException>(() => inpaint.Finish(new PngImage(16, 16, 4, new byte[16 * 16 * 4])));
    }
}
