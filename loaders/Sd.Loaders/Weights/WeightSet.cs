using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Weights;

/// <summary>
/// The weights of one model component (unet, vae, text_encoder), under diffusers names, possibly spread over
/// several shards. A view: the mapped files belong to the <see cref="ModelSource"/> that opened them, because a
/// single-file checkpoint serves three components from one file.
/// </summary>
public sealed class WeightSet
{
    private readonly Dictionary<string, TensorEntry> _byName = new(StringComparer.Ordinal);
    private readonly List<TensorEntry> _entries = new();
    private readonly IReadOnlyList<SafetensorsFile> _files;

    internal WeightSet(string source, IReadOnlyList<SafetensorsFile> files)
    {
        Source = source;
        _files = files;
    }

    /// <summary>Where the weights came from (a file, an index, or "file#component").</summary>
    public string Source { get; }

    public IReadOnlyList<TensorEntry> Entries => _entries;

    public IReadOnlyList<SafetensorsFile> Files => _files;

    public int Count => _entries.Count;

    public bool TryGet(string name, out TensorEntry entry) => _byName.TryGetValue(name, out entry!);

    /// <summary>Gets a weight and checks its shape; the message names the component source and the tensor.</summary>
    public TensorEntry Require(string name, ReadOnlySpan<long> expectedShape)
    {
        if (!_byName.TryGetValue(name, out TensorEntry? entry))
        {
            throw new InvalidFileException(Source, $"missing tensor '{name}' (expected shape {TensorInfo.ShapeText(expectedShape)})");
        }
        if (!expectedShape.SequenceEqual(entry.Shape))
        {
            throw new InvalidFileException(Source, $"tensor '{name}' has shape {TensorInfo.ShapeText(entry.Shape)}, expected {TensorInfo.ShapeText(expectedShape)}");
        }
        return entry;
    }

    internal void Add(TensorEntry entry)
    {
        if (!_byName.TryAdd(entry.Name, entry))
        {
            throw new InvalidFileException(Source, $"tensor '{entry.Name}' appears twice (in {_byName[entry.Name].File.Path} and {entry.File.Path})");
        }
        _entries.Add(entry);
    }

    /// <summary>Total stored bytes (what the weights occupy on disk / in the page cache).</summary>
    public long StoredBytes
    {
        get
        {
            long total = 0;
            foreach (TensorEntry entry in _entries)
            {
                total += entry.Stored.ByteLength;
            }
            return total;
        }
    }

    public long ParameterCount
    {
        get
        {
            long total = 0;
            foreach (TensorEntry entry in _entries)
            {
                total += entry.ElementCount;
            }
            return total;
        }
    }
}
