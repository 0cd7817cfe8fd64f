using System.Text.Json;
using Sd.Engine.Imaging;
using Sd.Engine.Upscaling;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// A1111's Extras upscale against its code run on Pillow and PyTorch (Data/extras-upscale-reference.json from
/// extras-upscale-reference.py): "Scale by" with fractional scales, a scale of 1 and a max side length; "Scale to"
/// larger and smaller, with and without the crop, with black borders where the floored result falls short; Nearest
/// and Lanczos, blended with a second upscaler; small ESRGAN models (x4, x4 at a scale of 1, which still runs it once, x2 run twice). Lanczos and Nearest bit for
/// bit; through a model, bytes may differ by one where the network's value lands within rounding distance of a half.
/// </summary>
public sealed class PostprocessUpscaleTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sd-extras-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static TheoryData<int> Cases() => [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Upscales_as_a1111s_extras_tab(int index)
    {
        using JsonDocument reference = ReferenceData.Json("extras-upscale-reference.json");
        JsonElement models = reference.RootElement.GetProperty("models");
        JsonElement c = reference.RootElement.GetProperty("cases")[index];
        int h = c.GetProperty("in")[0].GetInt32(), w = c.GetProperty("in")[1].GetInt32();
        bool scaleTo = c.GetProperty("mode").GetInt32() == 1;
        var opened = new List<EsrganUpscaler>();
        try
        {
            Upscaler? second = c.GetProperty("upscaler2").GetString() is { } name2 ? Open(name2, models, opened) : null;
            var upscale = new PostprocessUpscale
            {
                Upscaler = Open(c.GetProperty("upscaler").GetString()!, models, opened),
                Scale = c.GetProperty("scale").GetDouble(),
                MaxSideLength = c.GetProperty("max_side").GetInt32(),
                Width = scaleTo ? c.GetProperty("to")[0].GetInt32() : 0,
                Height = scaleTo ? c.GetProperty("to")[1].GetInt32() : 0,
                Crop = c.GetProperty("crop").GetBoolean(),
                Upscaler2 = second,
                Upscaler2Visibility = c.GetProperty("visibility").GetDouble(),
            };
            byte[] picture = Convert.FromBase64String(c.GetProperty("picture").GetString()!);
            byte[] before = (byte[])picture.Clone();
            UpscaledPicture result = upscale.Run(picture, h, w);
            Assert.Equal(before, picture);
            Assert.Equal((c.GetProperty("out")[0].GetInt32(), c.GetProperty("out")[1].GetInt32()), (result.Height, result.Width));
            Assert.Equal(c.GetProperty("info").EnumerateArray().Select(e => $"{e[0].GetString()}: {e[1].GetString()}"),
                result.Info.Select(e => $"{e.Key}: {e.Value}"));
            byte[] expected = Convert.FromBase64String(c.GetProperty("upscaled").GetString()!);
            Assert.Equal(expected.Length, result.Picture.Length);
            int differing = 0, worst = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                int d = Math.Abs(expected[i] - result.Picture[i]);
                if (d > 0) differing++;
                worst = Math.Max(worst, d);
            }
            output.WriteLine($"case {index}: {differing} of {expected.Length} bytes differ, by at most {worst}");
            if (opened.Count == 0)
            {
                Assert.Equal(0, differing);
            }
            else
            {
                Assert.True(worst <= 1 && differing <= expected.Length / 200, $"{differing} of {expected.Length} bytes differ, by at most {worst}");
            }
        }
        finally
        {
            opened.ForEach(model => model.Dispose());
        }
    }

    private Upscaler Open(string name, JsonElement models, List<EsrganUpscaler> opened)
    {
        if (name == "Lanczos") return Upscaler.Lanczos;
        if (name == "Nearest") return Upscaler.Nearest;
        string path = Path.Combine(_folder, name + ".safetensors");
        File.Move(EsrganUpscalerTests.WriteModel(models.GetProperty(name), _folder), path, overwrite: true);
        EsrganUpscaler model = EsrganUpscaler.Load(path, 16, 4);
        opened.Add(model);
        Assert.Equal(name, model.Name);
        return Upscaler.Of(model);
    }

    [Fact]
    public void Settings_and_sizes_out_of_range_are_refused_naming_them()
    {
        var picture = new byte[4 * 6 * 3];
        var e = Assert.Throws<ArgumentException>(() => new PostprocessUpscale { Upscaler = Upscaler.Lanczos, Width = 64 }.Run(picture, 4, 6));
        Assert.Contains("\"Scale to\" needs a width and a height", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PostprocessUpscale { Upscaler = Upscaler.Lanczos, Scale = double.NaN }.Run(picture, 4, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PostprocessUpscale { Upscaler = Upscaler.Lanczos, MaxSideLength = -1 }.Run(picture, 4, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PostprocessUpscale { Upscaler = Upscaler.Lanczos, Upscaler2 = Upscaler.Nearest, Upscaler2Visibility = 1.5 }.Run(picture, 4, 6));
        Assert.Throws<ArgumentException>(() => new PostprocessUpscale { Upscaler = Upscaler.Lanczos }.Run(picture, 4, 5));
        // 4x6 by 1.5 floors to 0x8: no picture, as Pillow refuses a resize to 0.
        e = Assert.Throws<ArgumentException>(() => new PostprocessUpscale { Upscaler = Upscaler.Lanczos, Scale = 1.5 }.Run(picture, 4, 6));
        Assert.Contains("would be 0x8", e.Message);
        // 70000 pixels a side is past what a PNG holds; refused before any resize.
        e = Assert.Throws<ArgumentException>(() => ImageUpscaling.UpscaleBy(picture, 4, 6, 20000, Upscaler.Nearest));
        Assert.Contains("would be 80000x120000", e.Message);
    }

    /// <summary>
    /// Upscaler.upscale at scale 1 runs the step once all the same (a 1x model would), and a result of the input's
    /// own size is a new array, never the caller's.
    /// </summary>
    [Fact]
    public void A_result_never_aliases_the_input()
    {
        var picture = new byte[16 * 16 * 3];
        new Random(3).NextBytes(picture);
        (byte[] same, int h, int w) = ImageUpscaling.UpscaleBy(picture, 16, 16, 1.2, Upscaler.Lanczos);
        Assert.Equal((16, 16), (h, w));
        Assert.Equal(picture, same);
        Assert.NotSame(picture, same);
        (byte[] once, _, _) = ImageUpscaling.UpscaleBy(picture, 16, 16, 1, Upscaler.Nearest);
        Assert.Equal(picture, once);
        Assert.NotSame(picture, once);
    }
}
