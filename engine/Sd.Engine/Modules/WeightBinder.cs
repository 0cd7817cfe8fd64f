using Sd.Engine.Tensors;
using Sd.Kernels.Convert;
using Sd.Kernels.Gemm;
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
public sealed unsafe class WeightBinder : IDisposable
{
    private readonly WeightSet _weights;
    private readonly HashSet<string> _used;
    private readonly string _prefix;
    private readonly LoadState _state;

    public WeightBinder(WeightSet weights) : this(weights, new HashSet<string>(StringComparer.Ordinal), "", new LoadState())
    {
    }

    private WeightBinder(WeightSet weights, HashSet<string> used, string prefix, LoadState state)
    {
        _weights = weights;
        _used = used;
        _prefix = prefix;
        _state = state;
    }

    /// <summary>
    /// One native buffer, grown to the largest weight, that every module of a load reads its weights into before
    /// packing: no per-tensor garbage, so the load's peak memory is the packed model plus one tensor. Also the names
    /// of the weights whose LoRA changes were merged, so a change nothing merged cannot pass unseen.
    /// </summary>
    private sealed class LoadState : IDisposable
    {
        public NativeBlock? Block;

        public readonly HashSet<string> Merged = new(StringComparer.Ordinal);

        public void Dispose() => Block?.Dispose();
    }

    /// <summary>The binder for a child module: "down_blocks" then "0" gives "down_blocks.0.".</summary>
    public WeightBinder Child(string name) => new(_weights, _used, _prefix + name + ".", _state);

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
            MergeDeltas(entry, block.Pointer, WeightFormat.F32);
        }
        catch
        {
            block.Dispose();
            throw;
        }
        return block;
    }

    /// <summary>
    /// Reads weights widened to float32 into the shared load scratch: several tensors (in order, each with its
    /// shape) laid end to end, as for fused projections. Valid until the next call on any binder of this load.
    /// </summary>
    public float* Stage(ReadOnlySpan<string> names, ReadOnlySpan<long> shape)
    {
        long each = 1;
        foreach (long d in shape) each *= d;
        float* staged = Scratch(each * names.Length);
        for (int i = 0; i < names.Length; i++)
        {
            TensorEntry entry = Entry(names[i], shape);
            if (entry.DType == TensorDType.F32)
            {
                ReadStored(entry, staged + i * each);
            }
            else
            {
                entry.ReadFloat32(new Span<float>(staged + i * each, checked((int)each)));
            }
            MergeDeltas(entry, staged + i * each, WeightFormat.F32);
        }
        return staged;
    }

    /// <summary>
    /// Merges the tensor's LoRA changes (<see cref="LoraMerge"/>), if it has any, into its staged copy: float32 values, or
    /// F16/BF16 patterns (<paramref name="format"/>), which stay 16-bit.
    /// </summary>
    private void MergeDeltas(TensorEntry entry, void* weights, WeightFormat format)
    {
        ReadOnlySpan<WeightDelta> deltas = _weights.DeltasOf(entry.Name);
        if (deltas.Length == 0)
        {
            return;
        }
        if (format == WeightFormat.F32)
        {
            LoraMerge.Apply(entry, (float*)weights, deltas);
        }
        else
        {
            LoraMerge.Apply(entry, (ushort*)weights, format, deltas);
        }
        _state.Merged.Add(entry.Name);
    }

    /// <summary>
    /// Like <see cref="Stage"/>, but tensors stored as F16 (or all as BF16) are staged as their 16-bit patterns, so
    /// GEMM weights can stay 16-bit in memory; anything else (F32, or a mix) is widened. Returns the staged data and
    /// its <paramref name="format"/>.
    /// </summary>
    public void* StageNative(ReadOnlySpan<string> names, ReadOnlySpan<long> shape, out WeightFormat format)
    {
        format = NativeFormat(Entry(names[0], shape).DType);
        for (int i = 1; i < names.Length && format != WeightFormat.F32; i++)
        {
            if (NativeFormat(Entry(names[i], shape).DType) != format) format = WeightFormat.F32;
        }
        if (format == WeightFormat.F32)
        {
            return Stage(names, shape);
        }
        long each = 1;
        foreach (long d in shape) each *= d;
        ushort* bits = (ushort*)Scratch((each * names.Length + 1) / 2);
        for (int i = 0; i < names.Length; i++)
        {
            TensorEntry entry = Entry(names[i], shape);
            ReadStored(entry, bits + i * each);
            RequireFinite(entry, format, bits + i * each);
            MergeDeltas(entry, bits + i * each, format);
        }
        return bits;
    }

    /// <summary>Refuses an F16 weight holding Inf or NaN (BF16 is not checked here), naming its file and tensor.</summary>
    private static void RequireFinite(TensorEntry entry, WeightFormat format, ushort* bits)
    {
        if (format == WeightFormat.F16 && WidenKernels.HasNonFiniteF16(bits, (nint)entry.ElementCount))
        {
            throw new InvalidFileException(entry.File.Path, $"tensor '{entry.Name}' contains Inf or NaN weights");
        }
    }

    /// <summary>
    /// A tensor's bytes as stored (the format its reader wants) into <paramref name="destination"/>: by positional
    /// reads spread over the worker pool, not through the file's mapping (see <see cref="SafetensorsFile.ReadStored"/>).
    /// </summary>
    private static void ReadStored(TensorEntry entry, void* destination) => entry.File.ReadStored(entry.Stored, (byte*)destination);

    private static WeightFormat NativeFormat(TensorDType dtype) => dtype switch
    {
        TensorDType.F16 => WeightFormat.F16,
        TensorDType.BF16 => WeightFormat.BF16,
        _ => WeightFormat.F32,
    };

    private float* Scratch(long floats)
    {
        if (_state.Block is null || _state.Block.Length < floats)
        {
            _state.Block?.Dispose();
            _state.Block = new NativeBlock(floats, zero: false);
        }
        return _state.Block.Pointer;
    }

    /// <summary>Frees the load scratch (the root binder's owner calls this when the model is built).</summary>
    public void Dispose() => _state.Dispose();

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
        foreach (string name in _weights.ChangedWeights)
        {
            if (!_state.Merged.Contains(name))
            {
                WeightDelta delta = _weights.DeltasOf(name)[0];
                throw new InvalidFileException(delta.File.Path, $"LoRA module '{delta.Module.Key}' changes '{name}', which the model does not load as a weight it can change");
            }
        }
    }
}
