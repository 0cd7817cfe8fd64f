using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

public enum ModelSourceKind
{
    /// <summary>A diffusers folder: model_index.json plus one folder per component.</summary>
    DiffusersFolder,

    /// <summary>One .safetensors file in the original CompVis layout (model.diffusion_model.* ...).</summary>
    SingleFile,

    /// <summary>The built-in demo model (<see cref="DemoModel"/>): random weights made in memory, no files.</summary>
    BuiltInDemo,
}

public sealed record ModelOpenOptions
{
    /// <summary>diffusers weight variant to prefer (e.g. "fp16"); null prefers the plain files.</summary>
    public string? Variant { get; init; }

    /// <summary>Tokenizer folder (vocab.json, merges.txt); needed for single files, which carry none.</summary>
    public string? TokenizerDirectory { get; init; }

    /// <summary>
    /// For single-file checkpoints: a diffusers-layout folder whose component configs (and tokenizer/, unless
    /// <see cref="TokenizerDirectory"/> is set) replace the ones inferred from the tensor shapes, as diffusers'
    /// <c>from_single_file(config=...)</c> does; see <see cref="ConfigFolder"/>. Each config must fit the checkpoint's
    /// tensors. Refused for a diffusers folder model, which brings its own configs: ignoring it could leave a user
    /// believing their configs were used.
    /// </summary>
    public string? ConfigDirectory { get; init; }

    /// <summary>
    /// A VAE to use instead of the model's own (a diffusers VAE folder, or a .safetensors file in the original or
    /// diffusers naming, such as vae-ft-mse-840000-ema-pruned.safetensors), as diffusers' <c>vae=</c> argument.
    /// </summary>
    public string? VaePath { get; init; }
}

/// <summary>
/// A Stable Diffusion model on disk, either layout, presented the diffusers way: typed configs plus one
/// <see cref="WeightSet"/> per component under diffusers tensor names. Owns the mapped files (or, for the built-in
/// demo model, the in-memory ones).
/// </summary>
public sealed partial class ModelSource : IDisposable
{
    private readonly Dictionary<ModelComponent, WeightSet> _weights = new();
    private readonly List<SafetensorsFile> _files = new();
    private readonly ModelOpenOptions _options;

    private ModelSource(string path, ModelSourceKind kind, ModelOpenOptions options)
    {
        Path = path;
        Kind = kind;
        _options = options;
    }

    public string Path { get; }

    public ModelSourceKind Kind { get; }

    public ModelIndex? Index { get; private set; }

    public UNetConfig? UNet { get; private set; }

    public VaeConfig? Vae { get; private set; }

    public ClipTextConfig? TextEncoder { get; private set; }

    public SchedulerConfig? Scheduler { get; private set; }

    public TokenizerFiles? Tokenizer { get; private set; }

    /// <summary>Single-file keys that map to no component: reported, never silently used.</summary>
    public IReadOnlyList<string> UnexpectedKeys { get; private set; } = [];

    /// <summary>Single-file keys skipped on purpose (DDPM buffers, model_ema.*, position_ids).</summary>
    public int IgnoredKeyCount { get; private set; }

    /// <summary>
    /// Settings of a single-file checkpoint that neither the file nor a config folder gave, assumed from the SD family
    /// its shapes resemble (head counts, CLIP's activation, ...), and those of a separate VAE file
    /// (<see cref="ModelOpenOptions.VaePath"/>). Otherwise empty for diffusers folders.
    /// </summary>
    public IReadOnlyList<InferredSetting> InferredSettings { get; private set; } = [];

    /// <summary>The config folder given for a single-file checkpoint (<see cref="ModelOpenOptions.ConfigDirectory"/>).</summary>
    public string? ConfigDirectory => _options.ConfigDirectory;

    /// <summary>The separate VAE in use (<see cref="ModelOpenOptions.VaePath"/>), or null for the model's own.</summary>
    public string? VaePath => _options.VaePath;

    public IReadOnlyList<ModelComponent> Components
    {
        get
        {
            var present = new List<ModelComponent>(3);
            if (UNet is not null) present.Add(ModelComponent.Unet);
            if (Vae is not null) present.Add(ModelComponent.Vae);
            if (TextEncoder is not null) present.Add(ModelComponent.TextEncoder);
            return present;
        }
    }

    public static ModelSource Open(string path, ModelOpenOptions? options = null)
    {
        options ??= new ModelOpenOptions();
        if (Directory.Exists(path))
        {
            if (options.ConfigDirectory is not null)
            {
                throw new ArgumentException(
                    $"{path} is a diffusers folder, which brings its own configs; a config folder ({options.ConfigDirectory}) applies to single-file checkpoints only");
            }
            return OpenFolder(path, options);
        }
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such model folder or file", path);
        }
        PickleGuard.RefuseByExtension(path);
        return OpenSingleFile(path, options);
    }

    /// <summary>
    /// The built-in demo model (<see cref="DemoModel"/>): its configs, and seeded random weights made in memory (a few
    /// megabytes, in milliseconds). No tokenizer files: its text encoder reads the byte-level tokenizer
    /// (Sd.Engine's <c>ClipTokenizer.ByteLevel</c>). Its images are noise.
    /// </summary>
    public static ModelSource Demo()
    {
        var source = new ModelSource(DemoModel.Name, ModelSourceKind.BuiltInDemo, new ModelOpenOptions())
        {
            UNet = DemoModel.UNet,
            Vae = DemoModel.Vae,
            TextEncoder = DemoModel.TextEncoder,
            Scheduler = DemoModel.Scheduler,
        };
        try
        {
            foreach ((ModelComponent component, List<ParameterSpec> layout, ulong seed) in DemoModel.Components())
            {
                string name = $"{DemoModel.Name}#{FolderName(component)}";
                source.AddWeights(component, name, [SafetensorsFile.InMemory(name, RandomModelWriter.Weights(layout, TensorDType.F32, seed))]);
            }
            return source;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    private bool _disposed;

    /// <summary>The component's weights (opened on first use); throws if the model has no such component.</summary>
    public WeightSet Weights(ModelComponent component)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_weights.TryGetValue(component, out WeightSet? weights))
        {
            return weights;
        }
        if (Kind != ModelSourceKind.DiffusersFolder)
        {
            throw new InvalidFileException(Path, $"the checkpoint has no {FolderName(component)} weights");
        }
        string directory = System.IO.Path.Combine(Path, FolderName(component));
        (string file, bool isIndex) = ComponentWeightFiles.Resolve(directory, _options.Variant);
        return AddWeights(component, file, isIndex ? SafetensorsIndex.OpenShards(file) : [SafetensorsFile.Open(file)]);
    }

    /// <summary>Takes ownership of a component's opened files and indexes their tensors under diffusers names.</summary>
    private WeightSet AddWeights(ModelComponent component, string source, List<SafetensorsFile> opened)
    {
        _files.AddRange(opened);
        var weights = new WeightSet(source, opened);
        foreach (SafetensorsFile shard in opened)
        {
            foreach (TensorInfo tensor in shard.Tensors)
            {
                string name = component == ModelComponent.Vae
                    ? SingleFileKeyMapper.NormalizeLegacyVaeAttentionName(tensor.Name)
                    : tensor.Name;
                weights.Add(new TensorEntry(name, tensor.Shape, shard, tensor));
            }
        }
        _weights.Add(component, weights);
        return weights;
    }

    public static string FolderName(ModelComponent component) => component switch
    {
        ModelComponent.Unet => "unet",
        ModelComponent.Vae => "vae",
        ModelComponent.TextEncoder => "text_encoder",
        _ => throw new ArgumentOutOfRangeException(nameof(component)),
    };

    private static ModelSource OpenFolder(string path, ModelOpenOptions options)
    {
        string indexPath = System.IO.Path.Combine(path, "model_index.json");
        if (!File.Exists(indexPath))
        {
            throw new InvalidFileException(path, "not a diffusers model folder: model_index.json is missing");
        }
        var source = new ModelSource(path, ModelSourceKind.DiffusersFolder, options);
        source.Index = ModelIndex.Load(indexPath);
        string Config(string folder, string file) => System.IO.Path.Combine(path, folder, file);
        bool Listed(string folder) => source.Index.Components.ContainsKey(folder);
        source.UNet = Listed("unet") ? UNetConfig.Load(Config("unet", "config.json")) : null;
        // A separate VAE replaces the folder's own, which is then not read at all (it may be absent or broken).
        source.Vae = Listed("vae") && options.VaePath is null ? VaeConfig.Load(Config("vae", "config.json")) : null;
        source.TextEncoder = Listed("text_encoder") ? ClipTextConfig.Load(Config("text_encoder", "config.json")) : null;
        source.Scheduler = Listed("scheduler") ? SchedulerConfig.Load(Config("scheduler", "scheduler_config.json")) : null;
        string? tokenizer = options.TokenizerDirectory ?? (Listed("tokenizer") ? System.IO.Path.Combine(path, "tokenizer") : null);
        source.Tokenizer = tokenizer is null ? null : TokenizerFiles.Load(tokenizer);
        if (options.VaePath is { } vae)
        {
            try
            {
                source.ReplaceVae(vae, given: null);
            }
            catch
            {
                source.Dispose();
                throw;
            }
        }
        return source;
    }

    private static ModelSource OpenSingleFile(string path, ModelOpenOptions options)
    {
        var source = new ModelSource(path, ModelSourceKind.SingleFile, options);
        SafetensorsFile file = SafetensorsFile.Open(path);
        source._files.Add(file);
        try
        {
            var keys = new List<string>(file.Tensors.Count);
            foreach (TensorInfo tensor in file.Tensors)
            {
                keys.Add(tensor.Name);
            }
            if (!SingleFileKeyMapper.LooksLikeSingleFileCheckpoint(keys))
            {
                throw new InvalidFileException(path,
                    "not a Stable Diffusion single-file checkpoint: no model.diffusion_model.*, first_stage_model.* or cond_stage_model.* tensors");
            }
            source.MapSingleFile(file, SingleFileKeyMapper.Create(keys, path));
            ConfigFolder? given = options.ConfigDirectory is null ? null : ConfigFolder.Load(options.ConfigDirectory);
            source.ResolveConfigs(given);
            if (options.VaePath is { } vae)
            {
                source.ReplaceVae(vae, given);
            }
            string? tokenizer = options.TokenizerDirectory ?? given?.TokenizerDirectory;
            source.Tokenizer = tokenizer is null ? null : TokenizerFiles.Load(tokenizer);
            return source;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    private void MapSingleFile(SafetensorsFile file, SingleFileKeyMapper mapper)
    {
        var unexpected = new List<string>();
        foreach (TensorInfo tensor in file.Tensors)
        {
            SingleFileKeyResult result = mapper.Map(tensor.Name);
            switch (result.Kind)
            {
                case SingleFileKeyKind.Ignored:
                    IgnoredKeyCount++;
                    continue;
                case SingleFileKeyKind.Unknown when tensor.Name.Contains(".cond_proj.", StringComparison.Ordinal):
                    // An LCM-distilled UNet run without its guidance embedding would be silently wrong.
                    throw new NotSupportedException($"{Path}: '{tensor.Name}' is an LCM-distilled UNet's guidance projection, which Sd reads from diffusers folders only (time_cond_proj_dim in unet/config.json); load the model's diffusers folder");
                case SingleFileKeyKind.Unknown:
                    unexpected.Add(tensor.Name);
                    continue;
            }
            if (!_weights.TryGetValue(result.Component, out WeightSet? weights))
            {
                weights = new WeightSet($"{Path}#{FolderName(result.Component)}", _files);
                _weights.Add(result.Component, weights);
            }
            if (result.SplitRows is { } parts)
            {
                for (int i = 0; i < parts.Length; i++)
                {
                    TensorInfo rows = file.RowBlock(tensor, i, parts.Length);
                    weights.Add(new TensorEntry(parts[i], rows.Shape, file, rows));
                }
                continue;
            }
            weights.Add(new TensorEntry(result.DiffusersKey, result.SqueezeTrailing1x1 ? SqueezeTrailing1x1(Path, tensor) : tensor.Shape, file, tensor));
        }
        UnexpectedKeys = unexpected;
    }

    private static long[] SqueezeTrailing1x1(string filePath, TensorInfo tensor)
    {
        if (tensor.Shape.Length != 4 || tensor.Shape[2] != 1 || tensor.Shape[3] != 1)
        {
            throw new InvalidFileException(filePath, $"tensor '{tensor.Name}' should be a [C,C,1,1] 1x1 convolution, found {TensorInfo.ShapeText(tensor.Shape)}");
        }
        return [tensor.Shape[0], tensor.Shape[1]];
    }

    /// <summary>
    /// Each component's config: the given folder's when it has one (checked against the tensors), else inferred from
    /// the shapes, with what inference had to assume recorded in <see cref="InferredSettings"/>. A config for a
    /// component the checkpoint lacks is ignored: the folder may describe a whole pipeline.
    /// </summary>
    private void ResolveConfigs(ConfigFolder? given)
    {
        var guesses = new List<InferredSetting>();
        if (_weights.TryGetValue(ModelComponent.Unet, out WeightSet? unet))
        {
            UNet = given?.UNet is { } config
                ? Fitted(config, DiffusersLayout.UNet(config), unet, given.ConfigPath(ModelComponent.Unet))
                : ConfigInference.UNet(unet, guesses);
            Scheduler = given?.Scheduler ?? ConfigInference.Scheduler(UNet, guesses);
        }
        // With a separate VAE the checkpoint's own is replaced unread (ReplaceVae).
        if (_options.VaePath is null && _weights.TryGetValue(ModelComponent.Vae, out WeightSet? vae))
        {
            Vae = given?.Vae is { } config
                ? Fitted(config, DiffusersLayout.Vae(config), vae, given.ConfigPath(ModelComponent.Vae))
                : ConfigInference.Vae(vae, guesses);
        }
        if (_weights.TryGetValue(ModelComponent.TextEncoder, out WeightSet? text))
        {
            TextEncoder = given?.TextEncoder is { } config
                ? Fitted(config, DiffusersLayout.ClipText(config), text, given.ConfigPath(ModelComponent.TextEncoder))
                : ConfigInference.ClipText(text, guesses);
        }
        InferredSettings = guesses;
    }

    private static T Fitted<T>(T config, List<ParameterSpec> layout, WeightSet weights, string configPath)
    {
        LayoutFit.Require(weights, layout, configPath);
        return config;
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (SafetensorsFile file in _files)
        {
            file.Dispose();
        }
        _files.Clear();
        _weights.Clear();
    }
}
