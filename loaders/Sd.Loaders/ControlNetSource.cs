using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

/// <summary>
/// A ControlNet's config and memory-mapped weights: a diffusers ControlNetModel folder (config.json and
/// diffusion_pytorch_model[.fp16].safetensors, or its shards), or a weights file given by name, in diffusers or
/// original format (lllyasviel's control_v11p_sd15_canny.safetensors: cldm names, <see cref="ControlNetKeyMapping"/>).
/// The config is the config.json beside the weights, or else inferred from their shapes, the heads and global pooling
/// taken from an original file's yaml (<c>STEM.yaml</c> beside it, as A1111's ControlNet extension reads it) when there
/// is one (<see cref="InferredSettings"/> says what was still assumed). Either way it must fit the tensors exactly (<see cref="LayoutFit"/>), so a UNet, a LoRA or
/// a ControlNet of another shape fails here, naming the difference.
/// </summary>
public sealed class ControlNetSource : IDisposable
{
    private readonly List<SafetensorsFile> _files;

    private ControlNetSource(string path, ControlNetConfig config, string? configFile, NamedWeights named, List<SafetensorsFile> files,
        List<InferredSetting> guesses)
    {
        Path = path;
        ConfigFile = configFile;
        Config = config;
        Weights = named.Weights;
        Format = named.Format;
        SkippedKeyCount = named.Skipped;
        _files = files;
        InferredSettings = guesses;
    }

    /// <summary>The weights' naming: diffusers', or the original cldm names, bare or under control_model.</summary>
    public ControlNetFormat Format { get; }

    /// <summary>The tensors a whole ControlLDM file holds beside the ControlNet (its SD model), not read.</summary>
    public int SkippedKeyCount { get; }

    /// <summary>The folder or file it was opened from.</summary>
    public string Path { get; }

    public ControlNetConfig Config { get; }

    /// <summary>The config.json the config was read from, or the yaml that settled part of an inferred one; null when the shapes alone gave it.</summary>
    public string? ConfigFile { get; }

    /// <summary>The tensors under diffusers names.</summary>
    public WeightSet Weights { get; }

    /// <summary>What the config had to assume, when it was inferred from the shapes (no config.json); empty otherwise.</summary>
    public IReadOnlyList<InferredSetting> InferredSettings { get; }

    /// <param name="variant">A weights variant to require (fp16); null takes the plain weights, else fp16 ones.</param>
    public static ControlNetSource Open(string path, string? variant = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        (string folder, string weightsPath, bool isIndex) = ComponentWeightFiles.Locate(path, variant, "ControlNet");
        List<SafetensorsFile> files = isIndex ? SafetensorsIndex.OpenShards(weightsPath) : [SafetensorsFile.Open(weightsPath)];
        try
        {
            NamedWeights named = Named(weightsPath, files);
            WeightSet weights = named.Weights;
            string configPath = System.IO.Path.Combine(folder, "config.json");
            bool given = File.Exists(configPath);
            var guesses = new List<InferredSetting>();
            // An original-format file's yaml (A1111 reads STEM.yaml beside the model file); diffusers-named files have none.
            string? yamlPath = given || named.Format == ControlNetFormat.Diffusers ? null : System.IO.Path.ChangeExtension(weightsPath, ".yaml");
            yamlPath = yamlPath is not null && File.Exists(yamlPath) ? yamlPath : null;
            ControlNetConfig config = given ? ControlNetConfig.Load(configPath) : Inferred(weights, yamlPath, guesses);
            LayoutFit.Require(weights, DiffusersLayout.ControlNet(config),
                given ? configPath : $"{weightsPath} (config inferred from its shapes{(yamlPath is null ? "" : " and " + yamlPath)})");
            return new ControlNetSource(path, config, given ? configPath : yamlPath, named, files, guesses);
        }
        catch
        {
            foreach (SafetensorsFile file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The config the shapes imply, its heads and global pooling from the yaml beside an original file when there is
    /// one (which settles those guesses).
    /// </summary>
    private static ControlNetConfig Inferred(WeightSet weights, string? yamlPath, List<InferredSetting> guesses)
    {
        ControlNetConfig config = ConfigInference.ControlNet(weights, guesses);
        if (yamlPath is null)
        {
            return config;
        }
        var yaml = CldmYaml.Read(yamlPath);
        if (yaml.Heads(config.Encoder.BlockOutChannels) is { } heads)
        {
            config = config with { Encoder = config.Encoder with { NumAttentionHeads = heads } };
            guesses.RemoveAll(guess => guess.Setting == "attention heads");
        }
        guesses.RemoveAll(guess => guess.Setting == "global pooling");
        config = config with { GlobalPoolConditions = yaml.GlobalAveragePooling };
        config.Validate(yamlPath);
        return config;
    }

    /// <summary>
    /// Whether <paramref name="path"/> holds a ControlNet rather than a model: a folder with a ControlNetModel
    /// config.json and no model_index.json, or a .safetensors file with diffusers' conditioning embedding or original
    /// ControlNet names. False for anything else, unreadable files included (a model's loader says what is wrong).
    /// </summary>
    public static bool IsControlNet(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            if (Directory.Exists(path))
            {
                string config = System.IO.Path.Combine(path, "config.json");
                return !File.Exists(System.IO.Path.Combine(path, "model_index.json")) && File.Exists(config)
                    && JsonConfig.Load(config).GetStringOrNull("_class_name") == "ControlNetModel";
            }
            if (!File.Exists(path) || !path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
            using SafetensorsFile file = SafetensorsFile.Open(path);
            var keys = new List<string>();
            foreach (TensorInfo tensor in file.Tensors)
            {
                if (tensor.Name.StartsWith(DiffusersConditioning, StringComparison.Ordinal)) return true;
                keys.Add(tensor.Name);
            }
            return ControlNetKeyMapping.IsOriginalFormat(keys);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // InvalidFileException is an IOException
        }
    }

    private const string DiffusersConditioning = "controlnet_cond_embedding.";

    private sealed record NamedWeights(WeightSet Weights, ControlNetFormat Format, int Skipped);

    /// <summary>The tensors under their diffusers names: as stored, or mapped from an original-format file's.</summary>
    private static NamedWeights Named(string weightsPath, List<SafetensorsFile> files)
    {
        var weights = new WeightSet(weightsPath, files);
        var keys = new List<string>();
        foreach (SafetensorsFile file in files)
        {
            foreach (TensorInfo tensor in file.Tensors) keys.Add(tensor.Name);
        }
        ControlNetKeyMapping? original = ControlNetKeyMapping.IsOriginalFormat(keys) ? ControlNetKeyMapping.Create(keys, weightsPath) : null;
        var unknown = new List<string>();
        int skipped = 0;
        foreach (SafetensorsFile file in files)
        {
            foreach (TensorInfo tensor in file.Tensors)
            {
                SingleFileKeyResult name = original?.Map(tensor.Name) ?? new(SingleFileKeyKind.Mapped, ModelComponent.Unet, tensor.Name, false, null);
                if (name.Kind == SingleFileKeyKind.Mapped)
                    weights.Add(new TensorEntry(name.DiffusersKey, tensor.Shape, file, tensor));
                else if (name.Kind == SingleFileKeyKind.Unknown)
                    unknown.Add(tensor.Name);
                else
                    skipped++;
            }
        }
        if (unknown.Count > 0)
        {
            throw new InvalidFileException(weightsPath,
                $"{unknown.Count} tensors of an original-format ControlNet have no diffusers counterpart, e.g. '{string.Join("', '", unknown.Take(3))}'");
        }
        ControlNetFormat format = original is null ? ControlNetFormat.Diffusers : original.Prefixed ? ControlNetFormat.ControlLdm : ControlNetFormat.Original;
        return new NamedWeights(weights, format, skipped);
    }

    public void Dispose()
    {
        foreach (SafetensorsFile file in _files) file.Dispose();
        _files.Clear();
    }
}

/// <summary>How a ControlNet's tensors are named.</summary>
public enum ControlNetFormat
{
    /// <summary>diffusers' ControlNetModel names (controlnet_cond_embedding, controlnet_down_blocks...).</summary>
    Diffusers,

    /// <summary>The original cldm names, bare (lllyasviel's ControlNet 1.1 files: input_hint_block, zero_convs...).</summary>
    Original,

    /// <summary>The original names under control_model., in a whole ControlLDM beside its SD model (ControlNet 1.0).</summary>
    ControlLdm,
}
