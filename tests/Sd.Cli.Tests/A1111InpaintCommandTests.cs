using Sd.Cli.Commands;
using Sd.Engine.Imaging;
using Sd.Loaders;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd generate --mask-blur / --inpaint-area / --masked-padding / --invert-mask / --masked-content</c>: A1111's inpainting around a
/// run is the plain run of <see cref="A1111Inpaint"/>'s pictures with its overlay laid over the result, the picture's
/// own pixels come back wherever the mask does not reach, the latent fills change the run, and the settings are
/// recorded and read back. Runs the demo model.
/// </summary>
public sealed class A1111InpaintCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string[] Common = ["--prompt", "a castle", "--steps", "2", "--seed", "4", "--scheduler", "euler"];

    private int _files;

    private string Write(PngImage picture)
    {
        string path = _dir.File($"in-{++_files}.png");
        PngFile.Write(path, picture);
        return path;
    }

    private static PngImage Noise(int width, int height, int seed)
    {
        var pixels = new byte[width * height * 3];
        new Random(seed).NextBytes(pixels);
        return new PngImage(width, height, 3, pixels);
    }

    /// <summary>A gray mask, white in the box (x, y, width, height).</summary>
    private static PngImage Mask(int width, int height, int x, int y, int boxWidth, int boxHeight)
    {
        var pixels = new byte[width * height];
        for (int row = y; row < y + boxHeight; row++) pixels.AsSpan(row * width + x, boxWidth).Fill(255);
        return new PngImage(width, height, 1, pixels);
    }

    private PngImage Run(params string[] args)
    {
        string output = _dir.File($"out-{++_files}.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, .. args, "--out", output], TextWriter.Null));
        return PngFile.Read(output);
    }

    /// <summary>--parameters-from <paramref name="made"/>'s parameters, with the same pictures, makes it again.</summary>
    private void ReadsBack(PngImage made, string picturePath, string maskPath)
    {
        string first = _dir.File("first.png"), again = _dir.File("again.png");
        PngFile.Write(first, made);
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", first, "--init-image", picturePath, "--mask", maskPath, "--out", again], TextWriter.Null));
        Assert.Equal(made.Pixels, PngFile.Read(again).Pixels);
    }

    /// <summary>The plain (diffusers) run of the prepared pictures, finished with their overlay.</summary>
    private PngImage Expected(A1111Inpaint inpaint, PngImage picture, params string[] size)
    {
        string[] mask = inpaint.Mask is { } m ? ["--mask", Write(m)] : [];
        PngImage plain = Run([.. size, "--init-image", Write(inpaint.Picture), .. mask]);
        return inpaint.Finish(plain);
    }

    [Fact]
    public void Whole_picture_is_the_plain_run_of_a1111s_pictures_under_its_overlay()
    {
        PngImage picture = Noise(64, 64, 1), mask = Mask(64, 64, 16, 20, 24, 16);
        string picturePath = Write(picture), maskPath = Write(mask);
        PngImage made = Run("--init-image", picturePath, "--mask", maskPath, "--mask-blur", "3");
        A1111Inpaint inpaint = A1111Inpaint.Prepare(picture, mask, 64, 64, ResizeMode.Just, new InpaintSettings { MaskBlur = 3 });
        Assert.Equal(Expected(inpaint, picture).Pixels, made.Pixels);
        // Beyond the blur's reach (8 pixels at blur 3) the picture's own pixels come back; inside, the run's.
        Assert.Equal(picture.Pixels.AsSpan(0, 64 * 3 * 10).ToArray(), made.Pixels.AsSpan(0, 64 * 3 * 10).ToArray());
        Assert.NotEqual(picture.Pixels.AsSpan(28 * 64 * 3 + 28 * 3, 8 * 3).ToArray(), made.Pixels.AsSpan(28 * 64 * 3 + 28 * 3, 8 * 3).ToArray());
        Assert.Contains("Denoising strength: 0.8, Mask blur: 3, CFG scale:", made.Text["parameters"]);
        // Without A1111's flags Sd inpaints as diffusers does: nothing is laid over the run.
        Assert.NotEqual(made.Pixels, Run("--init-image", picturePath, "--mask", maskPath).Pixels);
    }

    [Fact]
    public void A_see_through_picture_of_another_size_is_flattened_and_resized_by_the_mode()
    {
        var pixels = new byte[72 * 56 * 4];
        new Random(6).NextBytes(pixels);
        PngImage picture = new(72, 56, 4, pixels), mask = Mask(72, 56, 20, 20, 30, 16);
        string picturePath = Write(picture), maskPath = Write(mask);
        PngImage made = Run("--init-image", picturePath, "--mask", maskPath, "--width", "48", "--height", "48", "--resize-mode", "crop", "--mask-blur", "2");
        A1111Inpaint inpaint = A1111Inpaint.Prepare(picture, mask, 48, 48, ResizeMode.Crop, new InpaintSettings { MaskBlur = 2 });
        Assert.Equal(Expected(inpaint, picture, "--width", "48", "--height", "48").Pixels, made.Pixels);
        Assert.Contains("Resize mode: Crop and resize, Mask blur: 2, CFG scale:", made.Text["parameters"]);
        // Flattened onto white (A1111's images.flatten), not its alpha dropped.
        Assert.NotEqual(PictureResize.Resize(ImageConversion.AsRgb(picture), 48, 48, ResizeMode.Crop).Pixels, inpaint.Picture.Pixels);
    }

    [Fact]
    public void Only_masked_repaints_the_region_at_the_run_size_and_scales_it_back()
    {
        PngImage picture = Noise(80, 72, 2), mask = Mask(80, 72, 40, 30, 12, 10);
        string picturePath = Write(picture), maskPath = Write(mask);
        string[] flags = ["--init-image", picturePath, "--mask", maskPath, "--width", "48", "--height", "48", "--inpaint-area", "only-masked", "--masked-padding", "6"];
        PngImage made = Run(flags);
        A1111Inpaint inpaint = A1111Inpaint.Prepare(picture, mask, 48, 48, ResizeMode.Just, new InpaintSettings { OnlyMasked = true, Padding = 6 });
        // The blurred mask's box (10 pixels past the mask at blur 4), padded by 6 and grown to a square.
        Assert.Equal(new PictureRegion(24, 13, 44, 44), inpaint.PasteTo);
        Assert.Equal((80, 72), (made.Width, made.Height));
        Assert.Equal(Expected(inpaint, picture, "--width", "48", "--height", "48").Pixels, made.Pixels);
        // Rows above the region are the picture's own.
        Assert.Equal(picture.Pixels.AsSpan(0, 80 * 3 * 13).ToArray(), made.Pixels.AsSpan(0, 80 * 3 * 13).ToArray());
        string parameters = made.Text["parameters"];
        Assert.Contains("Mask blur: 4, Inpaint area: Only masked, Masked area padding: 6, CFG scale:", parameters);
        Assert.Contains("Size: 48x48,", parameters);

        // --parameters-from reads the settings back.
        ReadsBack(made, picturePath, maskPath);
    }

    [Fact]
    public void An_inverted_mask_repaints_the_black_area_and_reads_back()
    {
        PngImage picture = Noise(48, 48, 3), mask = Mask(48, 48, 8, 8, 20, 20);
        var inverted = new PngImage(48, 48, 1, [.. mask.Pixels.Select(v => (byte)(255 - v))]);
        string picturePath = Write(picture), maskPath = Write(mask);
        PngImage made = Run("--init-image", picturePath, "--mask", maskPath, "--invert-mask", "--mask-blur", "0");
        Assert.Equal(Run("--init-image", picturePath, "--mask", Write(inverted), "--mask-blur", "0").Pixels, made.Pixels);
        Assert.Contains("Mask mode: Inpaint not masked, Mask blur: 0, CFG scale:", made.Text["parameters"]);
        ReadsBack(made, picturePath, maskPath);
    }

    [Fact]
    public void Fill_starts_the_run_from_the_filled_picture_and_reads_back()
    {
        PngImage picture = Noise(64, 56, 7), mask = Mask(64, 56, 20, 16, 20, 20);
        string picturePath = Write(picture), maskPath = Write(mask);
        foreach (string[] area in new[] { new[] { "--inpaint-area", "whole" }, ["--inpaint-area", "only-masked", "--masked-padding", "4"] })
        {
            PngImage made = Run(["--init-image", picturePath, "--mask", maskPath, "--masked-content", "fill", .. area]);
            var settings = new InpaintSettings { MaskedContent = MaskedContent.Fill, OnlyMasked = area[1] == "only-masked", Padding = 4 };
            A1111Inpaint inpaint = A1111Inpaint.Prepare(picture, mask, 64, 56, ResizeMode.Just, settings);
            Assert.Equal(Expected(inpaint, picture, "--width", "64", "--height", "56").Pixels, made.Pixels);
            Assert.Contains("Masked content: fill, CFG scale:", made.Text["parameters"]);
            // The run starts from another picture than "original" does; the overlay still puts the picture's own back.
            Assert.NotEqual(Run(["--init-image", picturePath, "--mask", maskPath, .. area]).Pixels, made.Pixels);
            Assert.Equal(picture.Pixels.AsSpan(0, 64 * 3 * 4).ToArray(), made.Pixels.AsSpan(0, 64 * 3 * 4).ToArray());
            ReadsBack(made, picturePath, maskPath);
        }
    }

    [Fact]
    public void Latent_fills_start_the_run_from_other_latents_and_read_back()
    {
        PngImage picture = Noise(64, 56, 8), mask = Mask(64, 56, 16, 16, 24, 24);
        string picturePath = Write(picture), maskPath = Write(mask);
        byte[] original = Run("--init-image", picturePath, "--mask", maskPath, "--masked-content", "original").Pixels;
        var made = new List<byte[]>();
        foreach ((string flag, string recorded) in new[] { ("latent-noise", "latent noise"), ("latent-nothing", "latent nothing") })
        {
            PngImage run = Run("--init-image", picturePath, "--mask", maskPath, "--masked-content", flag);
            Assert.Contains($"Masked content: {recorded}, CFG scale:", run.Text["parameters"]);
            Assert.NotEqual(original, run.Pixels);
            // The overlay still puts the picture's own pixels back beyond the mask's blur.
            Assert.Equal(picture.Pixels.AsSpan(0, 64 * 3 * 4).ToArray(), run.Pixels.AsSpan(0, 64 * 3 * 4).ToArray());
            ReadsBack(run, picturePath, maskPath);
            // A run from noise alone never sees the fill (a warning says so).
            Assert.Equal(Run("--init-image", picturePath, "--mask", maskPath, "--masked-content", "original", "--strength", "1").Pixels,
                Run("--init-image", picturePath, "--mask", maskPath, "--masked-content", flag, "--strength", "1").Pixels);
            made.Add(run.Pixels);
        }
        Assert.NotEqual(made[0], made[1]);
        // Only masked with nothing to repaint runs img2img: A1111 fills nothing, and nothing is recorded.
        string blank = Write(new PngImage(64, 56, 1, new byte[64 * 56]));
        PngImage img2img = Run("--init-image", picturePath, "--mask", blank, "--inpaint-area", "only-masked", "--masked-content", "latent-noise");
        Assert.Equal(Run("--init-image", picturePath).Pixels, img2img.Pixels);
        Assert.DoesNotContain("Masked content", img2img.Text["parameters"]);
    }

    [Fact]
    public void A_blank_mask_under_only_masked_runs_img2img()
    {
        PngImage picture = Noise(48, 40, 4);
        string picturePath = Write(picture), blank = Write(new PngImage(48, 40, 1, new byte[48 * 40]));
        PngImage made = Run("--init-image", picturePath, "--mask", blank, "--inpaint-area", "only-masked");
        Assert.Equal(Run("--init-image", picturePath).Pixels, made.Pixels);
        // Recorded, unlike in A1111, so that it reads back as it ran.
        Assert.Contains("Mask blur: 4, Inpaint area: Only masked, Masked area padding: 32, CFG scale:", made.Text["parameters"]);
        ReadsBack(made, picturePath, blank);
        string latents = _dir.File("latents.npy");
        NpyFile.Write(latents, NpyArray.FromFloat32(new float[4 * 5 * 6], [1, 4, 5, 6]));
        Assert.Equal("generate: the --mask has nothing to repaint, so --inpaint-area only-masked runs img2img, which --latents cannot start",
            Assert.Throws<UsageException>(() => Run("--init-image", picturePath, "--mask", blank, "--inpaint-area", "only-masked", "--latents", latents)).Message);
    }

    [Fact]
    public void Bad_settings_are_refused()
    {
        string picture = Write(Noise(48, 48, 5)), mask = Write(Mask(48, 48, 0, 0, 8, 8)), small = Write(Mask(40, 48, 0, 0, 8, 8));
        Assert.Equal("generate: --mask-blur, --inpaint-area, --masked-padding, --invert-mask and --masked-content shape an inpainting run; give --init-image and --mask",
            Assert.Throws<UsageException>(() => Run("--init-image", picture, "--mask-blur", "4")).Message);
        Assert.Throws<UsageException>(() => Run("--init-image", picture, "--masked-content", "fill"));
        Assert.Equal("generate: --masked-content expects original, fill, latent-noise or latent-nothing, got 'latent noise'",
            Assert.Throws<UsageException>(() => Run("--init-image", picture, "--mask", mask, "--masked-content", "latent noise")).Message);
        Assert.Throws<UsageException>(() => Run("--mask", mask, "--invert-mask"));
        Assert.Equal("generate: --inpaint-area expects whole or only-masked, got 'Only masked'",
            Assert.Throws<UsageException>(() => Run("--init-image", picture, "--mask", mask, "--inpaint-area", "Only masked")).Message);
        Assert.Equal("generate: --masked-padding pads the region --inpaint-area only-masked repaints; give that",
            Assert.Throws<UsageException>(() => Run("--init-image", picture, "--mask", mask, "--masked-padding", "8")).Message);
        Assert.Equal("generate: --mask-blur must be in [0, 64] pixels, got 65",
            Assert.Throws<UsageException>(() => Run("--init-image", picture, "--mask", mask, "--mask-blur", "65")).Message);
        Assert.Equal("generate: --masked-padding must be in [0, 256] pixels, got -1",
            Assert.Throws<UsageException>(() => Run("--init-image", picture, "--mask", mask, "--inpaint-area", "only-masked", "--masked-padding", "-1")).Message);
        Assert.Equal($"{small}: Only masked cuts the same region out of the picture and the mask: the mask is 40x48, the picture 48x48",
            Assert.Throws<InvalidFileException>(() => Run("--init-image", picture, "--mask", small, "--inpaint-area", "only-masked")).Message);
    }
}
