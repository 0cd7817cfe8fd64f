using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Weights;

/// <summary>
/// Finds a diffusers component's weight files by diffusers' naming: <c>{base}.safetensors</c>, the variant
/// <c>{base}.{variant}.safetensors</c> (e.g. fp16), and the sharded <c>{base}.safetensors.index[.{variant}].json</c>.
/// Without a requested variant the plain files win and the fp16 variant is the fallback (diffusers would refuse;
/// a user with only fp16 files wants them loaded).
/// </summary>
public static class ComponentWeightFiles
{
    public const string Fp16Variant = "fp16";

    /// <summary>The weights file base name diffusers uses for a component folder.</summary>
    public static string BaseName(string componentFolderName) =>
        componentFolderName == "text_encoder" || componentFolderName.StartsWith("text_encoder_", StringComparison.Ordinal)
            ? "model"
            : "diffusion_pytorch_model";

    /// <summary>
    /// A model part given as a folder (its weights resolved as <see cref="Resolve"/> does) or as a weights file: the
    /// folder its config is looked for in, the weights file (or shard index), and whether it is an index.
    /// <paramref name="what"/> names the part in the error for a path that does not exist; <paramref name="baseName"/>
    /// is the weights file's base name, by default the one the folder's name implies (<see cref="BaseName"/>).
    /// </summary>
    public static (string Folder, string WeightsPath, bool IsIndex) Locate(string path, string? variant, string what, string? baseName = null)
    {
        if (Directory.Exists(path))
        {
            (string weights, bool isIndex) = Resolve(path, variant, baseName);
            return (path, weights, isIndex);
        }
        if (File.Exists(path))
        {
            return (System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, path, false);
        }
        throw new FileNotFoundException($"{path}: no such {what} folder or file", path);
    }

    /// <summary>
    /// A part whose config.json lies beside its weights and must describe them exactly (a T2I-Adapter, an image
    /// encoder): located as <see cref="Locate"/> does, the config read with <paramref name="loadConfig"/>, the weights
    /// (a file or an index's shards) memory-mapped and checked against <paramref name="layout"/> (<see cref="LayoutFit"/>).
    /// The files are the caller's to dispose; they are closed here when anything fails. <paramref name="needs"/> ends
    /// the error for a missing config.json ("its config.json (diffusers' T2IAdapter)").
    /// </summary>
    public static (TConfig Config, WeightSet Weights, List<SafetensorsFile> Files) OpenWithConfig<TConfig>(string path, string? variant,
        string what, string needs, Func<string, TConfig> loadConfig, Func<TConfig, IReadOnlyList<ParameterSpec>> layout, string? baseName = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        (string folder, string weightsPath, bool isIndex) = Locate(path, variant, what, baseName);
        string configPath = Path.Combine(folder, "config.json");
        if (!File.Exists(configPath))
        {
            throw new InvalidFileException(path, $"the {what} needs {needs} beside its weights");
        }
        TConfig config = loadConfig(configPath);
        List<SafetensorsFile> files = isIndex ? SafetensorsIndex.OpenShards(weightsPath) : [SafetensorsFile.Open(weightsPath)];
        try
        {
            var weights = new WeightSet(weightsPath, files);
            foreach (SafetensorsFile file in files)
            {
                foreach (TensorInfo tensor in file.Tensors) weights.Add(new TensorEntry(tensor.Name, tensor.Shape, file, tensor));
            }
            LayoutFit.Require(weights, layout(config), configPath);
            return (config, weights, files);
        }
        catch
        {
            foreach (SafetensorsFile file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>Returns (path, isIndex) of the weights to load, or throws naming what was looked for.</summary>
    public static (string Path, bool IsIndex) Resolve(string componentDirectory, string? variant, string? baseName = null)
    {
        baseName ??= BaseName(Path.GetFileName(Path.TrimEndingDirectorySeparator(componentDirectory)));
        var tried = new List<string>();
        foreach (string? v in variant is null ? new[] { null, Fp16Variant } : new[] { variant })
        {
            string single = Path.Combine(componentDirectory, v is null ? $"{baseName}.safetensors" : $"{baseName}.{v}.safetensors");
            string index = Path.Combine(componentDirectory, v is null ? $"{baseName}.safetensors.index.json" : $"{baseName}.safetensors.index.{v}.json");
            if (File.Exists(single))
            {
                return (single, false);
            }
            if (File.Exists(index))
            {
                return (index, true);
            }
            tried.Add(Path.GetFileName(single));
            tried.Add(Path.GetFileName(index));
        }
        foreach (string pickle in new[] { $"{baseName}.bin", $"{baseName}.{variant ?? Fp16Variant}.bin" })
        {
            if (File.Exists(Path.Combine(componentDirectory, pickle)))
            {
                PickleGuard.RefuseByExtension(Path.Combine(componentDirectory, pickle));
            }
        }
        throw new InvalidFileException(componentDirectory, $"no weights found; looked for {string.Join(", ", tried)}");
    }
}
