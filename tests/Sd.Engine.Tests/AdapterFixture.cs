using System.Text.Json;
using Sd.Engine.Rng;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// The T2I-Adapters of Data/adapter-reference.py as diffusers folders. Their weights are not stored: they are drawn
/// again as that script draws them, per layer in the layout's order a weight then a bias, each
/// (U(0, 1) x 2 - 1) x (1 / sqrt(fan in)) in float32 from torch.Generator().manual_seed(seed), here by
/// <see cref="TorchGenerator"/> (torch.rand's stream, checked against PyTorch by the RNG tests).
/// </summary>
internal static class AdapterFixture
{
    public static string CaseFolder(string caseName) => Path.Combine(Fixtures.BinariesFolder, "Data", "adapter", caseName);

    /// <summary>
    /// The case's adapter as a folder (config.json and diffusion_pytorch_model.safetensors) under <paramref name="dir"/>;
    /// <paramref name="inChannels"/> other than the case's makes one for gray (1) pictures, with other weights.
    /// </summary>
    public static string Write(TempDirectory dir, string caseName, int? inChannels = null)
    {
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(CaseFolder(caseName), "meta.json")));
        string folder = dir.File($"adapter-{caseName}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        string configPath = Path.Combine(folder, "config.json");
        File.WriteAllText(configPath, meta.RootElement.GetProperty("config").GetRawText());
        T2IAdapterConfig config = T2IAdapterConfig.Load(configPath);
        if (inChannels is { } wanted)
        {
            config = config with { InChannels = wanted };
            File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"in_channels\": 3", $"\"in_channels\": {wanted}", StringComparison.Ordinal));
        }
        var generator = new TorchGenerator(meta.RootElement.GetProperty("seed").GetUInt64());
        var writer = new SafetensorsWriter();
        List<ParameterSpec> specs = DiffusersLayout.T2IAdapter(config);
        for (int i = 0; i < specs.Count; i += 2)
        {
            // Each convolution's weight, then its bias (the layout's order), both bounded by the weight's fan in.
            ParameterSpec weight = specs[i], bias = specs[i + 1];
            float bound = (float)(1 / Math.Sqrt(weight.Shape[1] * weight.Shape[2] * weight.Shape[3]));
            writer.AddFloat32(weight.Name, weight.Shape, Draw(generator, weight.Shape[0] * weight.Shape[1] * weight.Shape[2] * weight.Shape[3], bound));
            writer.AddFloat32(bias.Name, bias.Shape, Draw(generator, bias.Shape[0], bound));
        }
        writer.Save(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        return folder;
    }

    private static float[] Draw(TorchGenerator generator, long count, float bound)
    {
        var values = new float[count];
        generator.Rand(values);
        for (int k = 0; k < values.Length; k++) values[k] = (values[k] * 2f - 1f) * bound;
        return values;
    }
}
