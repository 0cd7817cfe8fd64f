using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>T2I-Adapter folders and files: what opens, and hostile configs and weights refused by name.</summary>
public sealed class T2IAdapterSourceTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private const string Config = """{"_class_name": "T2IAdapter", "adapter_type": "full_adapter", "channels": [32, 64], "downscale_factor": 4, "in_channels": 3, "num_res_blocks": 1}""";

    private string Folder(string config, Func<string, bool>? keep = null)
    {
        string folder = _dir.File($"adapter-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config);
        var writer = new SafetensorsWriter();
        foreach (ParameterSpec spec in DiffusersLayout.T2IAdapter(T2IAdapterConfig.From(JsonConfig.Parse("config.json", System.Text.Encoding.UTF8.GetBytes(Config)))))
        {
            if (keep is null || keep(spec.Name))
            {
                long count = 1;
                foreach (long d in spec.Shape) count *= d;
                writer.AddFloat32(spec.Name, spec.Shape, new float[count]);
            }
        }
        writer.Save(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        return folder;
    }

    [Fact]
    public void A_folder_and_its_weights_file_open_with_the_config()
    {
        string folder = Folder(Config);
        using (T2IAdapterSource source = T2IAdapterSource.Open(folder))
        {
            Assert.Equal([32, 64], source.Config.Channels);
            // conv_in, then per block: in_conv where the width changes, block1 and block2 of one resnet (weight and bias each).
            Assert.Equal(2 + 4 + 2 + 4, source.Weights.Entries.Count);
        }
        using T2IAdapterSource file = T2IAdapterSource.Open(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        Assert.Equal(4, file.Config.DownscaleFactor);
        Assert.True(T2IAdapterSource.IsAdapter(folder));
    }

    [Fact]
    public void Hostile_configs_and_weights_are_refused_by_name()
    {
        string noConfig = Folder(Config);
        File.Delete(Path.Combine(noConfig, "config.json"));
        Assert.Contains("needs its config.json", Assert.Throws<InvalidFileException>(() => T2IAdapterSource.Open(noConfig)).Message);
        Assert.False(T2IAdapterSource.IsAdapter(noConfig));
        Assert.Contains("adapter_type 'light_adapter' is not supported",
            Assert.Throws<NotSupportedException>(() => T2IAdapterSource.Open(Folder(Config.Replace("full_adapter", "light_adapter", StringComparison.Ordinal)))).Message);
        Assert.Contains("adapter_type 'full_adaptor' is not one of",
            Assert.Throws<InvalidFileException>(() => T2IAdapterSource.Open(Folder(Config.Replace("full_adapter", "full_adaptor", StringComparison.Ordinal)))).Message);
        Assert.Contains("'downscale_factor' must be in [1, 16], found 0",
            Assert.Throws<InvalidFileException>(() => T2IAdapterSource.Open(Folder(Config.Replace("\"downscale_factor\": 4", "\"downscale_factor\": 0", StringComparison.Ordinal)))).Message);
        Assert.Contains("_class_name is 'ControlNetModel', not T2IAdapter",
            Assert.Throws<InvalidFileException>(() => T2IAdapterSource.Open(Folder(Config.Replace("\"T2IAdapter\"", "\"ControlNetModel\"", StringComparison.Ordinal)))).Message);
        string missing = Folder(Config, name => name != "adapter.body.1.in_conv.weight");
        Assert.Contains("adapter.body.1.in_conv.weight", Assert.Throws<InvalidFileException>(() => T2IAdapterSource.Open(missing)).Message);
        Assert.Contains("'in_channels' is 2; a T2I-Adapter takes gray (1) or RGB (3) pictures",
            Assert.Throws<InvalidFileException>(() => T2IAdapterSource.Open(Folder(Config.Replace("\"in_channels\": 3", "\"in_channels\": 2", StringComparison.Ordinal)))).Message);
        // A checkpoint beside an adapter's config.json is no adapter.
        string beside = Folder(Config), checkpoint = Path.Combine(beside, "model.safetensors");
        var writer = new SafetensorsWriter();
        writer.AddFloat32("model.diffusion_model.input_blocks.0.0.bias", [4], new float[4]);
        writer.Save(checkpoint);
        Assert.False(T2IAdapterSource.IsAdapter(checkpoint));
        Assert.True(T2IAdapterSource.IsAdapter(Path.Combine(beside, "diffusion_pytorch_model.safetensors")));
        // A config that lies about the widths: the tensors do not fit it.
        Assert.Throws<InvalidFileException>(() => T2IAdapterSource.Open(Folder(Config.Replace("[32, 64]", "[32, 32]", StringComparison.Ordinal))));
    }
}
