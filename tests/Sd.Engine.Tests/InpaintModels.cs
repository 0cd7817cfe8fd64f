using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// The tiny fixture model with a UNet of another input width (9: an inpainting UNet; 5: one no pipeline can run),
/// for which diffusers made no fixtures. Only conv_in changes: its weight gets the new input width, with seeded
/// random values of PyTorch's default spread; every other file and tensor is the fixture's. Each variant is written
/// once, into a scratch folder of the test class.
/// </summary>
public sealed class InpaintModels : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly Dictionary<int, string> _paths = new();

    public string PathFor(int inChannels)
    {
        lock (_paths)
        {
            if (!_paths.TryGetValue(inChannels, out string? path))
            {
                path = _dir.File($"in{inChannels}");
                Write(path, inChannels);
                _paths.Add(inChannels, path);
            }
            return path;
        }
    }

    private static void Write(string directory, int inChannels)
    {
        string tiny = Fixtures.Path("tiny/model");
        string unet = Path.Combine("unet", "diffusion_pytorch_model.safetensors");
        foreach (string file in Directory.GetFiles(tiny, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(tiny, file);
            if (relative != unet)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(directory, relative))!);
                File.Copy(file, Path.Combine(directory, relative));
            }
        }
        string configPath = Path.Combine(directory, "unet", "config.json");
        string config = File.ReadAllText(configPath);
        Assert.Contains("\"in_channels\": 4,", config);
        File.WriteAllText(configPath, config.Replace("\"in_channels\": 4,", $"\"in_channels\": {inChannels},"));

        using SafetensorsFile source = SafetensorsFile.Open(Path.Combine(tiny, unet));
        var writer = new SafetensorsWriter();
        foreach (TensorInfo tensor in source.Tensors)
        {
            if (tensor.Name == "conv_in.weight")
            {
                long[] shape = [tensor.Shape[0], inChannels, tensor.Shape[2], tensor.Shape[3]];
                writer.AddFloat32(tensor.Name, shape, RandomWeights(shape, seed: 9000 + inChannels));
            }
            else
            {
                writer.Add(tensor.Name, tensor.DType, tensor.Shape, source.GetBytes(tensor));
            }
        }
        writer.Save(Path.Combine(directory, unet));
    }

    /// <summary>Uniform in +-sqrt(3 / fan_in): standard deviation 1/sqrt(fan_in), as PyTorch initializes a conv.</summary>
    private static float[] RandomWeights(long[] shape, int seed)
    {
        long fanIn = shape[1] * shape[2] * shape[3];
        float range = MathF.Sqrt(3f / fanIn);
        var random = new Random(seed);
        var values = new float[shape[0] * fanIn];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = range * (float)(2 * random.NextDouble() - 1);
        }
        return values;
    }

    public void Dispose() => _dir.Dispose();
}
