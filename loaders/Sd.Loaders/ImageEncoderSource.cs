using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

/// <summary>
/// A CLIP image encoder's config and memory-mapped weights: a transformers CLIPVisionModelWithProjection folder
/// (config.json and model[.fp16].safetensors, e.g. h94/IP-Adapter's models/image_encoder), or its weights file given
/// by name with the config.json beside it. The config must fit the tensors exactly (<see cref="LayoutFit"/>); a
/// pytorch_model.bin is a pickle, which Sd refuses.
/// </summary>
public sealed class ImageEncoderSource : IDisposable
{
    private readonly List<SafetensorsFile> _files;

    private ImageEncoderSource(string path, ClipVisionConfig config, WeightSet weights, List<SafetensorsFile> files)
    {
        Path = path;
        Config = config;
        Weights = weights;
        _files = files;
    }

    /// <summary>The folder or file it was opened from.</summary>
    public string Path { get; }

    public ClipVisionConfig Config { get; }

    /// <summary>The tensors under transformers' names (vision_model.encoder.layers.0.self_attn.q_proj.weight...).</summary>
    public WeightSet Weights { get; }

    /// <param name="variant">A weights variant to require (fp16); null takes the plain weights, else fp16 ones.</param>
    public static ImageEncoderSource Open(string path, string? variant = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path) && File.Exists(System.IO.Path.Combine(path, "pytorch_model.bin"))
            && !File.Exists(System.IO.Path.Combine(path, "model.safetensors")) && !File.Exists(System.IO.Path.Combine(path, "model.fp16.safetensors")))
        {
            PickleGuard.RefuseByExtension(System.IO.Path.Combine(path, "pytorch_model.bin"));
        }
        (string folder, string weightsPath, bool isIndex) = ComponentWeightFiles.Locate(path, variant, "image encoder", baseName: "model");
        string configPath = System.IO.Path.Combine(folder, "config.json");
        if (!File.Exists(configPath))
        {
            throw new InvalidFileException(path, "an image encoder needs its config.json (transformers' CLIPVisionModelWithProjection) beside its weights");
        }
        ClipVisionConfig config = ClipVisionConfig.Load(configPath);
        List<SafetensorsFile> files = isIndex ? SafetensorsIndex.OpenShards(weightsPath) : [SafetensorsFile.Open(weightsPath)];
        try
        {
            var weights = new WeightSet(weightsPath, files);
            foreach (SafetensorsFile file in files)
            {
                foreach (TensorInfo tensor in file.Tensors) weights.Add(new TensorEntry(tensor.Name, tensor.Shape, file, tensor));
            }
            LayoutFit.Require(weights, DiffusersLayout.ClipVision(config), configPath);
            return new ImageEncoderSource(path, config, weights, files);
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
