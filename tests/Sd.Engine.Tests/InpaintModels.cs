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
        long[] shape = [32, inChannels, 3, 3]; // conv_in of the tiny UNet's 32 channels
        TinyVariant.Write(directory,
            config => TinyVariant.Replace(config, "\"in_channels\": 4,", $"\"in_channels\": {inChannels},"),
            new Dictionary<string, (long[], float[])> { ["conv_in.weight"] = (shape, TinyVariant.RandomWeights(shape, seed: 9000 + inChannels)) });
    }

    public void Dispose() => _dir.Dispose();
}
