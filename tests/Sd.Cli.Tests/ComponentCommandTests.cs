using Sd.Cli.Commands;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>The component commands end to end on fixture inputs: files in, files out, compared to the references.</summary>
public sealed class ComponentCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Ref(string path) => Fixtures.Path($"tiny/ref/{path}");

    private static void AssertFileClose(string expectedPath, string actualPath, double tolerance)
    {
        float[] expected = NpyFile.Read(expectedPath).ToFloat32();
        float[] actual = NpyFile.Read(actualPath).ToFloat32();
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += Math.Pow(actual[i] - expected[i], 2);
            norm += Math.Pow(expected[i], 2);
        }
        Assert.True(Math.Sqrt(diff / norm) <= tolerance, $"{actualPath}: relative L2 {Math.Sqrt(diff / norm):E2}");
    }

    [FixtureFact]
    public void Tokenize_prints_and_writes_the_pipeline_ids()
    {
        string model = Fixtures.Path("tiny/model");
        string ids = _dir.File("ids.npy");
        var output = new StringWriter();
        Assert.Equal(0, TextCommands.Tokenize(["--model", model, "--prompt", "a photo of an astronaut riding a horse on mars", "--out", ids], output));
        long[] expected = NpyFile.Read(Ref("tokenizer/input_ids.npy")).ToInt64()[..77];
        Assert.Equal(expected, NpyFile.Read(ids).ToInt64());
        Assert.StartsWith("49406 ", output.ToString());
    }

    [FixtureFact]
    public void Encode_text_from_ids_matches_transformers()
    {
        string hidden = _dir.File("hidden.npy");
        Assert.Equal(0, TextCommands.EncodeText(["--model", Fixtures.Path("tiny/model"), "--ids", Ref("clip/input_ids.npy"), "--out", hidden], TextWriter.Null));
        AssertFileClose(Ref("clip/last_hidden_state.npy"), hidden, 1e-5);
    }

    [Fact]
    public void Encode_text_takes_a_prompt_or_ids_not_both()
    {
        string hidden = _dir.File("hidden.npy");
        foreach (string[] text in new[] { new[] { "--prompt", "a", "--ids", "ids.npy" }, [], ["--ids", "ids.npy", "--chunked"] })
        {
            var e = Assert.Throws<UsageException>(() => TextCommands.EncodeText(["--model", "no-such-model", .. text, "--out", hidden], TextWriter.Null));
            Assert.Contains("--ids", e.Message);
        }
    }

    [FixtureFact]
    public void Unet_command_matches_diffusers()
    {
        string eps = _dir.File("eps.npy");
        string dir = Ref("unet/t761.25_float");
        Assert.Equal(0, ModelCommands.UNet(["--model", Fixtures.Path("tiny/model"), "--sample", Path.Combine(dir, "sample.npy"),
            "--timestep-file", Path.Combine(dir, "timestep.npy"), "--context", Path.Combine(dir, "encoder_hidden_states.npy"), "--out", eps], TextWriter.Null));
        AssertFileClose(Path.Combine(dir, "noise_pred.npy"), eps, 1e-4);
        Assert.Throws<UsageException>(() => ModelCommands.UNet(["--model", "m", "--sample", "s", "--context", "c", "--out", eps, "--timestep", "x"], TextWriter.Null));
        var e = Assert.Throws<UsageException>(() => ModelCommands.UNet(["--model", Fixtures.Path("tiny/model"), "--sample", Path.Combine(dir, "sample.npy"),
            "--timestep", "500", "--context", Path.Combine(dir, "encoder_hidden_states.npy"), "--guidance", "8", "--out", eps], TextWriter.Null));
        Assert.Contains("LCM-distilled UNets only", e.Message);
    }

    [FixtureFact]
    public void Inputs_of_the_wrong_dtype_are_refused_naming_the_file()
    {
        string floats = _dir.File("floats.npy"), ints = _dir.File("ints.npy"), output = _dir.File("out.npy");
        NpyFile.Write(floats, NpyArray.FromFloat32(new float[2 * 77], [2, 77]));
        NpyFile.Write(ints, NpyArray.FromInt64(new long[2 * 77 * 32], [2, 77, 32]));
        string model = Fixtures.Path("tiny/model");
        var ids = Assert.Throws<Sd.Loaders.InvalidFileException>(() =>
            TextCommands.EncodeText(["--model", model, "--ids", floats, "--out", output], TextWriter.Null));
        Assert.Equal($"{floats}: expected int64 or int32 data, found float32", ids.Message);
        string dir = Ref("unet/t761.25_float");
        var context = Assert.Throws<Sd.Loaders.InvalidFileException>(() => ModelCommands.UNet(["--model", model,
            "--sample", Path.Combine(dir, "sample.npy"), "--timestep", "1", "--context", ints, "--out", output], TextWriter.Null));
        Assert.Equal($"{ints}: expected float32 or float16 data, found int64", context.Message);
        string[] generate = ["generate", "--model", model, "--prompt", "x", "--width", "64", "--height", "64", "--steps", "1",
            "--latents", ints, "--out", _dir.File("x.png")];
        var latents = Assert.Throws<Sd.Loaders.InvalidFileException>(() => GenerateCommand.Run(generate[1..], TextWriter.Null));
        Assert.Equal($"{ints}: expected float32 or float16 data, found int64", latents.Message);
        // Through Program.Main, as a user meets it: exit code 1 (a message), not an unhandled exception.
        Assert.Equal(1, Program.Main(generate));
        Assert.False(File.Exists(output));
        Assert.False(File.Exists(_dir.File("x.png")));
    }

    [FixtureFact]
    public void Unet_command_on_a_single_file_with_config_matches_diffusers()
    {
        string single = _dir.File("tiny.safetensors");
        using (var folder = Sd.Loaders.ModelSource.Open(Fixtures.Path("tiny/model")))
        {
            LdmKeyExporter.Write(folder, single);
        }
        string eps = _dir.File("eps.npy");
        string dir = Ref("unet/t761.25_float");
        // The file stores no head count; --config gives tiny's own (8 heads, where the SD guess would be 1).
        Assert.Equal(0, ModelCommands.UNet(["--model", single, "--config", Fixtures.Path("tiny/model"), "--sample", Path.Combine(dir, "sample.npy"),
            "--timestep-file", Path.Combine(dir, "timestep.npy"), "--context", Path.Combine(dir, "encoder_hidden_states.npy"), "--out", eps], TextWriter.Null));
        AssertFileClose(Path.Combine(dir, "noise_pred.npy"), eps, 1e-4);
        // A config folder for a diffusers folder model is refused (exit code 1, the message says why).
        Assert.Equal(1, Program.Main(["unet", "--model", Fixtures.Path("tiny/model"), "--config", Fixtures.Path("tiny/model"),
            "--sample", Path.Combine(dir, "sample.npy"), "--timestep", "1", "--context", Path.Combine(dir, "encoder_hidden_states.npy"), "--out", eps]));
    }

    [FixtureFact]
    public void Vae_commands_match_diffusers_and_write_a_png()
    {
        string decoded = _dir.File("x.npy");
        string png = _dir.File("x.png");
        string dir = Ref("vae_decode/dec32");
        Assert.Equal(0, ModelCommands.VaeDecode(["--model", Fixtures.Path("tiny/model"), "--latents", Path.Combine(dir, "decoder_input.npy"), "--out", decoded, "--png", png], TextWriter.Null));
        AssertFileClose(Path.Combine(dir, "decoded.npy"), decoded, 1e-4);
        PngImage picture = PngFile.Read(png);
        float[] reference = NpyFile.Read(Path.Combine(dir, "image.npy")).ToFloat32(); // NHWC in [0, 1]
        for (int i = 0; i < picture.Pixels.Length; i++)
        {
            Assert.True(Math.Abs(picture.Pixels[i] - reference[i] * 255) <= 0.5 + 1e-3, $"pixel byte {i}: {picture.Pixels[i]} vs {reference[i] * 255}");
        }

        string mean = _dir.File("mean.npy");
        string logvar = _dir.File("logvar.npy");
        string enc = Ref("vae_encode/enc64");
        Assert.Equal(0, ModelCommands.VaeEncode(["--model", Fixtures.Path("tiny/model"), "--image", Path.Combine(enc, "image.png"), "--out", mean, "--out-logvar", logvar], TextWriter.Null));
        AssertFileClose(Path.Combine(enc, "posterior_mean.npy"), mean, 1e-4);
        AssertFileClose(Path.Combine(enc, "posterior_logvar.npy"), logvar, 1e-4);
    }

    [FixtureFact]
    public void Vae_encode_reads_a_picture_by_its_signature_not_its_name()
    {
        string enc = Ref("vae_encode/enc64");
        string mean = _dir.File("mean.npy");
        foreach (string name in new[] { "photo.jpg", "picture" })
        {
            string image = _dir.File(name);
            File.Copy(Path.Combine(enc, "image.png"), image);
            Assert.Equal(0, ModelCommands.VaeEncode(["--model", Fixtures.Path("tiny/model"), "--image", image, "--out", mean], TextWriter.Null));
            AssertFileClose(Path.Combine(enc, "posterior_mean.npy"), mean, 1e-4);
        }
        string gif = _dir.Write("real.gif", "GIF89a\x01\x00\x01\x00"u8.ToArray());
        var e = Assert.Throws<Sd.Loaders.InvalidFileException>(() =>
            ModelCommands.VaeEncode(["--model", Fixtures.Path("tiny/model"), "--image", gif, "--out", mean], TextWriter.Null));
        Assert.Equal($"{gif}: --image must be a PNG, JPEG, WebP or BMP picture or a .npy array; this file starts as none of them (other formats are not read)", e.Message);
        // A JPEG is read as one, and its damage is reported as such.
        string jpeg = _dir.Write("cut.png", [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, (byte)'J', (byte)'F', (byte)'I', (byte)'F']);
        e = Assert.Throws<Sd.Loaders.InvalidFileException>(() =>
            ModelCommands.VaeEncode(["--model", Fixtures.Path("tiny/model"), "--image", jpeg, "--out", mean], TextWriter.Null));
        Assert.Equal($"{jpeg}: the APP0 segment declares 16 bytes, but only 6 remain", e.Message);
    }

    [FixtureFact]
    public void Generate_reproduces_a_fixture_run_and_writes_its_parameters_into_the_png()
    {
        string dir = Ref("txt2img/eulerancestral_6");
        string png = _dir.File("out.png");
        string latents = _dir.File("final.npy");
        var output = new StringWriter();
        Assert.Equal(0, GenerateCommand.Run(["--model", Fixtures.Path("tiny/model"), "--prompt", "a photo of an astronaut riding a horse on mars",
            "--negative-prompt", "blurry, low quality, watermark", "--steps", "6", "--guidance", "7.5", "--scheduler", "euler-a",
            "--width", "64", "--height", "64", "--latents", Path.Combine(dir, "initial_latents.npy"), "--noise-dir", dir,
            "--out", png, "--out-latents", latents], output));
        AssertFileClose(Path.Combine(dir, "final_latents.npy"), latents, 1e-3);
        PngImage picture = PngFile.Read(png);
        Assert.Equal(64, picture.Width);
        Assert.Contains("Sampler: Euler a", picture.Text["parameters"]);
        Assert.Contains("step 6/6", output.ToString());
        Assert.Contains("VAE decode", output.ToString());
        Assert.Throws<UsageException>(() => GenerateCommand.Run(["--model", "m", "--prompt", "p", "--out", png, "--steps", "x"], TextWriter.Null));
    }
}
