using Sd.Cli.Commands;
using Sd.Loaders;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd generate</c>'s outputs and option combinations are checked before it generates anything (a real generation
/// takes minutes), and what it writes holds any prompt. Runs the built-in demo model: no fixtures needed.
/// </summary>
public sealed class GenerateOutputTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string[] Small(params string[] more) => ["--prompt", "p", "--steps", "2", "--width", "64", "--height", "64", .. more];

    private static UsageException Refused(params string[] args) =>
        Assert.Throws<UsageException>(() => GenerateCommand.Run(Small(args), TextWriter.Null));

    [Fact]
    public void A_prompt_outside_Latin1_is_written_to_the_png()
    {
        string png = _dir.File("u.png"), prompt = "a \u201Cquoted\u201D caf\u00E9, \u65E5\u672C, \U0001F600";
        Assert.Equal(0, GenerateCommand.Run(["--prompt", prompt, "--negative-prompt", "\u00E9t\u00E9 \u2014 blur", "--steps", "2",
            "--width", "64", "--height", "64", "--out", png], TextWriter.Null));
        string parameters = PngFile.Read(png).Text["parameters"];
        Assert.StartsWith($"{prompt}\nNegative prompt: \u00E9t\u00E9 \u2014 blur\nSteps: 2,", parameters);
    }

    [Fact]
    public void Outputs_in_a_missing_folder_or_naming_a_folder_are_refused_up_front()
    {
        string missing = _dir.File(Path.Combine("nowhere", "x.png"));
        Assert.Equal($"generate: --out: {missing}: the folder {_dir.File("nowhere")} does not exist", Refused("--out", missing).Message);
        Assert.Contains("--out-latents", Refused("--out", _dir.File("a.png"), "--out-latents", _dir.File(Path.Combine("nowhere", "l.npy"))).Message);
        Assert.Equal($"generate: --out: '{_dir.Path}' names a directory, not a file", Refused("--out", _dir.Path).Message);
        // PNG or JPEG is what is written: another name would make the bytes pass for another format.
        foreach (string name in new[] { "a.webp", "a", "a.png.txt", "a.jpe" })
        {
            Assert.Equal($"generate: --out '{_dir.File(name)}': pictures are written as PNG or JPEG; give a name ending in .png, .jpg or .jpeg",
                Refused("--out", _dir.File(name)).Message);
        }
        // A batch's names are made from the path given, which must name a file too (not "folder/-1").
        Assert.Contains("names a directory", Refused("--out", _dir.Path + Path.DirectorySeparatorChar, "--batch-count", "2").Message);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));
    }

    /// <summary>
    /// A .jpg or .jpeg --out is the same picture written as A1111 saves a .jpg (the writer's bytes are Pillow's and
    /// piexif's, JpegWriterTests): the parameters in EXIF, read back by --parameters-from; a batch's names keep the
    /// extension.
    /// </summary>
    [Fact]
    public void A_jpg_out_is_the_picture_saved_as_A1111_saves_a_jpg()
    {
        string png = _dir.File("a.png"), jpg = _dir.File("a.jpg"), best = _dir.File("best.JPEG");
        Assert.Equal(0, GenerateCommand.Run(Small("--seed", "3", "--out", png), TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run(Small("--seed", "3", "--out", jpg), TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run(Small("--seed", "3", "--out", best, "--jpeg-quality", "100"), TextWriter.Null));
        PngImage picture = PngFile.Read(png);
        Assert.Equal(Jpeg(picture, 80), File.ReadAllBytes(jpg));
        Assert.Equal(Jpeg(picture, 100), File.ReadAllBytes(best));
        Assert.Equal(picture.Text["parameters"], JpegFile.Read(jpg).Text["parameters"]);

        string again = _dir.File("again.png");
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", jpg, "--out", again], TextWriter.Null));
        Assert.Equal(File.ReadAllBytes(png), File.ReadAllBytes(again));

        Assert.Equal(0, GenerateCommand.Run(Small("--seed", "3", "--out", _dir.File("b.jpg"), "--batch-count", "2"), TextWriter.Null));
        Assert.Equal(File.ReadAllBytes(jpg), File.ReadAllBytes(_dir.File("b-1.jpg")));
        Assert.True(File.Exists(_dir.File("b-2.jpg")));
    }

    [Fact]
    public void A_jpeg_quality_needs_a_jpg_out_within_1_to_100()
    {
        string jpg = _dir.File("q.jpg");
        Assert.Equal($"generate: --jpeg-quality sets a JPEG's quality; --out '{_dir.File("q.png")}' is a PNG",
            Refused("--out", _dir.File("q.png"), "--jpeg-quality", "90").Message);
        Assert.Equal("generate: --jpeg-quality must be from 1 to 100, got 101", Refused("--out", jpg, "--jpeg-quality", "101").Message);
        Assert.Equal("generate: --jpeg-quality must be from 1 to 100, got 0", Refused("--out", jpg, "--jpeg-quality", "0").Message);
        Assert.Equal("generate: --jpeg-quality expects an integer, got 'high'", Refused("--out", jpg, "--jpeg-quality", "high").Message);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));
    }

    /// <summary>
    /// EXIF holds parameters of 32,739 UTF-16 characters: longer ones are refused before the run, not after it, counted
    /// whole (the settings written around the prompts, and a batch's longest seed).
    /// </summary>
    [Fact]
    public void Parameters_too_long_for_a_jpegs_exif_are_refused_before_the_run()
    {
        // The plain syntax cuts the prompt for the model (with a warning) but records it whole.
        string[] Args(int negative, string output, string count) => ["--prompt", "p", "--negative-prompt", new string('n', negative), "--prompt-syntax", "plain",
            "--steps", "2", "--width", "64", "--height", "64", "--seed", "9", "--batch-count", count, "--out", output];
        string png = _dir.File("short.png");
        Assert.Equal(0, GenerateCommand.Run(Args(1, png, "1"), TextWriter.Null));
        int fits = JpegFile.MaxParametersChars - (PngFile.Read(png).Text["parameters"].Length - 1);
        string jpg = _dir.File("longest.jpg");
        Assert.Equal(0, GenerateCommand.Run(Args(fits, jpg, "1"), TextWriter.Null));
        Assert.Equal(32739, JpegFile.Read(jpg).Text["parameters"].Length);
        // One character more, or a second image whose seed (10) has one digit more.
        const string Refusal = "generate: the parameters would have 32740 characters; a JPEG's EXIF holds at most 32739: write a .png";
        Assert.Equal(Refusal, Refused(Args(fits + 1, _dir.File("longer.jpg"), "1")));
        Assert.Equal(Refusal, Refused(Args(fits, _dir.File("batch.jpg"), "2")));
        Assert.Equal(["longest.jpg", "short.png"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName).Order());

        static string Refused(string[] args) => Assert.Throws<UsageException>(() => GenerateCommand.Run(args, TextWriter.Null)).Message;
    }

    private static byte[] Jpeg(PngImage picture, int quality)
    {
        var stream = new MemoryStream();
        JpegFile.Write(stream, picture, quality);
        return stream.ToArray();
    }

    [Fact]
    public void Stray_arguments_and_seeds_past_2_to_the_64_are_refused()
    {
        string png = _dir.File("a.png");
        Assert.Contains("unexpected argument 'extra'", Refused("--out", png, "extra").Message);
        // Image i is drawn with seed S + i: a batch from 2^64 - 1 would wrap to seed 0.
        var e = Assert.Throws<ArgumentException>(() => GenerateCommand.Run(Small("--out", png, "--batch-count", "2", "--seed", ulong.MaxValue.ToString()), TextWriter.Null));
        Assert.Contains($"seed {ulong.MaxValue} leaves no room for 2 images", e.Message);
        Assert.Equal(0, GenerateCommand.Run(Small("--out", png, "--seed", ulong.MaxValue.ToString()), TextWriter.Null));
    }

    [Fact]
    public void A_terminal_message_drops_the_CSharp_parameter_name()
    {
        Assert.Equal("steps must be at least 1, got 0", Program.Describe(new ArgumentException("steps must be at least 1, got 0", "request")));
        Assert.Equal("clip skip must be in [0, 11], got 12", Program.Describe(new ArgumentOutOfRangeException("clipSkip", 12, "clip skip must be in [0, 11]")));
        Assert.Equal("disk full", Program.Describe(new IOException("disk full")));
    }

    [Fact]
    public void Two_outputs_of_the_same_file_are_refused_up_front()
    {
        string png = _dir.File("x.png");
        Assert.Equal($"generate: --out and --out-latents would both write {png}", Refused("--out", png, "--out-latents", png).Message);
        Assert.Equal($"generate: --out and --out-image-npy would both write {png}",
            Refused("--out", png, "--out-image-npy", png, "--batch-count", "2").Message);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));
    }

    [UnixFact]
    public void A_device_is_refused_and_a_link_is_written_through()
    {
        Assert.Contains("'/dev/null' is a device or system file", Refused("--out", "/dev/null").Message);
        string link = _dir.File("link.png"), target = _dir.File("target.png");
        File.CreateSymbolicLink(link, target);
        Assert.Equal(0, GenerateCommand.Run(Small("--out", link), TextWriter.Null));
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.Equal(64, PngFile.Read(target).Width);
    }

    [Fact]
    public void Options_that_would_be_ignored_are_refused()
    {
        Assert.Contains("--strength sets how much of an --init-image", Refused("--out", _dir.File("a.png"), "--strength", "0.5").Message);
        Assert.Contains("img2img (--init-image without --mask) starts from the picture",
            Refused("--out", _dir.File("a.png"), "--latents", "l.npy", "--init-image", "i.png").Message);
    }

    [Fact]
    public void Initial_latents_of_another_shape_are_refused_naming_the_file()
    {
        string flat = _dir.File("flat.npy"), nhwc = _dir.File("nhwc.npy"), png = _dir.File("a.png");
        NpyFile.Write(flat, NpyArray.FromFloat32(new float[256], [256]));
        NpyFile.Write(nhwc, NpyArray.FromFloat32(new float[256], [1, 8, 8, 4]));
        var e = Assert.Throws<InvalidFileException>(() => GenerateCommand.Run(Small("--out", png, "--latents", flat), TextWriter.Null));
        Assert.Equal($"{flat}: initial latents are [256]; a 64x64 image needs [1, 4, 8, 8] (NCHW)", e.Message);
        e = Assert.Throws<InvalidFileException>(() => GenerateCommand.Run(Small("--out", png, "--latents", nhwc), TextWriter.Null));
        Assert.Contains("initial latents are [1, 8, 8, 4]", e.Message);
        Assert.False(File.Exists(png));
    }

    [UnixFact]
    public void Outputs_are_compared_and_checked_by_their_real_paths()
    {
        string self = _dir.File("self"), devices = _dir.File("devices");
        Directory.CreateSymbolicLink(self, _dir.Path);
        Directory.CreateSymbolicLink(devices, "/dev");
        string png = _dir.File("b.png"), same = Path.Combine(self, "b.png");
        Assert.Equal($"generate: --out and --out-image-npy would both write {png}", Refused("--out", png, "--out-image-npy", same).Message);
        // Through a linked folder, "null" is /dev/null.
        Assert.Contains("is a device or system file (/dev/null)", Refused("--out", Path.Combine(devices, "null")).Message);
        Assert.False(File.Exists(png));
    }

    [Fact]
    public void An_invalid_size_is_named_before_the_inputs_that_must_match_it()
    {
        string latents = _dir.File("l.npy");
        NpyFile.Write(latents, NpyArray.FromFloat32(new float[256], [1, 4, 8, 8]));
        var e = Assert.Throws<ArgumentException>(() => GenerateCommand.Run(
            ["--prompt", "p", "--steps", "2", "--width", "60", "--height", "64", "--out", _dir.File("a.png"), "--latents", latents], TextWriter.Null));
        Assert.Contains("positive multiples of 8", e.Message);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("3")]
    public void SD_THREADS_unset_or_a_count_passes(string? value) => Program.CheckThreadSetting(value);

    [Theory]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("4096")]
    public void SD_THREADS_that_is_not_a_count_is_a_usage_error(string value) =>
        Assert.Equal($"SD_THREADS='{value}' must be a whole number of threads from 1 to 1024",
            Assert.Throws<UsageException>(() => Program.CheckThreadSetting(value)).Message);
}
