using Sd.Engine.Rng;
using Sd.Loaders;
using Sd.Loaders.Npy;

namespace Sd.Engine.Pipelines;

/// <summary>torch.randn from a seeded PyTorch CPU generator: what diffusers draws with generator=manual_seed(seed).</summary>
public sealed class TorchNoise(ulong seed) : INoiseSource
{
    private readonly TorchGenerator _generator = new(seed);

    public void Next(Span<float> nchw) => _generator.Randn(nchw);
}

/// <summary>
/// Recorded draws replayed in order: noise_000.npy, noise_001.npy, ... (the fixtures' layout), for exact
/// reproduction of a reference run.
/// </summary>
public sealed class FileNoise(string directory) : INoiseSource
{
    private int _next;

    public void Next(Span<float> nchw)
    {
        string path = Path.Combine(directory, $"noise_{_next:D3}.npy");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: noise draw {_next} was requested but the noise folder has no such file", path);
        }
        float[] values = NpyFile.ReadFloat32(path, out _);
        if (values.Length != nchw.Length)
        {
            throw new InvalidFileException(path, $"holds {values.Length} values, the pipeline needs {nchw.Length} here");
        }
        if (Array.FindIndex(values, v => !float.IsFinite(v)) is var bad and >= 0)
        {
            throw new InvalidFileException(path, $"holds {values[bad]} at index {bad}; a recorded noise draw is finite");
        }
        values.CopyTo(nchw);
        _next++;
    }
}
