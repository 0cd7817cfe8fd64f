using System.Text.Json;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Png;

namespace Sd.Loaders.Tests;

/// <summary>
/// JPEG files are written as A1111 saves a .jpg, byte for byte: Pillow 9.4's encoder on libjpeg-turbo at the given
/// quality, then piexif's EXIF UserComment with the parameters (Data/jpeg-writer-reference.py made the pictures and
/// the files: odd sizes, every quality band, gray, RGBA, flat and worst-case pictures, Unicode parameters).
/// </summary>
public sealed class JpegWriterTests
{
    public static TheoryData<string> Cases() => ReferenceFiles.Names(ReferenceFiles.JpegWriter);

    [Fact]
    public void Every_reference_case_is_there()
    {
        Assert.Equal(29, Cases().Count);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Writes_what_A1111_writes(string name)
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.JpegWriter, name);
        byte[] expected = Convert.FromBase64String(c.GetProperty("jpeg").GetString()!);
        byte[] actual = Write(Picture(c), c.GetProperty("quality").GetInt32());
        int first = 0;
        while (first < Math.Min(expected.Length, actual.Length) && expected[first] == actual[first])
            first++;
        Assert.True(first == expected.Length && first == actual.Length,
            $"{actual.Length} bytes written, Pillow's file has {expected.Length}; they differ from byte {first}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Reads_back_with_its_parameters(string name)
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.JpegWriter, name);
        PngImage picture = Picture(c);
        PngImage read = JpegFile.Read(new MemoryStream(Write(picture, c.GetProperty("quality").GetInt32())), name);
        Assert.Equal((picture.Width, picture.Height, picture.Channels == 1 ? 1 : 3), (read.Width, read.Height, read.Channels));
        // An empty comment is no parameters, as A1111 reads it.
        string? parameters = c.TryGetProperty("parameters", out JsonElement p) && p.GetString()!.Length > 0 ? p.GetString() : null;
        Assert.Equal(parameters, read.Text.GetValueOrDefault("parameters"));
    }

    [Fact]
    public void Best_quality_keeps_a_smooth_picture_within_a_few_levels()
    {
        var pixels = new byte[48 * 32 * 3];
        for (int i = 0; i < pixels.Length; i++)
            pixels[i] = (byte)(i / 3 % 48 * 4 + i % 3 * 20);
        PngImage read = JpegFile.Read(new MemoryStream(Write(new PngImage(48, 32, 3, pixels), 100)), "smooth");
        int largest = 0;
        for (int i = 0; i < pixels.Length; i++)
            largest = Math.Max(largest, Math.Abs(pixels[i] - read.Pixels[i]));
        Assert.InRange(largest, 0, 6);
    }

    [Fact]
    public void Other_text_is_not_written()
    {
        var text = new Dictionary<string, string> { ["postprocessing"] = "Postprocess upscale by: 2" };
        var picture = new PngImage(8, 8, 1, new byte[64], text);
        Assert.Equal(Write(new PngImage(8, 8, 1, new byte[64]), 80), Write(picture, 80));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(101)]
    [InlineData(-5)]
    public void A_quality_outside_1_to_100_is_refused(int quality)
    {
        var stream = new MemoryStream();
        Assert.Throws<ArgumentOutOfRangeException>(() => JpegFile.Write(stream, new PngImage(8, 8, 1, new byte[64]), quality));
        Assert.Equal(0, stream.Length);
    }

    [Fact]
    public void A_picture_wider_than_JPEGs_limit_is_refused()
    {
        var stream = new MemoryStream();
        var e = Assert.Throws<ArgumentException>(() => JpegFile.Write(stream, new PngImage(65501, 1, 1, new byte[65501])));
        Assert.Contains("65501x1", e.Message);
        Assert.Equal(0, stream.Length);
    }

    [Fact]
    public void The_longest_parameters_fit_and_one_more_character_is_refused()
    {
        string longest = new('x', JpegFile.MaxParametersChars);
        PngImage read = JpegFile.Read(new MemoryStream(Write(Gray(longest), 80)), "longest");
        Assert.Equal(longest, read.Text["parameters"]);

        using var folder = new TempDirectory();
        string path = folder.File("long.jpg");
        var e = Assert.Throws<ArgumentException>(() => JpegFile.Write(path, Gray(longest + "x")));
        Assert.Contains($"{JpegFile.MaxParametersChars + 1} UTF-16 characters", e.Message);
        Assert.Empty(Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void Unpaired_surrogates_are_written_as_question_marks()
    {
        PngImage read = JpegFile.Read(new MemoryStream(Write(Gray("a\uD800b"), 80)), "surrogate");
        Assert.Equal("a?b", read.Text["parameters"]);
    }

    [Theory]
    [InlineData("out.jpg", true)]
    [InlineData("OUT.JPEG", true)]
    [InlineData("dir.jpg/out.png", false)]
    [InlineData("out.jpe", false)]
    [InlineData("jpg", false)]
    public void Jpeg_names_are_told_by_their_extension(string path, bool jpeg)
    {
        Assert.Equal(jpeg, JpegFile.IsJpegName(path));
    }

    private static PngImage Gray(string parameters) =>
        new(8, 8, 1, new byte[64], new Dictionary<string, string> { ["parameters"] = parameters });

    private static PngImage Picture(JsonElement c)
    {
        var text = new Dictionary<string, string>();
        if (c.TryGetProperty("parameters", out JsonElement parameters))
            text["parameters"] = parameters.GetString()!;
        return new PngImage(c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(), c.GetProperty("channels").GetInt32(),
            Convert.FromBase64String(c.GetProperty("pixels").GetString()!), text);
    }

    private static byte[] Write(PngImage picture, int quality)
    {
        var stream = new MemoryStream();
        JpegFile.Write(stream, picture, quality);
        return stream.ToArray();
    }
}
