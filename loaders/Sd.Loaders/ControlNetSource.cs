using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

/// <summary>
/// A ControlNet's config and memory-mapped weights: a diffusers ControlNetModel folder (config.json and
/// diffusion_pytorch_model[.fp16].safetensors, or its shards), or such a weights file given by name with its
/// config.json beside it. The config must fit the tensors exactly (<see cref="LayoutFit"/>), so a UNet, a LoRA or a
/// ControlNet of another shape fails here, naming the difference. Original-format files (control_model.* keys, as
/// lllyasviel's) are refused by name.
/// </summary>
public sealed class ControlNetSource : IDisposable
{
    private readonly List<SafetensorsFile> _files;

    private ControlNetSource(string path, ControlNetConfig config, WeightSet weights, List<SafetensorsFile> files)
    {
        Path = path;
        Config = config;
        Weights = weights;
        _files = files;
    }

    /// <summary>The folder or file it was opened from.</summary>
    public string Path { get; }

    public ControlNetConfig Config { get; }

    /// <summary>The tensors under diffusers names.</summary>
    public WeightSet Weights { get; }

    /// <param name="variant">A weights variant to require (fp16); null takes the plain weights, else fp16 ones.</param>
    public static ControlNetSource Open(string path, string? variant = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string folder, weightsPath;
        bool isIndex;
        if (Directory.Exists(path))
        {
            folder = path;
            (weightsPath, isIndex) = ComponentWeightFiles.Resolve(path, variant);
        }
        else if (File.Exists(path))
        {
            folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
            (weightsPath, isIndex) = (path, false);
        }
        else
        {
            throw new FileNotFoundException($"{path}: no such ControlNet folder or file", path);
        }
        string configPath = System.IO.Path.Combine(folder, "config.json");
        if (!File.Exists(configPath))
        {
            throw new InvalidFileException(path, "not a diffusers ControlNet: config.json is missing beside its weights");
        }
        ControlNetConfig config = ControlNetConfig.Load(configPath);
        List<SafetensorsFile> files = isIndex ? SafetensorsIndex.OpenShards(weightsPath) : [SafetensorsFile.Open(weightsPath)];
        try
        {
            var weights = new WeightSet(weightsPath, files);
            foreach (SafetensorsFile file in files)
            {
                foreach (TensorInfo tensor in file.Tensors)
                {
                    if (tensor.Name.StartsWith("control_model.", StringComparison.Ordinal))
                    {
                        throw new InvalidFileException(weightsPath,
                            "an original-format ControlNet (control_model.* keys); Sd reads diffusers ControlNets (controlnet_cond_embedding.*, controlnet_down_blocks.*)");
                    }
                    weights.Add(new TensorEntry(tensor.Name, tensor.Shape, file, tensor));
                }
            }
            LayoutFit.Require(weights, DiffusersLayout.ControlNet(config), configPath);
            return new ControlNetSource(path, config, weights, files);
        }
        catch
        {
            foreach (SafetensorsFile file in files) file.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (SafetensorsFile file in _files) file.Dispose();
        _files.Clear();
    }
}
