using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

/// <summary>
/// A T2I-Adapter's config and memory-mapped weights: a diffusers T2IAdapter folder (config.json and
/// diffusion_pytorch_model[.fp16].safetensors, e.g. TencentARC/t2iadapter_canny_sd15v2), or its weights file given by
/// name with the config.json beside it. The config must fit the tensors exactly (<see cref="LayoutFit"/>). The
/// original TencentARC releases are pickles (.pth), which Sd refuses.
/// </summary>
public sealed class T2IAdapterSource : IDisposable
{
    private readonly List<SafetensorsFile> _files;

    private T2IAdapterSource(string path, T2IAdapterConfig config, WeightSet weights, List<SafetensorsFile> files)
    {
        Path = path;
        Config = config;
        Weights = weights;
        _files = files;
    }

    /// <summary>The folder or file it was opened from.</summary>
    public string Path { get; }

    public T2IAdapterConfig Config { get; }

    /// <summary>The tensors under diffusers names (adapter.conv_in.weight, adapter.body.0.resnets.0.block1.weight...).</summary>
    public WeightSet Weights { get; }

    /// <param name="variant">A weights variant to require (fp16); null takes the plain weights, else fp16 ones.</param>
    public static T2IAdapterSource Open(string path, string? variant = null)
    {
        (T2IAdapterConfig config, WeightSet weights, List<SafetensorsFile> files) = ComponentWeightFiles.OpenWithConfig(path, variant, "T2I-Adapter",
            "its config.json (diffusers' T2IAdapter)", T2IAdapterConfig.Load, DiffusersLayout.T2IAdapter);
        return new T2IAdapterSource(path, config, weights, files);
    }

    /// <summary>
    /// Whether <paramref name="path"/> is a T2I-Adapter: a folder whose config.json names T2IAdapter, or a
    /// .safetensors file of adapter.* tensors with such a config.json beside it. False for anything else, unreadable
    /// files included.
    /// </summary>
    public static bool IsAdapter(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            string? folder = Directory.Exists(path) ? path
                : File.Exists(path) && path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))
                : null;
            string? config = folder is null ? null : System.IO.Path.Combine(folder, "config.json");
            if (config is null || !File.Exists(config) || JsonConfig.Load(config).GetStringOrNull("_class_name") != "T2IAdapter")
            {
                return false;
            }
            if (Directory.Exists(path))
            {
                return true;
            }
            using SafetensorsFile file = SafetensorsFile.Open(path);
            foreach (TensorInfo tensor in file.Tensors)
            {
                if (!tensor.Name.StartsWith("adapter.", StringComparison.Ordinal)) return false;
            }
            return file.Tensors.Count > 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        foreach (SafetensorsFile file in _files) file.Dispose();
        _files.Clear();
    }
}
