using Sd.Engine.Tensors;
using Sd.Loaders;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Engine.Modules;

/// <summary>
/// Binds a component's weights to module fields at load time, by exact checkpoint key (prefix + name, as diffusers
/// registers children: "down_blocks.0.resnets.1.norm1.weight"). Every lookup checks the shape; every key used is
/// recorded so <see cref="Finish"/> can report the checkpoint's keys no module asked for. Nothing here runs after
/// load: modules keep typed fields, never names.
/// </summary>
public sealed class WeightBinder
{
    private readonly WeightSet _weights;
    private readonly HashSet<string> _used;
    private readonly string _prefix;

    public WeightBinder(WeightSet weights) : this(weights, new HashSet<string>(StringComparer.Ordinal), "")
    {
    }

    private WeightBinder(WeightSet weights, HashSet<string> used, string prefix)
    {
        _weights = weights;
        _used = used;
        _prefix = prefix;
    }

    /// <summary>The binder for a child module: "down_blocks" then "0" gives "down_blocks.0.".</summary>
    public WeightBinder Child(string name) => new(_weights, _used, _prefix + name + ".");

    public WeightBinder Child(int index) => Child(index.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public string Prefix => _prefix;

    public bool Has(string name) => _weights.TryGet(_prefix + name, out _);

    /// <summary>The stored tensor for <paramref name="name"/>, shape-checked (throws naming the key).</summary>
    public TensorEntry Entry(string name, ReadOnlySpan<long> shape)
    {
        TensorEntry entry = _weights.Require(_prefix + name, shape);
        _used.Add(entry.Name);
        return entry;
    }

    /// <summary>Loads a tensor widened to float32 into a new 64-byte aligned block.</summary>
    public NativeBlock Load(string name, ReadOnlySpan<long> shape)
    {
        TensorEntry entry = Entry(name, shape);
        var block = new NativeBlock(entry.ElementCount, zero: false);
        try
        {
            entry.ReadFloat32(block.Span);
        }
        catch
        {
            block.Dispose();
            throw;
        }
        return block;
    }

    /// <summary>Loads a tensor widened to float32 into a managed array (load-time scratch for packing).</summary>
    public float[] LoadArray(string name, ReadOnlySpan<long> shape) => Entry(name, shape).ReadFloat32();

    /// <summary>
    /// Keys of the component that no module bound, so a loader can report (or refuse) a checkpoint that carries
    /// weights the model would silently ignore.
    /// </summary>
    public IReadOnlyList<string> Finish()
    {
        var unexpected = new List<string>();
        foreach (TensorEntry entry in _weights.Entries)
        {
            if (!_used.Contains(entry.Name) && !entry.DType.IsInteger())
            {
                unexpected.Add(entry.Name);
            }
        }
        return unexpected;
    }

    /// <summary>Throws if the checkpoint has weights no module asked for (a config/weights mismatch).</summary>
    public void RequireAllUsed()
    {
        IReadOnlyList<string> unexpected = Finish();
        if (unexpected.Count > 0)
        {
            string sample = string.Join(", ", unexpected.Take(5));
            throw new InvalidFileException(_weights.Source,
                $"{unexpected.Count} unexpected tensor(s) not used by the model built from its config, e.g. {sample}");
        }
    }
}
