using Sd.Cli.Commands;
using Sd.Engine.Imaging;
using Sd.Loaders;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd generate --init-image</c> with pictures of another size: the output size defaults to the picture's (to a
/// multiple of 8), the picture and mask are resized by --resize-mode, and masks read as gray. Runs the demo model.
/// </summary>
public sealed class InitImageCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A seeded noise picture, RGB, written as a PNG; returns its path.</summary>
    private string Picture(string name, int width, int height, int seed)
    {
        var pixels = new byte[width * height * 3];
        new Random(seed).NextBytes(pixels);
        string path = _dir.File(name);
        PngFile.Write(path, new PngImage(width, height, 3, pixels));
        return path;
    }

    private static readonly string[] Common = ["--prompt", "a castle", "--steps", "2", "--seed", "4", "--scheduler", "euler"];

    private int _runs;

    /// <summary>Runs generate with <see cref="Common"/> and <paramref name="args"/> to a new PNG, returned with its path.</summary>
    private (PngImage Picture, string Path) Made(params string[] args)
    {
        string output = _dir.File($"out-{++_runs}.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, .. args, "--out", output], TextWriter.Null));
        return (PngFile.Read(output), output);
    }

    private PngImage Run(params string[] args) => Made(args).Picture;

    [Theory]
    [InlineData("just")]
    [InlineData("crop")]
    [InlineData("fill")]
    public void A_picture_of_another_size_is_resized_as_the_mode_says(string mode)
    {
        string picture = Picture("in.png", 100, 75, 1), mask = _dir.File("mask.png");
        var maskPixels = new byte[100 * 75];
        for (int y = 20; y < 50; y++) maskPixels.AsSpan(y * 100 + 30, 40).Fill(255);
        PngFile.Write(mask, new PngImage(100, 75, 1, maskPixels));
        var resizeMode = mode switch { "crop" => ResizeMode.Crop, "fill" => ResizeMode.Fill, _ => ResizeMode.Just };
        string resized = _dir.File("resized.png"), resizedMask = _dir.File("resized-mask.png");
        PngFile.Write(resized, PictureResize.Resize(PngFile.Read(picture), 48, 64, resizeMode));
        PngFile.Write(resizedMask, PictureResize.Resize(PngFile.Read(mask), 48, 64, resizeMode));

        // The same run as from the pictures resized beforehand, img2img and inpainting alike.
        PngImage made = Run("--init-image", picture, "--width", "48", "--height", "64", "--resize-mode", mode);
        Assert.Equal(Run("--init-image", resized, "--width", "48", "--height", "64").Pixels, made.Pixels);
        (PngImage inpainted, string first) = Made("--init-image", picture, "--mask", mask, "--width", "48", "--height", "64", "--resize-mode", mode);
        Assert.Equal(Run("--init-image", resized, "--mask", resizedMask, "--width", "48", "--height", "64").Pixels, inpainted.Pixels);

        // Sd records a mode other than Just resize, and --parameters-from reads it back.
        string expected = mode switch { "crop" => "Resize mode: Crop and resize, ", "fill" => "Resize mode: Resize and fill, ", _ => "" };
        Assert.Contains($"Denoising strength: 0.8, {expected}CFG scale:", made.Text["parameters"]);
        string again = _dir.File("again.png");
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", first, "--init-image", picture, "--mask", mask, "--out", again], TextWriter.Null));
        Assert.Equal(inpainted.Pixels, PngFile.Read(again).Pixels);
    }

    [Fact]
    public void Without_a_size_the_output_is_the_pictures_to_a_multiple_of_8()
    {
        string picture = Picture("in.png", 100, 75, 2);
        PngImage made = Run("--init-image", picture);
        Assert.Equal((96, 72), (made.Width, made.Height));
        Assert.Contains("Size: 96x72,", made.Text["parameters"]);
        // One side given, the other the picture's.
        PngImage wide = Run("--init-image", picture, "--width", "64");
        Assert.Equal((64, 72), (wide.Width, wide.Height));
        string sliver = Picture("sliver.png", 5, 40, 3);
        Assert.Equal($"{sliver}: a 5x40 picture has a side outside 8 to 16384 pixels; give --width and --height for the output",
            Assert.Throws<InvalidFileException>(() => Run("--init-image", sliver)).Message);
        string wider = Picture("wider.png", 16392, 8, 4);
        Assert.Equal($"{wider}: a 16392x8 picture has a side outside 8 to 16384 pixels; give --width and --height for the output",
            Assert.Throws<InvalidFileException>(() => Run("--init-image", wider)).Message);
        Assert.Equal(64, Run("--init-image", sliver, "--width", "64", "--height", "64").Width);
    }

    [Fact]
    public void A_colour_mask_is_read_as_pillows_gray()
    {
        string picture = Picture("in.png", 64, 64, 5), red = _dir.File("red.png"), black = _dir.File("black.png");
        var pixels = new byte[64 * 64 * 3];
        for (int i = 0; i < pixels.Length; i += 3) pixels[i] = 255;
        PngFile.Write(red, new PngImage(64, 64, 3, pixels));
        PngFile.Write(black, new PngImage(64, 64, 1, new byte[64 * 64]));
        // Pure red is gray 76 (below half: keep), as diffusers' convert("L") reads it, not its red channel's 255.
        Assert.Equal(Run("--init-image", picture, "--mask", black).Pixels, Run("--init-image", picture, "--mask", red).Pixels);
    }

    [Fact]
    public void A_resize_mode_needs_a_picture_and_a_known_name()
    {
        Assert.Equal("generate: --resize-mode brings an --init-image (and --mask) to the output size; give one",
            Assert.Throws<UsageException>(() => Run("--resize-mode", "crop")).Message);
        string picture = Picture("in.png", 64, 64, 6);
        Assert.Equal("generate: --resize-mode expects just, crop or fill, got 'Crop'",
            Assert.Throws<UsageException>(() => Run("--init-image", picture, "--resize-mode", "Crop")).Message);
        // A sliver cannot fill or cover a square: the picture's error.
        string sliver = Picture("sliver.png", 1, 300, 7);
        Assert.StartsWith($"{sliver}: a 1x300 picture fitted into 64x64 at its aspect ratio would be 0x64",
            Assert.Throws<InvalidFileException>(() => Run("--init-image", sliver, "--width", "64", "--height", "64", "--resize-mode", "fill")).Message);
    }
}
