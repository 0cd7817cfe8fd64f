using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// A copy of the tiny fixture model whose UNet a test changes, for models diffusers made no fixtures for: its
/// config.json edited, and UNet tensors replaced or added (float32); every other file and tensor is the fixture's.
/// </summary>
internal static class TinyVariant
{
    /// <summary>The UNet's weights file, relative to the model folder.</summary>
    public static readonly string UNetWeights = Path.Combine("unet", "diffusion_pytorch_model.safetensors");

    /// <param name="editConfig">The UNet config.json's text in, the variant's out.</param>
    /// <param name="tensors">UNet tensors by name: each replaces the fixture's of that name, or is added.</param>
    public static void Write(string directory, Func<string, string> editConfig, IReadOnlyDictionary<string, (long[] Shape, float[] Values)> tensors)
    {
        string tiny = Fixtures.Path("tiny/model");
        foreach (string file in Directory.GetFiles(tiny, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(tiny, file);
            if (relative != UNetWeights)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(directory, relative))!);
                File.Copy(file, Path.Combine(directory, relative));
            }
        }
        string configPath = Path.Combine(directory, "unet", "config.json");
        File.WriteAllText(configPath, editConfig(File.ReadAllText(configPath)));

        using SafetensorsFile source = SafetensorsFile.Open(Path.Combine(tiny, UNetWeights));
        var writer = new SafetensorsWriter();
        foreach (TensorInfo tensor in source.Tensors)
        {
            if (!tensors.ContainsKey(tensor.Name))
            {
                writer.Add(tensor.Name, tensor.DType, tensor.Shape, source.GetBytes(tensor));
            }
        }
        foreach ((string name, (long[] shape, float[] values)) in tensors)
        {
            writer.AddFloat32(name, shape, values);
        }
        writer.Save(Path.Combine(directory, UNetWeights));
    }

    /// <summary>The fixture model with one entry of its scheduler_config.json replaced (which must be there as given).</summary>
    public static void WriteWithSchedulerEntry(string directory, string entry, string replacement)
    {
        Write(directory, config => config, new Dictionary<string, (long[], float[])>());
        string schedulerConfig = Path.Combine(directory, "scheduler", "scheduler_config.json");
        File.WriteAllText(schedulerConfig, Replace(File.ReadAllText(schedulerConfig), entry, replacement));
    }

    /// <summary>Replaces one config.json entry, which must be there as given.</summary>
    public static string Replace(string config, string entry, string replacement)
    {
        Assert.Contains(entry, config);
        return config.Replace(entry, replacement);
    }

    /// <summary>
    /// Uniform in +-sqrt(3 / fan_in) (fan_in: every dimension after the first): standard deviation 1/sqrt(fan_in), as
    /// PyTorch initializes a linear or conv weight.
    /// </summary>
    public static float[] RandomWeights(long[] shape, int seed)
    {
        long fanIn = 1;
        for (int i = 1; i < shape.Length; i++) fanIn *= shape[i];
        float range = MathF.Sqrt(3f / fanIn);
        var random = new Random(seed);
        var values = new float[shape[0] * fanIn];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = range * (float)(2 * random.NextDouble() - 1);
        }
        return values;
    }
}
