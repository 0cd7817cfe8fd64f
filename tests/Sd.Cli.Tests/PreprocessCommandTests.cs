using Sd.Cli.Commands;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd preprocess</c> and <c>sd generate --control-preprocessor</c>: the canny edges (CvCanny, checked against
/// OpenCV in the kernel tests) of the picture's RGB pixels, the thresholds reaching them, and bad flags refused.
/// </summary>
public sealed class PreprocessCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A 20x10 picture: a bright square with a dimmer band across it, over noise.</summary>
    private string Photo(string name, int channels = 3)
    {
        var pixels = new byte[20 * 10 * channels];
        var random = new Random(4);
        for (int y = 0; y < 10; y++)
        {
            for (int x = 0; x < 20; x++)
            {
                int value = (x is >= 5 and < 15 && y is >= 2 and < 8 ? 200 : 30) - (y == 5 ? 60 : 0) + random.Next(8);
                for (int c = 0; c < channels; c++) pixels[(y * 20 + x) * channels + c] = (byte)(value + c * 7);
            }
        }
        string path = _dir.File(name);
        PngFile.Write(path, new PngImage(20, 10, channels, pixels));
        return path;
    }

    private static byte[] Edges(PngImage picture, double low, double high)
    {
        var edges = new byte[picture.Width * picture.Height];
        CvCanny.Detect(picture.Pixels, picture.Height, picture.Width, 3, low, high, edges);
        return edges;
    }

    [Fact]
    public void Canny_writes_the_edges_in_three_channels_with_the_thresholds_given()
    {
        string photo = Photo("photo.png"), defaults = _dir.File("edges.png"), low = _dir.File("low.png");
        Assert.Equal(0, PreprocessCommand.Run(["--image", photo, "--preprocessor", "canny", "--out", defaults], TextWriter.Null));
        Assert.Equal(0, PreprocessCommand.Run(["--image", photo, "--preprocessor", "canny", "--canny-low", "10", "--canny-high", "40", "--out", low], TextWriter.Null));
        PngImage source = PngFile.Read(photo);
        foreach ((string path, double l, double h) in new[] { (defaults, 100.0, 200.0), (low, 10.0, 40.0) })
        {
            PngImage result = PngFile.Read(path);
            Assert.Equal((20, 10, 3), (result.Width, result.Height, result.Channels));
            byte[] expected = Edges(source, l, h);
            Assert.Contains(expected, e => e == 255);
            for (int p = 0; p < expected.Length; p++)
            {
                Assert.Equal((expected[p], expected[p], expected[p]), (result.Pixels[p * 3], result.Pixels[p * 3 + 1], result.Pixels[p * 3 + 2]));
            }
        }
        // The band's weaker edges pass the lower thresholds only.
        Assert.NotEqual(PngFile.Read(defaults).Pixels, PngFile.Read(low).Pixels);
    }

    [Fact]
    public void Invert_writes_255_minus_each_rgb_value()
    {
        foreach (int channels in (int[])[3, 4])
        {
            string photo = Photo($"photo{channels}.png", channels), inverted = _dir.File($"inverted{channels}.png");
            Assert.Equal(0, PreprocessCommand.Run(["--image", photo, "--preprocessor", "invert", "--out", inverted], TextWriter.Null));
            PngImage source = PngFile.Read(photo), result = PngFile.Read(inverted);
            Assert.Equal((20, 10, 3), (result.Width, result.Height, result.Channels));
            for (int i = 0; i < result.Pixels.Length; i++)
            {
                Assert.Equal(255 - source.Pixels[i / 3 * channels + i % 3], result.Pixels[i]); // an RGBA picture's alpha is dropped
            }
        }
    }

    /// <summary>--input-dir: every picture of a folder, in natural order, to --output-dir/NAME.png; other files skipped.</summary>
    [Fact]
    public void A_folder_is_preprocessed_picture_by_picture()
    {
        string inputs = _dir.File("frames"), outputs = _dir.File("edges");
        Directory.CreateDirectory(inputs);
        File.Copy(Photo("a.png"), Path.Combine(inputs, "frame10.png"));
        File.Copy(Photo("b.png", 1), Path.Combine(inputs, "frame2.png"));
        File.WriteAllText(Path.Combine(inputs, "notes.txt"), "not a picture");
        File.WriteAllText(Path.Combine(inputs, ".hidden.png"), "hidden");
        var output = new StringWriter();
        Assert.Equal(0, PreprocessCommand.Run(["--input-dir", inputs, "--output-dir", outputs, "--preprocessor", "canny", "--canny-low", "10", "--canny-high", "40"], output));
        string text = output.ToString();
        Assert.True(text.IndexOf("frame2.png", StringComparison.Ordinal) < text.IndexOf("frame10.png", StringComparison.Ordinal), text);
        Assert.Contains($"skipped {Path.Combine(inputs, "notes.txt")}", text);
        Assert.Contains("preprocessed 2 of 3 files", text);
        Assert.Equal(["frame10.png", "frame2.png"], Directory.GetFiles(outputs).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        PngImage source = PngFile.Read(Path.Combine(inputs, "frame10.png")), edges = PngFile.Read(Path.Combine(outputs, "frame10.png"));
        byte[] expected = Edges(source, 10, 40);
        for (int p = 0; p < expected.Length; p++) Assert.Equal(expected[p], edges.Pixels[p * 3]);
        Assert.Contains("preprocess: --output-dir is --input-dir",
            Assert.Throws<UsageException>(() => PreprocessCommand.Run(["--input-dir", inputs, "--output-dir", inputs, "--preprocessor", "invert"], TextWriter.Null)).Message);
        Assert.Contains("preprocess: give --image and --out, or --input-dir and --output-dir, not both",
            Assert.Throws<UsageException>(() => PreprocessCommand.Run(["--input-dir", inputs, "--output-dir", outputs, "--image", "x.png", "--preprocessor", "invert"],
                TextWriter.Null)).Message);
    }

    [Fact]
    public void A_gray_picture_is_taken_as_rgb()
    {
        string gray = Photo("gray.png", 1), out1 = _dir.File("gray-edges.png");
        Assert.Equal(0, PreprocessCommand.Run(["--image", gray, "--preprocessor", "canny", "--out", out1], TextWriter.Null));
        PngImage source = PngFile.Read(gray);
        var rgb = new byte[source.Pixels.Length * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = source.Pixels[i / 3];
        byte[] expected = Edges(new PngImage(20, 10, 3, rgb), 100, 200);
        PngImage result = PngFile.Read(out1);
        for (int p = 0; p < expected.Length; p++) Assert.Equal(expected[p], result.Pixels[p * 3]);
    }

    [Fact]
    public void Bad_flags_are_refused_before_anything_is_written()
    {
        string photo = Photo("photo.png"), output = _dir.File("out.png");
        static string Refused(string[] args) => Assert.Throws<UsageException>(() => PreprocessCommand.Run(args, TextWriter.Null)).Message;
        Assert.Contains("--preprocessor is none, canny, invert or inpaint, got 'depth'", Refused(["--image", photo, "--preprocessor", "depth", "--out", output]));
        Assert.Contains("--preprocessor none would copy the picture", Refused(["--image", photo, "--preprocessor", "none", "--out", output]));
        Assert.Contains("which no picture file holds; sd generate makes it", Refused(["--image", photo, "--preprocessor", "inpaint", "--out", output]));
        Assert.Contains("--canny-low and --canny-high go with --preprocessor canny",
            Refused(["--image", photo, "--preprocessor", "invert", "--canny-high", "50", "--out", output]));
        Assert.Contains("--canny-low expects a number, got 'nan'", Refused(["--image", photo, "--preprocessor", "canny", "--canny-low", "nan", "--out", output]));
        Assert.Contains("--preprocessor is required", Refused(["--image", photo, "--out", output]));
        Assert.Contains("give a name ending in .png, .jpg or .jpeg", Refused(["--image", photo, "--preprocessor", "canny", "--out", _dir.File("out.bmp")]));
        Assert.False(File.Exists(output));
        Assert.Throws<FileNotFoundException>(() => PreprocessCommand.Run(["--image", _dir.File("missing.png"), "--preprocessor", "canny", "--out", output], TextWriter.Null));
        Assert.False(File.Exists(output));
    }

    /// <summary>
    /// generate --control-preprocessor canny is generate with the edges sd preprocess writes as --control-image, bit
    /// for bit, and is recorded with its thresholds.
    /// </summary>
    [FixtureFact]
    public void Generate_with_canny_is_generate_with_the_edges_given()
    {
        string controlNet = TinyControlNet.Write(_dir.File("tiny-controlnet"));
        string photo = Photo("photo.png"), edges = _dir.File("edges.png");
        Assert.Equal(0, PreprocessCommand.Run(["--image", photo, "--preprocessor", "canny", "--canny-low", "10", "--canny-high", "40.5", "--out", edges], TextWriter.Null));
        string[] common = ["--model", Fixtures.Path("tiny/model"), "--prompt", "a cat", "--steps", "2", "--width", "32", "--height", "24", "--seed", "7",
            "--controlnet", controlNet];
        string given = _dir.File("given.png"), made = _dir.File("made.png"), plain = _dir.File("plain.png");
        Assert.Equal(0, GenerateCommand.Run([.. common, "--control-image", edges, "--out", given], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. common, "--control-image", photo, "--control-preprocessor", "canny", "--canny-low", "10", "--canny-high", "40.5",
            "--out", made], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. common, "--control-image", photo, "--out", plain], TextWriter.Null));
        PngImage a = PngFile.Read(given), b = PngFile.Read(made);
        Assert.True(a.Pixels.AsSpan().SequenceEqual(b.Pixels), "the preprocessed run differs from the run given the edges");
        Assert.False(a.Pixels.AsSpan().SequenceEqual(PngFile.Read(plain).Pixels), "the photograph as it is steers as its edges do");
        Assert.EndsWith("ControlNet 0: \"Module: canny, Model: tiny-controlnet, Weight: 1, Resize Mode: Just Resize, Threshold A: 10, Threshold B: 40.5, " +
            "Guidance Start: 0, Guidance End: 1\"", b.Text["parameters"]);
        Assert.Contains("Module: none", a.Text["parameters"]);
        // With a hires fix, a canny unit's second pass gets A1111's soft weights; the same edges given as a picture do not.
        string givenHires = _dir.File("given-hires.png"), madeHires = _dir.File("made-hires.png");
        Assert.Equal(0, GenerateCommand.Run([.. common, "--control-image", edges, "--hires-scale", "2", "--hires-steps", "1", "--out", givenHires], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. common, "--control-image", photo, "--control-preprocessor", "canny", "--canny-low", "10", "--canny-high", "40.5",
            "--hires-scale", "2", "--hires-steps", "1", "--out", madeHires], TextWriter.Null));
        Assert.False(PngFile.Read(givenHires).Pixels.AsSpan().SequenceEqual(PngFile.Read(madeHires).Pixels), "the canny unit's hires pass was not softened");

        string output = _dir.File("out.png");
        static string Refused(string[] args) => Assert.Throws<UsageException>(() => GenerateCommand.Run(args, TextWriter.Null)).Message;
        Assert.Contains("generate: --canny-low and --canny-high go with --control-preprocessor canny",
            Refused([.. common, "--control-image", photo, "--canny-high", "90", "--out", output]));
        Assert.Contains("generate: --control-preprocessor is none, canny, invert or inpaint, got 'Canny'",
            Refused([.. common, "--control-image", photo, "--control-preprocessor", "Canny", "--out", output]));
        Assert.Contains("--control-preprocessor goes with --controlnet",
            Refused(["--model", Fixtures.Path("tiny/model"), "--prompt", "a cat", "--control-preprocessor", "canny", "--out", output]));
        Assert.False(File.Exists(output));
    }

    /// <summary>
    /// --control-preprocessor inpaint masks the control picture with the run's --mask: it steers otherwise than the
    /// picture alone, is recorded, and needs a mask of the picture's size.
    /// </summary>
    [FixtureFact]
    public void Generate_with_inpaint_masks_the_control_picture_with_the_runs_mask()
    {
        string controlNet = TinyControlNet.Write(_dir.File("tiny-controlnet"));
        string photo = _dir.File("photo.png"), mask = _dir.File("mask.png"), small = _dir.File("small.png");
        var pixels = new byte[32 * 24 * 3];
        new Random(5).NextBytes(pixels);
        PngFile.Write(photo, new PngImage(32, 24, 3, pixels));
        var marks = new byte[32 * 24];
        for (int y = 6; y < 18; y++) marks.AsSpan(y * 32 + 10, 12).Fill(255);
        PngFile.Write(mask, new PngImage(32, 24, 1, marks));
        PngFile.Write(small, new PngImage(16, 12, 1, new byte[16 * 12]));
        string[] common = ["--model", Fixtures.Path("tiny/model"), "--prompt", "a cat", "--steps", "2", "--seed", "7", "--init-image", photo,
            "--strength", "0.9", "--controlnet", controlNet, "--control-image", photo];
        string masked = _dir.File("masked.png"), plain = _dir.File("plain.png"), inverted = _dir.File("inverted.png");
        Assert.Equal(0, GenerateCommand.Run([.. common, "--mask", mask, "--control-preprocessor", "inpaint", "--out", masked], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. common, "--mask", mask, "--out", plain], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. common, "--mask", mask, "--invert-mask", "--control-preprocessor", "inpaint", "--out", inverted], TextWriter.Null));
        PngImage a = PngFile.Read(masked), b = PngFile.Read(plain);
        Assert.False(a.Pixels.AsSpan().SequenceEqual(b.Pixels), "the inpainting condition steers as the plain picture does");
        Assert.False(a.Pixels.AsSpan().SequenceEqual(PngFile.Read(inverted).Pixels), "--invert-mask changed nothing");
        Assert.Contains("ControlNet 0: \"Module: inpaint, Model: tiny-controlnet,", a.Text["parameters"]);

        string output = _dir.File("out.png");
        static string Refused(string[] args) => Assert.Throws<UsageException>(() => GenerateCommand.Run(args, TextWriter.Null)).Message;
        Assert.Contains("--control-preprocessor inpaint masks the control picture with the run's --mask; give --init-image and --mask",
            Refused([.. common, "--control-preprocessor", "inpaint", "--out", output]));
        Assert.Contains("it does not go with --inpaint-area only-masked or --resize-mode crop|fill",
            Refused([.. common, "--mask", mask, "--control-preprocessor", "inpaint", "--inpaint-area", "only-masked", "--out", output]));
        Assert.Contains("it does not go with --inpaint-area only-masked or --resize-mode crop|fill",
            Refused([.. common, "--mask", mask, "--control-preprocessor", "inpaint", "--resize-mode", "crop", "--out", output]));
        Assert.Contains("--control-preprocessor inpaint makes a condition that is just resized",
            Refused([.. common, "--mask", mask, "--control-preprocessor", "inpaint", "--control-resize-mode", "fill", "--out", output]));
        Assert.Contains($"--control-image {photo} is 32x24 and --mask 16x12",
            Refused([.. common, "--mask", small, "--control-preprocessor", "inpaint", "--inpaint-area", "whole", "--out", output]));
        Assert.False(File.Exists(output));
    }
}
