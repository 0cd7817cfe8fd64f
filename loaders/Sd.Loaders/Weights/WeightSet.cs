using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Weights;

/// <summary>
/// The weights of one model component (unet, vae, text_encoder), under diffusers names, possibly spread over
/// several shards. A view: the mapped files belong to the <see cref="ModelSource"/> that opened them, because a
/// single-file checkpoint serves three components from one file.
/// </summary>
public sealed class WeightSet
{
    private readonly Dictionary<string, TensorEntry> _byName;
    private readonly List<TensorEntry> _entries;
    private readonly IReadOnlyList<SafetensorsFile> _files;

    private readonly Dictionary<string, WeightDelta[]> _deltas;

    internal WeightSet(string source, IReadOnlyList<SafetensorsFile> files)
    {
        Source = source;
        _files = files;
        _byName = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
        _entries = new List<TensorEntry>();
        _deltas = new Dictionary<string, WeightDelta[]>(StringComparer.Ordinal);
    }

    /// <summary>A view of <paramref name="weights"/>' tensors with <paramref name="deltas"/> to merge as they are loaded.</summary>
    private WeightSet(WeightSet weights, Dictionary<string, WeightDelta[]> deltas)
    {
        Source = weights.Source;
        _files = weights._files;
        _byName = weights._byName;
        _entries = weights._entries;
        _deltas = deltas;
    }

    /// <summary>
    /// The same weights with low-rank changes (LoRA modules) merged into the named ones when they are loaded; the
    /// names must be of this set (<see cref="Lora.LoraTargets"/> resolves them). Changes this set already has are
    /// kept, the new ones added after them. The view shares the mapped files.
    /// </summary>
    public WeightSet WithDeltas(IReadOnlyDictionary<string, WeightDelta[]> deltas)
    {
        var all = new Dictionary<string, WeightDelta[]>(_deltas, StringComparer.Ordinal);
        foreach ((string name, WeightDelta[] list) in deltas)
        {
            if (!_byName.ContainsKey(name))
            {
                throw new ArgumentException($"{Source} has no weight '{name}' to change", nameof(deltas));
            }
            all[name] = all.TryGetValue(name, out WeightDelta[]? earlier) ? [.. earlier, .. list] : list;
        }
        return new WeightSet(this, all);
    }

    /// <summary>The low-rank changes to merge into the weight <paramref name="name"/> (none for most).</summary>
    public ReadOnlySpan<WeightDelta> DeltasOf(string name) => _deltas.TryGetValue(name, out WeightDelta[]? list) ? list : [];

    /// <summary>The weights that have changes to merge.</summary>
    public IReadOnlyCollection<string> ChangedWeights => _deltas.Keys;

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
