using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// <see cref="ModelOpenOptions.VaePath"/>: a VAE in any of the forms they are shared in (a diffusers folder, one file
/// in the original naming with or without first_stage_model., one in diffusers naming, a whole checkpoint) replaces a
/// model's own, tensor for tensor; a file that holds no VAE, or more than one, is refused by name. The model here is
/// the built-in demo written as a single-file checkpoint with its configs in a config folder (its toy channel counts
/// defeat inference); the VAE has other random weights, so it shows which is used.
/// </summary>
public sealed class SeparateVaeTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly string _model;
    private readonly string _configs;
    private readonly SafetensorsFile _otherVae;

    public SeparateVaeTests()
    {
        using ModelSource demo = ModelSource.Demo();
        _model = _dir.File("demo.safetensors");
        LdmKeyExporter.Write(demo, _model);
        _configs = _dir.File("configs");
        foreach ((string folder, string json) in new[] { ("unet", DemoModel.UNetJson), ("vae", DemoModel.VaeJson), ("text_encoder", DemoModel.TextEncoderJson) })
        {
            Directory.CreateDirectory(Path.Combine(_configs, folder));
            File.WriteAllText(Path.Combine(_configs, folder, "config.json"), json);
        }
        _otherVae = SafetensorsFile.InMemory("other vae", RandomModelWriter.Weights(DiffusersLayout.Vae(DemoModel.Vae), TensorDType.F32, seed: 99));
    }

    public void Dispose()
    {
        _otherVae.Dispose();
        _dir.Dispose();
    }

    public enum Form { OriginalNames, OriginalNamesWithPrefix, DiffusersNames, DiffusersFolder, WholeCheckpoint }

    [Theory]
    [InlineData(Form.OriginalNames)]
    [InlineData(Form.OriginalNamesWithPrefix)]
    [InlineData(Form.DiffusersNames)]
    [InlineData(Form.DiffusersFolder)]
    [InlineData(Form.WholeCheckpoint)]
    public void A_separate_vae_replaces_the_models_own_tensor_for_tensor(Form form)
    {
        string vae = WriteVae(form);
        using ModelSource model = ModelSource.Open(_model, Options(vae));
        WeightSet weights = model.Weights(ModelComponent.Vae);
        Assert.Equal(_otherVae.Tensors.Count, weights.Count);
        foreach (TensorInfo tensor in _otherVae.Tensors)
        {
            Assert.True(weights.TryGet(tensor.Name, out TensorEntry entry), tensor.Name);
            Assert.Equal(tensor.Shape, entry.Shape);
            Assert.True(_otherVae.GetBytes(tensor).SequenceEqual(entry.File.GetBytes(entry.Stored)), tensor.Name);
        }
        Assert.Equal(DemoModel.Vae.BlockOutChannels, model.Vae!.BlockOutChannels);
        Assert.Equal(DemoModel.Vae.LatentChannels, model.Vae.LatentChannels);
        Assert.Contains(Path.GetFileName(vae), weights.Source);
        Assert.True(model.Weights(ModelComponent.Unet).Count > 0);
    }

    [Fact]
    public void Files_that_are_no_vae_are_refused_by_name()
    {
        var unet = new SafetensorsWriter();
        unet.AddFloat32("model.diffusion_model.conv_in.weight", [2, 2], [1, 2, 3, 4]);
        Assert.Contains("the file holds no VAE tensors", Refused(Save(unet, "unet.safetensors")));

        var extra = new SafetensorsWriter();
        foreach (TensorInfo tensor in _otherVae.Tensors)
        {
            bool squeezed = false;
            string key = LdmKeyExporter.Vae(tensor.Name, DemoModel.Vae, out squeezed)[LdmKeyExporter.VaePrefix.Length..];
            long[] shape = squeezed ? [.. tensor.Shape, 1, 1] : tensor.Shape;
            extra.Add(key, tensor.DType, shape, _otherVae.GetBytes(tensor));
        }
        extra.AddFloat32("lora_unet_conv_in.lora_down.weight", [1, 2], [1, 2]);
        extra.AddFloat32("loss.logvar", [], [0]); // training leftovers are skipped
        Assert.Contains("1 tensor(s) are no VAE tensors, e.g. 'lora_unet_conv_in.lora_down.weight'", Refused(Save(extra, "extra.safetensors")));

        var stray = new SafetensorsWriter();
        foreach (TensorInfo tensor in _otherVae.Tensors)
        {
            stray.Add(tensor.Name, tensor.DType, tensor.Shape, _otherVae.GetBytes(tensor));
        }
        stray.AddFloat32("decoder.extra.weight", [2], [1, 2]);
        string strayPath = Save(stray, "stray.safetensors");
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(_model, Options(strayPath)));
        Assert.Contains("'decoder.extra.weight' is in the checkpoint but not in the config's model", e.Message);

        Directory.CreateDirectory(_dir.File("empty-folder"));
        Assert.Contains("config.json is missing", Refused(_dir.File("empty-folder")));
        File.WriteAllBytes(_dir.File("vae.pt"), [0x80, 0x02]);
        Assert.Throws<UnsafeFormatException>(() => ModelSource.Open(_model, Options(_dir.File("vae.pt"))));
        Assert.Throws<FileNotFoundException>(() => ModelSource.Open(_model, Options(_dir.File("absent.safetensors"))));
    }

    private ModelOpenOptions Options(string vae) => new() { ConfigDirectory = _configs, VaePath = vae };

    private string Refused(string vae)
    {
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(_model, Options(vae)));
        Assert.Equal(vae, e.FilePath);
        return e.Message;
    }

    private string WriteVae(Form form)
    {
        var writer = new SafetensorsWriter();
        if (form == Form.WholeCheckpoint)
        {
            // A real checkpoint's other parts: UNet, CLIP, the DDPM buffers, EMA bookkeeping; none is the VAE's.
            writer.AddFloat32("model.diffusion_model.conv_in.weight", [1], [1]);
            writer.AddFloat32("cond_stage_model.transformer.text_model.final_layer_norm.weight", [1], [1]);
            writer.Add("cond_stage_model.transformer.text_model.embeddings.position_ids", TensorDType.I64, [1, 1], new byte[8]);
            writer.AddFloat32("betas", [2], [0.1f, 0.2f]);
            writer.AddFloat32("alphas_cumprod", [2], [0.9f, 0.7f]);
            writer.AddFloat32("model_ema.decay", [], [0.9999f]);
        }
        if (form is Form.DiffusersNames or Form.OriginalNames)
        {
            writer.AddFloat32("loss.logvar", [], [0]); // a training leftover of standalone VAE files: skipped
        }
        foreach (TensorInfo tensor in _otherVae.Tensors)
        {
            string key = tensor.Name;
            long[] shape = tensor.Shape;
            if (form is Form.OriginalNames or Form.OriginalNamesWithPrefix or Form.WholeCheckpoint)
            {
                key = LdmKeyExporter.Vae(tensor.Name, DemoModel.Vae, out bool squeezed);
                key = form == Form.OriginalNames ? key[LdmKeyExporter.VaePrefix.Length..] : key;
                shape = squeezed ? [.. tensor.Shape, 1, 1] : tensor.Shape;
            }
            writer.Add(key, tensor.DType, shape, _otherVae.GetBytes(tensor));
        }
        if (form != Form.DiffusersFolder)
        {
            return Save(writer, $"{form}.safetensors");
        }
        string folder = _dir.File("vae-folder");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), DemoModel.VaeJson);
        writer.Save(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        return folder;
    }

    private string Save(SafetensorsWriter writer, string name)
    {
        string path = _dir.File(name);
        writer.Save(path);
        return path;
    }
}
