using Sd.Cli.Commands;
using Sd.Engine.Imaging;
using Sd.Engine.Upscaling;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Png;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// sd upscale: the flags reach A1111's Extras upscale (PostprocessUpscale, checked against A1111 on Pillow and PyTorch
/// in the engine's tests), the PNG keeps the input's text and records the upscale as A1111 does, and bad flags are
/// refused before any work.
/// </summary>
public sealed class UpscaleCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Picture(int channels, IReadOnlyDictionary<string, string>? text = null)
    {
        var pixels = new byte[30 * 20 * channels];
        new Random(channels).NextBytes(pixels);
        string path = _dir.File($"in{channels}.png");
        PngFile.Write(path, new PngImage(30, 20, channels, pixels, text));
        return path;
    }

    [Fact]
    public void Lanczos_by_a_scale_keeps_the_text_and_records_the_upscale()
    {
        string input = Picture(3, new Dictionary<string, string> { ["parameters"] = "a cat\nSteps: 20", ["Comment"] = "kept", ["extras"] = "old" });
        string output = _dir.File("out.png");
        Assert.Equal(0, UpscaleCommand.Run(["--image", input, "--upscaler", "lanczos", "--scale", "2.5", "--out", output], TextWriter.Null));
        PngImage source = PngFile.Read(input), result = PngFile.Read(output);
        UpscaledPicture expected = new PostprocessUpscale { Upscaler = Upscaler.Lanczos, Scale = 2.5 }.Run(source.Pixels, 20, 30);
        Assert.Equal((72, 48), (result.Width, result.Height)); // int(75 // 8 x 8), int(50 // 8 x 8)
        Assert.Equal(expected.Picture, result.Pixels);
        const string infotext = "Postprocess upscale by: 2.5, Postprocess upscaler: Lanczos";
        // "parameters" moves last; an old "extras" is replaced where it stood, as A1111's dicts do.
        Assert.Equal(["Comment", "extras", "parameters", "postprocessing"], result.Text.Keys);
        Assert.Equal([source.Text["Comment"], infotext, source.Text["parameters"], infotext], result.Text.Values);
    }

    [Fact]
    public void Gray_and_rgba_pictures_are_read_as_pillows_convert_rgb()
    {
        foreach (int channels in (int[])[1, 4])
        {
            string input = Picture(channels), output = _dir.File($"out{channels}.png");
            Assert.Equal(0, UpscaleCommand.Run(["--image", input, "--upscaler", "Nearest", "--width", "64", "--height", "64",
                "--upscaler-2", "Lanczos", "--upscaler-2-visibility", "0.4", "--out", output], TextWriter.Null));
            PngImage source = PngFile.Read(input), result = PngFile.Read(output);
            var rgb = new byte[30 * 20 * 3];
            for (int i = 0; i < rgb.Length; i++) rgb[i] = source.Pixels[i / 3 * channels + (channels == 1 ? 0 : i % 3)];
            UpscaledPicture expected = new PostprocessUpscale { Upscaler = Upscaler.Nearest, Width = 64, Height = 64, Upscaler2 = Upscaler.Lanczos, Upscaler2Visibility = 0.4 }
                .Run(rgb, 20, 30);
            Assert.Equal((64, 64, 3), (result.Width, result.Height, result.Channels));
            Assert.Equal(expected.Picture, result.Pixels);
            Assert.Equal("Postprocess upscale to: 64x64, Postprocess crop to: 64x64, Postprocess upscaler: Nearest, Postprocess upscaler 2: Lanczos",
                result.Text["postprocessing"]);
        }
    }

    /// <summary>A model scales by its own factor unless told otherwise, runs in the tiles given, and is named by its file.</summary>
    [Fact]
    public void A_model_file_upscales_by_its_own_scale_in_the_tiles_given()
    {
        string model = WriteModel("4x-Tiny.safetensors"), input = Picture(3), output = _dir.File("out.png");
        Assert.Equal(0, UpscaleCommand.Run(["--image", input, "--upscaler", model, "--tile", "12", "--tile-overlap", "2", "--out", output], TextWriter.Null));
        PngImage result = PngFile.Read(output);
        using EsrganUpscaler loaded = EsrganUpscaler.Load(model, 12, 2);
        UpscaledPicture expected = new PostprocessUpscale { Upscaler = Upscaler.Of(loaded), Scale = 4 }.Run(PngFile.Read(input).Pixels, 20, 30);
        Assert.Equal((120, 80), (result.Width, result.Height));
        Assert.Equal(expected.Picture, result.Pixels);
        Assert.Equal("Postprocess upscale by: 4, Postprocess upscaler: 4x-Tiny", result.Text["extras"]);

        // --max-side brings the larger side down: 30x20 by 4 is 120x80, limited to 100 it is 100x66 (floored: 96x64).
        Assert.Equal(0, UpscaleCommand.Run(["--image", input, "--upscaler", model, "--max-side", "100", "--out", output], TextWriter.Null));
        Assert.Equal((96, 64), (PngFile.Read(output).Width, PngFile.Read(output).Height));
        Assert.Equal("Postprocess upscale by: 4, Max side length: 100, Postprocess upscaler: 4x-Tiny", PngFile.Read(output).Text["extras"]);
    }

    private string WriteModel(string name) => TinyEsrgan.Write(_dir.File(name));

    [Theory]
    [InlineData("upscale: --upscaler 'None' is neither Lanczos nor Nearest nor an ESRGAN model file", "--upscaler", "None")]
    [InlineData("upscale: --upscaler is required")]
    [InlineData("upscale: --scale must be above 0 and at most 16, got 0", "--upscaler", "Lanczos", "--scale", "0")]
    [InlineData("upscale: \"Scale to\" needs --width and --height, both above 0, got 64x0", "--upscaler", "Lanczos", "--width", "64")]
    [InlineData("upscale: give --scale (and --max-side) or --width and --height, not both", "--upscaler", "Lanczos", "--scale", "2", "--width", "64", "--height", "64")]
    [InlineData("upscale: --no-crop goes with --width and --height", "--upscaler", "Lanczos", "--no-crop")]
    [InlineData("upscale: --max-side must not be negative", "--upscaler", "Lanczos", "--max-side", "-8")]
    [InlineData("upscale: --upscaler-2 and --upscaler-2-visibility go together", "--upscaler", "Lanczos", "--upscaler-2", "Nearest")]
    [InlineData("upscale: --upscaler-2 and --upscaler-2-visibility go together", "--upscaler", "Lanczos", "--upscaler-2-visibility", "0.5")]
    [InlineData("upscale: --upscaler-2 and --upscaler-2-visibility go together", "--upscaler", "Lanczos", "--upscaler-2", "Nearest", "--upscaler-2-visibility", "2")]
    [InlineData("upscale: --tile 8 --tile-overlap 8: the tile must be 0", "--upscaler", "model.safetensors", "--tile", "8", "--tile-overlap", "8")]
    public void Bad_flags_are_refused_before_any_work(string expected, params string[] flags)
    {
        string input = Picture(3), output = _dir.File("refused.png");
        var e = Assert.Throws<UsageException>(() => UpscaleCommand.Run(["--image", input, .. flags, "--out", output], TextWriter.Null));
        Assert.StartsWith(expected, e.Message);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Bad_files_and_sizes_fail_naming_them_without_an_output()
    {
        string output = _dir.File("out.png"), input = Picture(3);
        Assert.Contains("not found", Assert.ThrowsAny<IOException>(() => UpscaleCommand.Run(["--image", _dir.File("missing.png"), "--upscaler", "Lanczos", "--out", output], TextWriter.Null)).Message);
        Assert.Contains("pickled", Assert.ThrowsAny<Exception>(() => UpscaleCommand.Run(["--image", input, "--upscaler", _dir.WriteText("RealESRGAN.pth", "x"), "--out", output], TextWriter.Null)).Message);
        // 20x30 by 0.2 floors to 0x0: no picture.
        Assert.Contains("would be 0x0", Assert.Throws<ArgumentException>(() => UpscaleCommand.Run(["--image", input, "--upscaler", "Lanczos", "--scale", "0.2", "--out", output], TextWriter.Null)).Message);
        Assert.False(File.Exists(output));
        string gif = _dir.File("out.gif");
        Assert.Equal($"upscale: --out '{gif}': pictures are written as PNG or JPEG; give a name ending in .png, .jpg or .jpeg",
            Assert.Throws<UsageException>(() => UpscaleCommand.Run(["--image", input, "--upscaler", "Lanczos", "--out", gif], TextWriter.Null)).Message);
        Assert.Equal($"upscale: --jpeg-quality sets a JPEG's quality; --out '{output}' is a PNG",
            Assert.Throws<UsageException>(() => UpscaleCommand.Run(["--image", input, "--upscaler", "Lanczos", "--out", output, "--jpeg-quality", "90"], TextWriter.Null)).Message);
        Assert.False(File.Exists(gif));
        Assert.False(File.Exists(output));
    }

    /// <summary>A .jpg --out is the picture saved as A1111's Extras saves a .jpg: its upscale record alone in EXIF.</summary>
    [Fact]
    public void A_jpg_out_holds_the_upscale_record()
    {
        string input = Picture(3), png = _dir.File("out.png"), jpg = _dir.File("out.jpg");
        Assert.Equal(0, UpscaleCommand.Run(["--image", input, "--upscaler", "Lanczos", "--scale", "2", "--out", png], TextWriter.Null));
        Assert.Equal(0, UpscaleCommand.Run(["--image", input, "--upscaler", "Lanczos", "--scale", "2", "--out", jpg, "--jpeg-quality", "90"], TextWriter.Null));
        PngImage picture = PngFile.Read(png);
        var expected = new MemoryStream();
        JpegFile.Write(expected, new PngImage(picture.Width, picture.Height, 3, picture.Pixels,
            new Dictionary<string, string> { ["parameters"] = picture.Text["postprocessing"] }), 90);
        Assert.Equal(expected.ToArray(), File.ReadAllBytes(jpg));
        Assert.Equal("Postprocess upscale by: 2, Postprocess upscaler: Lanczos", JpegFile.Read(jpg).Text["parameters"]);
    }

    /// <summary>
    /// "Batch from Directory": every picture of the folder (PNG, JPEG, WebP or BMP) in natural name order, each as a single run
    /// writes it, under its own name with .png in a folder made for them; other files, hidden ones and subfolders are
    /// left out.
    /// </summary>
    [Fact]
    public void A_folder_is_upscaled_in_natural_order_into_another()
    {
        string inputs = Directory.CreateDirectory(_dir.File("inputs")).FullName;
        var pixels = new Dictionary<string, PngImage>();
        foreach ((string name, int width) in new[] { ("img10.png", 12), ("img2.png", 9), (".hidden.png", 5) })
        {
            var picture = new byte[width * 7 * 3];
            new Random(width).NextBytes(picture);
            pixels[name] = new PngImage(width, 7, 3, picture);
            PngFile.Write(Path.Combine(inputs, name), pixels[name]);
        }
        File.WriteAllBytes(Path.Combine(inputs, "img3.jpg"), ReferenceFiles.Files(ReferenceFiles.Jpeg, "jpeg")[0]);
        pixels["img3.png"] = JpegFile.Read(Path.Combine(inputs, "img3.jpg"));
        File.WriteAllText(Path.Combine(inputs, "notes.txt"), "not a picture");
        Directory.CreateDirectory(Path.Combine(inputs, "sub"));
        string outputs = _dir.File(Path.Combine("made", "outputs"));
        var log = new StringWriter();
        Assert.Equal(0, UpscaleCommand.Run(["--input-dir", inputs, "--output-dir", outputs, "--upscaler", "Nearest", "--scale", "2"], log));
        Assert.Equal(["img10.png", "img2.png", "img3.png"], Directory.GetFiles(outputs).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (string name in new[] { "img2.png", "img3.png", "img10.png" })
        {
            PngImage source = pixels[name], result = PngFile.Read(Path.Combine(outputs, name));
            UpscaledPicture expected = new PostprocessUpscale { Upscaler = Upscaler.Nearest, Scale = 2 }.Run(source.Pixels, source.Height, source.Width);
            Assert.Equal((expected.Width, expected.Height), (result.Width, result.Height));
            Assert.Equal(expected.Picture, result.Pixels);
        }
        string text = log.ToString();
        Assert.True(text.IndexOf("img2.png", StringComparison.Ordinal) < text.IndexOf("img3.png", StringComparison.Ordinal), text);
        Assert.True(text.IndexOf("img3.png", StringComparison.Ordinal) < text.IndexOf("img10.png", StringComparison.Ordinal), text);
        Assert.Contains($"skipped {Path.Combine(inputs, "notes.txt")}: not a PNG, JPEG, WebP or BMP picture", text);
        Assert.Contains("upscaled 3 of 4 files", text);
    }

    [Fact]
    public void A_batch_needs_two_different_folders_and_no_single_picture_flags()
    {
        string inputs = Directory.CreateDirectory(_dir.File("batch-in")).FullName, outputs = _dir.File("batch-out");
        (string Expected, string[] Flags)[] cases =
        [
            ("upscale: give --image and --out, or --input-dir and --output-dir, not both", ["--input-dir", inputs, "--output-dir", outputs, "--image", Picture(3)]),
            ("upscale: --output-dir is required", ["--input-dir", inputs]),
            ("upscale: --input-dir is required", ["--output-dir", outputs]),
            ($"upscale: --input-dir '{_dir.File("missing")}' is not a folder", ["--input-dir", _dir.File("missing"), "--output-dir", outputs]),
            ("upscale: --output-dir is --input-dir", ["--input-dir", inputs, "--output-dir", inputs + Path.DirectorySeparatorChar]),
            ("upscale: --jpeg-quality sets a .jpg --out's quality; --output-dir gets PNG files", ["--input-dir", inputs, "--output-dir", outputs, "--jpeg-quality", "90"]),
        ];
        foreach ((string expected, string[] flags) in cases)
        {
            var e = Assert.Throws<UsageException>(() => UpscaleCommand.Run([.. flags, "--upscaler", "Lanczos"], TextWriter.Null));
            Assert.StartsWith(expected, e.Message);
        }
        Assert.False(Directory.Exists(outputs));
    }

    [Theory]
    [InlineData("img2.png", "img10.png")]
    [InlineData("a1.png", "a.png")] // ['a', 1, '.png'] against ['a.png']: 'a' comes before 'a.png'
    [InlineData("1.png", "a.png")]
    [InlineData("IMG3.png", "img4.png")]
    [InlineData("x007.png", "x8.png")]
    [InlineData("ab1.png", "abc.png")]
    public void Natural_order_is_a1111s(string first, string second)
    {
        Assert.True(NaturalOrder.Instance.Compare(first, second) < 0);
        Assert.True(NaturalOrder.Instance.Compare(second, first) > 0);
    }
}
