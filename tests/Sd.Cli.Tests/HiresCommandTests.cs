using Sd.Cli.Commands;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>sd generate's --hires-* flags: the hires fix's size, its A1111 parameters, and what goes together.</summary>
public sealed class HiresCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string[] Common = ["--prompt", "a castle", "--steps", "2", "--width", "64", "--height", "48", "--seed", "3", "--scheduler", "euler"];

    [Fact]
    public void A_scale_or_a_size_upscales_and_the_png_records_it_as_a1111_does()
    {
        string scaled = _dir.File("scaled.png"), sized = _dir.File("sized.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--hires-scale", "1.5", "--out", scaled], TextWriter.Null));
        PngImage picture = PngFile.Read(scaled);
        Assert.Equal((96, 72), (picture.Width, picture.Height)); // int(64 x 1.5), int(48 x 1.5) floored to 8s
        Assert.Contains("Size: 64x48, Clip skip: 1, ", picture.Text["parameters"]);
        Assert.Contains("Sampler: Euler, Denoising strength: 0.7, Hires upscale: 1.5, Hires upscaler: Latent, CFG scale: 7.5,", picture.Text["parameters"]);

        // One side 0 keeps the aspect ratio: 100 x 48 // 64 = 75, both floored to 8s.
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--hires-width", "100", "--hires-height", "0", "--hires-strength", "0.5",
            "--hires-steps", "3", "--out", sized], TextWriter.Null));
        picture = PngFile.Read(sized);
        Assert.Equal((96, 72), (picture.Width, picture.Height));
        Assert.Contains("Denoising strength: 0.5, Hires resize: 100x0, Hires steps: 3, Hires upscaler: Latent, ", picture.Text["parameters"]);

        // Another aspect ratio is covered and cropped, as A1111 sizes it: 64x48 to 128x128 upscales to 170x128
        // (21 x 16 latents), then (170 - 128) // 8 = 5 latents of width are cropped: 16 x 16 latents, 128x128.
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--hires-width", "128", "--hires-height", "128", "--out", sized], TextWriter.Null));
        picture = PngFile.Read(sized);
        Assert.Equal((128, 128), (picture.Width, picture.Height));
        Assert.Contains("Hires resize: 128x128, Hires upscaler: Latent, ", picture.Text["parameters"]);
        // 100x100 upscales to 133x100: (133 - 100) // 8 = 4 latents cropped from 16, and 100 // 8 = 12: 96x96.
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--hires-width", "100", "--hires-height", "100", "--out", sized], TextWriter.Null));
        Assert.Equal((96, 96), (PngFile.Read(sized).Width, PngFile.Read(sized).Height));

        // An upscale to the same size is no hires fix at all, as in A1111.
        string plain = _dir.File("plain.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--out", plain], TextWriter.Null));
        foreach (string[] same in (string[][])[["--hires-scale", "1"], ["--hires-width", "64", "--hires-height", "48"], ["--hires-width", "0", "--hires-height", "48"]])
        {
            Assert.Equal(0, GenerateCommand.Run([.. Common, .. same, "--out", sized], TextWriter.Null));
            Assert.Equal(PngFile.Read(plain).Pixels, PngFile.Read(sized).Pixels);
            Assert.DoesNotContain("Hires", PngFile.Read(sized).Text["parameters"]);
        }

        // int(640 x 1.3) is 832 in doubles (a float32 1.3 gives 831.99997, so 824); --hires-steps 0 is --steps.
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a", "--steps", "1", "--width", "640", "--height", "16", "--scheduler", "euler",
            "--hires-scale", "1.3", "--hires-steps", "0", "--out", scaled], TextWriter.Null));
        picture = PngFile.Read(scaled);
        Assert.Equal((832, 16), (picture.Width, picture.Height)); // int(16 x 1.3) = 20, floored to 16
        Assert.DoesNotContain("Hires steps", picture.Text["parameters"]);

        // Its own scheduler and prompts, under A1111's keys (a value with a comma quoted as A1111 quotes it).
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--hires-scale", "1.5", "--hires-scheduler", "dpm++-2s-a-karras",
            "--hires-prompt", "a castle, at night", "--hires-negative-prompt", "blurry", "--out", scaled], TextWriter.Null));
        Assert.Contains("Hires upscaler: Latent, Hires sampler: DPM++ 2S a, Hires schedule type: Karras, Hires prompt: \"a castle, at night\", " +
            "Hires negative prompt: blurry, CFG scale", PngFile.Read(scaled).Text["parameters"]);
    }

    /// <summary>
    /// A1111's latent upscalers by their names or as one word, and its image upscalers without a model, in any case,
    /// recorded under A1111's names, each running its own: the latents are the library's with that
    /// <see cref="HiresFix.Upscaler"/> or <see cref="HiresFix.ImageUpscaler"/>.
    /// </summary>
    [Fact]
    public void The_upscalers_are_named_as_a1111_names_them()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var size = new HiresFix { Width = 96, Height = 72 };
        (string Given, string Recorded, HiresFix Fix)[] upscalers =
        [
            ("latent", "Latent", size with { Upscaler = InterpolationMode.Bilinear }),
            ("Latent (antialiased)", "Latent (antialiased)", size with { Upscaler = InterpolationMode.BilinearAntialiased }),
            ("latent-bicubic", "Latent (bicubic)", size with { Upscaler = InterpolationMode.Bicubic }),
            ("LATENT (BICUBIC ANTIALIASED)", "Latent (bicubic antialiased)", size with { Upscaler = InterpolationMode.BicubicAntialiased }),
            ("latent-nearest", "Latent (nearest)", size with { Upscaler = InterpolationMode.Nearest }),
            ("Latent (nearest-exact)", "Latent (nearest-exact)", size with { Upscaler = InterpolationMode.NearestExact }),
            ("lanczos", "Lanczos", size with { ImageUpscaler = ImageUpscaler.Lanczos }),
            ("None", "None", size with { ImageUpscaler = ImageUpscaler.None }),
            ("NEAREST", "Nearest", size with { ImageUpscaler = ImageUpscaler.Nearest }),
        ];
        foreach ((string given, string recorded, HiresFix fix) in upscalers)
        {
            string png = _dir.File("upscaled.png"), latents = _dir.File("upscaled.npy");
            Assert.Equal(0, GenerateCommand.Run([.. Common, "--hires-scale", "1.5", "--hires-upscaler", given, "--out", png, "--out-latents", latents], TextWriter.Null));
            Assert.Contains($"Hires upscale: 1.5, Hires upscaler: {recorded}, CFG scale", PngFile.Read(png).Text["parameters"]);

            GenerateRequest request = pipeline.WithModelDefaults(new GenerateRequest
            {
                Prompt = "a castle", Steps = 2, Width = 64, Height = 48, Seed = 3, Scheduler = "euler", PromptSyntax = PromptSyntax.Weighted,
                Hires = fix,
            });
            using GenerateResult result = pipeline.Generate(request);
            Assert.Equal(NpyTensors.AsNchwArray(result.Latents).ToFloat32(), NpyFile.Read(latents).ToFloat32());
        }
    }

    [Theory]
    [InlineData("the --hires-* options set a hires fix", "--hires-steps", "3")]
    [InlineData("the --hires-* options set a hires fix", "--hires-prompt", "a tree")]
    [InlineData("the --hires-* options set a hires fix", "--hires-upscaler", "latent-bicubic")]
    [InlineData("--hires-upscaler 'R-ESRGAN 4x+' is none of A1111's latent upscalers (Latent, Latent (antialiased),", "--hires-scale", "2", "--hires-upscaler", "R-ESRGAN 4x+")]
    [InlineData("or its image upscalers without a model (Lanczos, None, Nearest), nor an ESRGAN model file", "--hires-scale", "2", "--hires-upscaler", "ScuNET")]
    [InlineData("not both", "--hires-scale", "2", "--hires-width", "128", "--hires-height", "128")]
    [InlineData("--hires-scale must be above 0 and at most 16, got 0", "--hires-scale", "0")]
    [InlineData("one of them above 0", "--hires-width", "0", "--hires-height", "0")]
    [InlineData("makes a 0x0 image", "--hires-scale", "0.1")]
    public void Flags_that_do_not_go_together_are_refused(string expected, params string[] flags)
    {
        var e = Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common, .. flags, "--out", _dir.File("x.png")], TextWriter.Null));
        Assert.Contains(expected, e.Message);
        Assert.False(File.Exists(_dir.File("x.png")));
    }
}
