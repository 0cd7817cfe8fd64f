using Sd.Cli.Commands;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Layout;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>--vae</c> on the tiny fixture model: its own VAE given back as a separate file in the original naming decodes
/// bit for bit as before; another VAE changes the picture, not the latents, and is recorded in the PNG.
/// </summary>
public sealed class SeparateVaeCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Model => Fixtures.Path("tiny/model");

    [FixtureFact]
    public void The_models_own_vae_as_a_separate_file_decodes_bit_for_bit()
    {
        using ModelSource model = ModelSource.Open(Model);
        string vae = WriteOriginalNames(model.Vae!, model.Weights(ModelComponent.Vae).Entries.Select(
            entry => (entry.Name, entry.DType, entry.Shape, entry.File.GetBytes(entry.Stored).ToArray())), "tiny-vae.safetensors");
        string latents = Fixtures.Path("tiny/ref/vae_decode/dec32/decoder_input.npy");
        string own = _dir.File("own.npy"), separate = _dir.File("separate.npy");
        Assert.Equal(0, ModelCommands.VaeDecode(["--model", Model, "--latents", latents, "--out", own], TextWriter.Null));
        Assert.Equal(0, ModelCommands.VaeDecode(["--model", Model, "--vae", vae, "--latents", latents, "--out", separate], TextWriter.Null));
        Assert.Equal(NpyFile.Read(own).ToFloat32(), NpyFile.Read(separate).ToFloat32());
    }

    [FixtureFact]
    public void Another_vae_changes_the_picture_not_the_latents_and_is_recorded()
    {
        using ModelSource model = ModelSource.Open(Model);
        using SafetensorsFile other = SafetensorsFile.InMemory("other", RandomModelWriter.Weights(DiffusersLayout.Vae(model.Vae!), TensorDType.F32, seed: 5));
        string vae = WriteOriginalNames(model.Vae!, other.Tensors.Select(
            tensor => (tensor.Name, tensor.DType, tensor.Shape, other.GetBytes(tensor).ToArray())), "other-vae.safetensors");

        string[] common = ["--model", Model, "--prompt", "a boat", "--steps", "2", "--width", "64", "--height", "64", "--seed", "3"];
        string plain = _dir.File("plain.png"), changed = _dir.File("changed.png");
        Assert.Equal(0, GenerateCommand.Run([.. common, "--out", plain, "--out-latents", _dir.File("plain.npy")], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. common, "--vae", vae, "--out", changed, "--out-latents", _dir.File("changed.npy")], TextWriter.Null));
        Assert.Equal(NpyFile.Read(_dir.File("plain.npy")).ToFloat32(), NpyFile.Read(_dir.File("changed.npy")).ToFloat32());
        PngImage before = PngFile.Read(plain), after = PngFile.Read(changed);
        Assert.False(before.Pixels.AsSpan().SequenceEqual(after.Pixels), "the other VAE painted the latents otherwise");
        Assert.EndsWith("Model: model, VAE: other-vae.safetensors", after.Text["parameters"]);
        Assert.DoesNotContain("VAE:", before.Text["parameters"]);
        Assert.Contains("--vae choose a --model's files", Assert.Throws<UsageException>(() =>
            GenerateCommand.Run(["--prompt", "a", "--vae", vae, "--out", plain], TextWriter.Null)).Message);
    }

    [FixtureFact]
    public void A_folder_model_takes_a_separate_vae_in_place_of_a_missing_one_and_info_shows_it()
    {
        // The tiny model without its vae/ folder (model_index.json still lists one): the separate VAE is all it needs.
        string model = _dir.File("no-vae-model");
        foreach (string file in Directory.GetFiles(Model, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(Model, file);
            if (relative.StartsWith("vae", StringComparison.Ordinal)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(model, relative))!);
            File.Copy(file, Path.Combine(model, relative));
        }
        string vae;
        using (ModelSource own = ModelSource.Open(Model))
        {
            vae = WriteOriginalNames(own.Vae!, own.Weights(ModelComponent.Vae).Entries.Select(
                entry => (entry.Name, entry.DType, entry.Shape, entry.File.GetBytes(entry.Stored).ToArray())), "vae.safetensors");
        }
        Assert.ThrowsAny<IOException>(() => ModelSource.Open(model)); // without --vae it lacks its VAE

        var output = new StringWriter();
        Assert.Equal(0, InfoCommand.Run([model, "--vae", vae], output));
        string info = output.ToString();
        Assert.Contains($"source:  {vae}", info);
        Assert.Contains("guessed: scaling factor 0.18215", info);
        Assert.Contains("give --vae a VAE folder with its config.json", info);
        string decoded = _dir.File("decoded.npy");
        Assert.Equal(0, ModelCommands.VaeDecode(["--model", model, "--vae", Path.Combine(Model, "vae"), "--latents",
            Fixtures.Path("tiny/ref/vae_decode/dec32/decoder_input.npy"), "--out", decoded], TextWriter.Null));
    }

    /// <summary>The VAE as a standalone file in the original naming, as vae-ft-mse-840000-ema-pruned.safetensors has it.</summary>
    private string WriteOriginalNames(Sd.Loaders.Config.VaeConfig config,
        IEnumerable<(string Name, TensorDType DType, long[] Shape, byte[] Bytes)> tensors, string name)
    {
        var writer = new SafetensorsWriter();
        foreach ((string diffusersName, TensorDType dtype, long[] shape, byte[] bytes) in tensors)
        {
            string key = LdmKeyExporter.Vae(diffusersName, config, out bool addTrailing1x1)[LdmKeyExporter.VaePrefix.Length..];
            writer.Add(key, dtype, addTrailing1x1 ? [.. shape, 1, 1] : shape, bytes);
        }
        string path = _dir.File(name);
        writer.Save(path);
        return path;
    }
}
