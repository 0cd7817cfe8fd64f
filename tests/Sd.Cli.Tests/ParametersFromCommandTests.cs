using System.Text;
using Sd.Cli.Commands;
using Sd.Loaders;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// sd generate --parameters-from: a picture's parameters (or an infotext file) as the flags that set them, so that an
/// Sd picture is made again exactly; flags given win; what Sd does not take is named, and bad values are the file's.
/// </summary>
public sealed class ParametersFromCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string[]> Runs => new()
    {
        { ["--prompt", "a castle, (on a hill:1.2)", "--negative-prompt", "blurry, dark", "--steps", "3", "--seed", "7", "--scheduler", "dpm++-2m-karras",
            "--clip-skip", "1", "--hires-scale", "1.5", "--hires-steps", "2", "--hires-scheduler", "euler"] },
        { ["--prompt", "a castle\non a hill: at dusk", "--steps", "2", "--seed", "8", "--scheduler", "dpm++-2m", "--prompt-syntax", "plain", "--guidance", "4.5",
            "--guidance-rescale", "0.7"] },
        { ["--prompt", "a castle", "--steps", "3", "--seed", "11", "--variation-seed", "5", "--variation-strength", "0.3", "--scheduler", "euler-a",
            "--hires-scale", "1.5"] },
        { ["--prompt", "a [castle:tower:0.5] BREAK on a hill", "--steps", "3", "--seed", "9", "--scheduler", "unipc", "--prompt-syntax", "chunked"] },
        { ["--prompt", "a castle", "--steps", "2", "--seed", "10", "--scheduler", "heun-beta", "--hires-width", "96", "--hires-height", "0",
            "--hires-strength", "0.5", "--hires-upscaler", "Latent (bicubic)", "--hires-prompt", "a castle, \"sharp\"", "--hires-negative-prompt", "soft"] },
        { ["--prompt", "a castle", "--steps", "2", "--seed", "12", "--seed-resize-from", "40x72", "--variation-seed", "3", "--variation-strength", "0.5",
            "--scheduler", "euler", "--hires-scale", "1.5"] },
    };

    [Theory]
    [MemberData(nameof(Runs))]
    public void A_picture_is_made_again_from_its_parameters(string[] run)
    {
        string first = _dir.File("first.png"), again = _dir.File("again.png");
        Assert.Equal(0, GenerateCommand.Run([.. run, "--width", "64", "--height", "48", "--out", first], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", first, "--out", again], TextWriter.Null));
        PngImage made = PngFile.Read(first), remade = PngFile.Read(again);
        Assert.Equal(made.Text["parameters"], remade.Text["parameters"]);
        Assert.Equal(made.Pixels, remade.Pixels);
    }

    [Fact]
    public void Flags_given_win_over_the_files()
    {
        string first = _dir.File("first.png"), again = _dir.File("again.png"), text = _dir.File("a1111.txt");
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a castle", "--steps", "2", "--width", "64", "--height", "48", "--seed", "3",
            "--hires-scale", "1.5", "--out", first], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", first, "--steps", "1", "--hires-scale", "1", "--out", again], TextWriter.Null));
        PngImage remade = PngFile.Read(again);
        Assert.Equal((64, 48), (remade.Width, remade.Height)); // --hires-scale 1 turns the recorded hires fix off
        Assert.StartsWith("a castle\nNegative prompt: \nSteps: 1, Sampler: Euler a, CFG scale: 7.5, Seed: 3, Size: 64x48,", remade.Text["parameters"]);

        // A sampler Sd does not run is refused, unless --scheduler chooses another.
        File.WriteAllText(text, "a cat\nSteps: 1, Sampler: DPM adaptive, Seed: 5, Size: 64x48");
        var e = Assert.Throws<InvalidFileException>(() => GenerateCommand.Run(["--parameters-from", text, "--out", again], TextWriter.Null));
        Assert.Equal($"{text}: parameters: Sampler 'DPM adaptive' is not one Sd runs; give --scheduler (see `sd generate --help`)", e.Message);
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", text, "--scheduler", "ddim", "--out", again], TextWriter.Null));
        Assert.StartsWith("a cat\nNegative prompt: \nSteps: 1, Sampler: DDIM, CFG scale: 7.5, Seed: 5, Size: 64x48,", PngFile.Read(again).Text["parameters"]);
    }

    [Fact]
    public void A_variation_seed_is_recorded_per_image_and_turned_off_by_strength_0()
    {
        string plain = _dir.File("plain.png"), varied = _dir.File("varied.png"), again = _dir.File("again.png");
        string[] common = ["--prompt", "a castle", "--steps", "2", "--width", "64", "--height", "48", "--seed", "11", "--scheduler", "euler"];
        Assert.Equal(0, GenerateCommand.Run([.. common, "--out", plain], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. common, "--variation-seed", "5", "--variation-strength", "0.3", "--batch-count", "2", "--out", varied], TextWriter.Null));
        PngImage first = PngFile.Read(_dir.File("varied-1.png")), second = PngFile.Read(_dir.File("varied-2.png"));
        Assert.Contains("Seed: 11, Variation seed: 5, Variation seed strength: 0.3, Size: 64x48,", first.Text["parameters"]);
        Assert.Contains("Seed: 11, Variation seed: 6, Variation seed strength: 0.3, Size: 64x48,", second.Text["parameters"]);
        Assert.NotEqual(PngFile.Read(plain).Pixels, first.Pixels);

        // Strength 0 turns a recorded variation off; a variation seed given alone would vary nothing, so it is refused.
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", _dir.File("varied-1.png"), "--variation-strength", "0", "--out", again], TextWriter.Null));
        Assert.Equal(PngFile.Read(plain).Pixels, PngFile.Read(again).Pixels);
        Assert.DoesNotContain("Variation", PngFile.Read(again).Text["parameters"]);
        Assert.Equal("generate: --variation-seed varies the start noise by --variation-strength; give one above 0",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. common, "--variation-seed", "5", "--out", again], TextWriter.Null)).Message);
    }

    private static readonly string[] Flags = ["--parameters-from", "--init-image", "--scheduler", "--prompt", "--hires-scale", "--hires-scheduler", "--hires-upscaler",
        "--mask", "--inpaint-area"];

    private string[] AddTo(string parameters, out List<string> notApplied, params string[] args)
    {
        string path = _dir.File("parameters.txt");
        File.WriteAllText(path, parameters);
        string[] given = ["--parameters-from", path, .. args];
        return RecordedParameters.AddTo(given, new CommandLine("generate", given, Flags, []), out notApplied)[given.Length..];
    }

    [Fact]
    public void A1111s_inpainting_keys_set_their_flags_with_a_mask()
    {
        const string Inpaint = "a\nSteps: 20, Seed: 1, Size: 512x512, Denoising strength: 0.75, Mask blur: 6, Inpaint area: Only masked, " +
            "Masked area padding: 40, Mask mode: Inpaint not masked";
        Assert.Equal(["--strength", "0.75", "--mask-blur", "6", "--inpaint-area", "only-masked", "--masked-padding", "40", "--invert-mask"],
            AddTo(Inpaint, out List<string> notApplied, "--init-image", "cat.png", "--mask", "mask.png")[^9..]);
        Assert.Empty(notApplied);
        // Without a mask none of it applies; a Whole picture given wins over the file's Only masked, whose padding then is not applied.
        AddTo(Inpaint, out notApplied, "--init-image", "cat.png");
        Assert.Equal(["Mask blur", "Inpaint area", "Masked area padding", "Mask mode"], notApplied);
        Assert.Equal(["--strength", "0.75", "--mask-blur", "6", "--invert-mask"],
            AddTo(Inpaint, out notApplied, "--init-image", "cat.png", "--mask", "mask.png", "--inpaint-area", "whole")[^5..]);
        Assert.Equal(["Masked area padding"], notApplied);
        Assert.Equal(["--mask-blur", "4", "--inpaint-area", "whole"],
            AddTo("a\nSteps: 2, Mask blur: 4, Inpaint area: Whole picture, Mask mode: Inpaint masked", out notApplied, "--init-image", "c.png", "--mask", "m.png")[^4..]);
        Assert.Empty(notApplied);
        AddTo("a\nSteps: 2, Seed: 1, Mask mode: Sketch", out notApplied, "--init-image", "c.png", "--mask", "m.png");
        Assert.Equal(["Mask mode"], notApplied);
        Assert.Equal(["--mask-blur", "4", "--masked-content", "fill"],
            AddTo("a\nSteps: 2, Mask blur: 4, Masked content: fill", out notApplied, "--init-image", "c.png", "--mask", "m.png")[^4..]);
        Assert.Empty(notApplied);
        // A1111 leaves out a blur of 0: its other inpainting keys without Mask blur were a run of blur 0.
        Assert.Equal(["--inpaint-area", "only-masked", "--masked-content", "fill", "--mask-blur", "0"],
            AddTo("a\nSteps: 2, Inpaint area: Only masked, Masked content: fill", out notApplied, "--init-image", "c.png", "--mask", "m.png")[^6..]);
        // A1111's latent fills read back as their flag values; an extension's masked content (sd-webui-lama-cleaner's) is not Sd's.
        Assert.Equal(["--mask-blur", "4", "--masked-content", "latent-noise"],
            AddTo("a\nSteps: 2, Mask blur: 4, Masked content: latent noise", out notApplied, "--init-image", "c.png", "--mask", "m.png")[^4..]);
        Assert.Empty(notApplied);
        Assert.Equal(["--masked-content", "latent-nothing", "--mask-blur", "0"],
            AddTo("a\nSteps: 2, Seed: 1, Masked content: latent nothing", out notApplied, "--init-image", "c.png", "--mask", "m.png")[^4..]);
        Assert.Empty(notApplied);
        AddTo("a\nSteps: 2, Seed: 1, Masked content: lama cleaner", out notApplied, "--init-image", "c.png", "--mask", "m.png");
        Assert.Equal(["Masked content"], notApplied);
        // Values A1111 could not have written are the file's errors.
        string path = _dir.File("parameters.txt");
        Assert.Equal($"{path}: parameters: Inpaint area 'Masked only' is not Whole picture or Only masked",
            Assert.Throws<InvalidFileException>(() => AddTo("a\nSteps: 2, Seed: 1, Inpaint area: Masked only", out _, "--init-image", "c.png", "--mask", "m.png")).Message);
        Assert.Equal($"{path}: parameters: Mask blur is 65; A1111's is 0 to 64 pixels",
            Assert.Throws<InvalidFileException>(() => AddTo("a\nSteps: 2, Seed: 1, Mask blur: 65", out _, "--init-image", "c.png", "--mask", "m.png")).Message);
        Assert.Equal($"{path}: parameters: Masked area padding is -1; A1111's is 0 to 256 pixels",
            Assert.Throws<InvalidFileException>(() => AddTo("a\nSteps: 2, Seed: 1, Masked area padding: -1", out _, "--init-image", "c.png", "--mask", "m.png")).Message);
    }

    [Fact]
    public void An_a1111_infotext_sets_what_sd_has_and_names_the_rest()
    {
        const string A1111 = "a cat, \"quoted\"\nNegative prompt: dog\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, " +
            "Seed: 42, Size: 512x768, Model hash: 45dee52b, Model: v1-5, Denoising strength: 0.4, Clip skip: 2, Eta: 0.5, " +
            "Lora hashes: \"a: 1e2f\", Emphasis: No norm, Version: v1.10.1";
        Assert.Equal(["--prompt", "a cat, \"quoted\"", "--negative-prompt", "dog", "--steps", "20", "--guidance", "7", "--seed", "42",
            "--width", "512", "--height", "768", "--clip-skip", "1", "--scheduler", "dpm++-2m-karras"], AddTo(A1111, out List<string> notApplied));
        Assert.Equal(["Denoising strength", "Eta", "Emphasis"], notApplied); // an img2img's strength without its picture
        Assert.Equal(["--prompt", "a cat, \"quoted\"", "--negative-prompt", "dog", "--steps", "20", "--guidance", "7", "--seed", "42",
            "--width", "512", "--height", "768", "--clip-skip", "1", "--strength", "0.4"],
            AddTo(A1111, out notApplied, "--init-image", "cat.png", "--scheduler", "euler"));
        Assert.Equal(["Eta", "Emphasis"], notApplied);

        // A hires fix: its upscale, strength, and a hires sampler without a schedule type on the first pass's one;
        // hires keys Sd has no setting for are named. With an --init-image (img2img) none of it applies.
        const string Hires = "a\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Exponential, Seed: 1, Size: 512x512, Denoising strength: 0.55, " +
            "Hires upscale: 2, Hires upscaler: Latent (nearest), Hires sampler: Heun, Hires checkpoint: other.safetensors, Emphasis: None";
        Assert.Equal(["--prompt", "a", "--negative-prompt", "", "--steps", "20", "--seed", "1", "--width", "512", "--height", "512",
            "--prompt-syntax", "chunked", "--scheduler", "dpm++-2m-exponential", "--hires-strength", "0.55", "--hires-scale", "2",
            "--hires-upscaler", "Latent (nearest)", "--hires-scheduler", "heun-exponential"], AddTo(Hires, out notApplied));
        Assert.Equal(["Hires checkpoint"], notApplied);
        Assert.Equal(["--negative-prompt", "", "--steps", "20", "--seed", "1", "--width", "512", "--height", "512", "--prompt-syntax", "chunked",
            "--strength", "0.55"], AddTo(Hires, out notApplied, "--init-image", "cat.png", "--prompt", "b", "--scheduler", "euler"));
        Assert.Equal(["Hires upscale", "Hires upscaler", "Hires sampler", "Hires checkpoint"], notApplied);
        // A hires schedule type alone is the first pass's sampler on it; a resize is the hires size.
        string hiresSchedule = Hires.Replace("Hires upscale: 2", "Hires resize: 768x0").Replace("Hires sampler: Heun", "Hires schedule type: SGM Uniform");
        Assert.Equal(["--hires-width", "768", "--hires-height", "0", "--hires-upscaler", "Latent (nearest)", "--hires-scheduler", "dpm++-2m"],
            AddTo(hiresSchedule, out _)[^8..]);
        // With --scheduler given, on that one's solver (the file's sampler, which Sd may not run, is not read).
        Assert.Equal(["--hires-scheduler", "euler-sgm-uniform"],
            AddTo(hiresSchedule.Replace("DPM++ 2M", "DPM adaptive"), out _, "--scheduler", "euler-karras")[^2..]);

        // A model upscaler is named, not a file: it must be given.
        string esrgan = Hires.Replace("Latent (nearest)", "R-ESRGAN 4x+");
        Assert.Equal($"{_dir.File("parameters.txt")}: parameters: Hires upscaler 'R-ESRGAN 4x+' is a model upscaler; give its file with --hires-upscaler FILE.safetensors",
            Assert.Throws<InvalidFileException>(() => AddTo(esrgan, out _)).Message);
        Assert.DoesNotContain("--hires-upscaler", AddTo(esrgan, out _, "--hires-upscaler", "x4.safetensors"));

        // A seed resize; A1111's API records none as -1x-1, which is no size and stays one key: taken as none, silently.
        Assert.Equal(["--seed-resize-from", "512x768", "--width", "512"], AddTo(A1111.Replace("Size:", "Seed resize from: 512x768, Size:"), out _)[10..14]);
        Assert.Equal(["--width", "512"], AddTo(A1111.Replace("Size:", "Seed resize from: -1x-1, Size:"), out notApplied)[10..12]);
        Assert.Equal(["Denoising strength", "Eta", "Emphasis"], notApplied);
        // Sides as A1111 uses them (// 8); a value that is no size is named, not taken for none.
        Assert.Equal(["--seed-resize-from", "496x504"], AddTo(A1111.Replace("Size:", "Seed resize from: 500x511, Size:"), out _)[10..12]);
        Assert.Equal(["--width", "512"], AddTo(A1111.Replace("Size:", "Seed resize from: 512x, Size:"), out notApplied)[10..12]);
        Assert.Equal(["Seed resize from", "Denoising strength", "Eta", "Emphasis"], notApplied);
    }

    [Fact]
    public void A_seed_resize_is_recorded_and_turned_off_by_0x0()
    {
        string plain = _dir.File("plain.png"), resized = _dir.File("resized.png"), again = _dir.File("again.png");
        string[] common = ["--prompt", "a castle", "--steps", "2", "--width", "64", "--height", "48", "--seed", "11", "--scheduler", "euler"];
        Assert.Equal(0, GenerateCommand.Run([.. common, "--out", plain], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. common, "--seed-resize-from", "72x40", "--out", resized], TextWriter.Null));
        Assert.Contains("Seed: 11, Seed resize from: 72x40, Size: 64x48,", PngFile.Read(resized).Text["parameters"]);
        Assert.NotEqual(PngFile.Read(plain).Pixels, PngFile.Read(resized).Pixels);
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", resized, "--seed-resize-from", "0x0", "--out", again], TextWriter.Null));
        Assert.Equal(PngFile.Read(plain).Pixels, PngFile.Read(again).Pixels);
        Assert.DoesNotContain("Seed resize", PngFile.Read(again).Text["parameters"]);
        foreach (string bad in new[] { "72", "x40", "72x", "72x-40", "+72x40", "72X40" })
        {
            Assert.Equal($"generate: --seed-resize-from expects WIDTHxHEIGHT, e.g. 512x768, got '{bad}'",
                Assert.Throws<UsageException>(() => GenerateCommand.Run([.. common, "--seed-resize-from", bad, "--out", again], TextWriter.Null)).Message);
        }
    }

    [Fact]
    public void Bad_values_and_files_are_the_files_errors()
    {
        InvalidFileException Refused(string parameters) =>
            Assert.Throws<InvalidFileException>(() => AddTo(parameters, out _));
        string path = _dir.File("parameters.txt");
        Assert.Equal($"{path}: parameters: Steps is 'many', not an integer", Refused("a\nSteps: many, Sampler: Euler, Seed: 1").Message);
        Assert.Equal($"{path}: parameters: CFG scale is 'nan', not a number", Refused("a\nSteps: 2, CFG scale: nan, Seed: 1").Message);
        Assert.Equal($"{path}: parameters: Clip skip is 0; A1111 counts it from 1", Refused("a\nSteps: 2, Clip skip: 0, Seed: 1").Message);
        Assert.Equal($"{path}: parameters: Size-1 is '3000000000', not an integer", Refused("a\nSteps: 2, Size: 3000000000x8, Seed: 1").Message);
        Assert.Equal($"{path}: parameters: Seed is '-1', not a seed (a non-negative integer below 2^64)", Refused("a\nSteps: 2, Seed: -1, Size: 8x8").Message);
        Assert.Equal($"{path}: parameters: CFG scale is '1e39', not a number", Refused("a\nSteps: 2, CFG scale: 1e39, Seed: 1").Message);
        Assert.Equal($"{path}: parameters: Variation seed strength is '1.5', not a number in [0, 1]",
            Refused("a\nSteps: 2, Variation seed: 3, Variation seed strength: 1.5, Seed: 1").Message);

        File.WriteAllBytes(path, [0x61, 0xFF, 0xFE, 0x0A]);
        var e = Assert.Throws<InvalidFileException>(() => GenerateCommand.Run(["--parameters-from", path, "--out", _dir.File("o.png")], TextWriter.Null));
        Assert.Equal($"{path}: neither a picture (PNG, JPEG, WebP) nor UTF-8 text; --parameters-from reads A1111's parameters from either", e.Message);
        string bare = _dir.File("bare.png");
        PngFile.Write(bare, new PngImage(2, 2, 3, new byte[12]));
        e = Assert.Throws<InvalidFileException>(() => GenerateCommand.Run(["--parameters-from", bare, "--out", _dir.File("o.png")], TextWriter.Null));
        Assert.Contains("the picture records no parameters", e.Message);
        Assert.False(File.Exists(_dir.File("o.png")));

        // A text of fewer than 3 pairs is all prompt, as A1111 reads it: the prompt is "BMW, Steps: 2" (and "BM" does
        // not make it a BMP picture).
        File.WriteAllText(path, "BMW, Steps: 2");
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", path, "--steps", "1", "--width", "64", "--height", "48", "--out", _dir.File("o.png")], TextWriter.Null));
        Assert.StartsWith("BMW, Steps: 2\nNegative prompt: \nSteps: 1,", PngFile.Read(_dir.File("o.png")).Text["parameters"]);
        File.WriteAllText(path, "\uFEFFa, Steps: 2");
        Assert.Equal(0, GenerateCommand.Run(["--parameters-from", path, "--steps", "1", "--width", "64", "--height", "48", "--out", _dir.File("o.png")], TextWriter.Null));
        Assert.StartsWith("a, Steps: 2\nNegative prompt: \nSteps: 1,", PngFile.Read(_dir.File("o.png")).Text["parameters"]);
    }
}
