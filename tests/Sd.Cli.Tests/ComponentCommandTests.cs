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

    [FixtureFact]
    public void Unet_command_matches_diffusers()
    {
        string eps = _dir.File("eps.npy");
        string dir = Ref("unet/t761.25_float");
        Assert.Equal(0, ModelCommands.UNet(["--model", Fixtures.Path("tiny/model"), "--sample", Path.Combine(dir, "sample.npy"),
            "--timestep-file", Path.Combine(dir, "timestep.npy"), "--context", Path.Combine(dir, "encoder_hidden_states.npy"), "--out", eps], TextWriter.Null));
        AssertFileClose(Path.Combine(dir, "noise_pred.npy"), eps, 1e-4);
        Assert.Throws<UsageException>(() => ModelCommands.UNet(["--model", "m", "--sample", "s", "--context", "c", "--out", eps, "--timestep", "x"], TextWriter.Null));
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
}
