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
        (ClipVisionConfig config, WeightSet weights, List<SafetensorsFile> files) = ComponentWeightFiles.OpenWithConfig(path, variant, "image encoder",
            "its config.json (transformers' CLIPVisionModelWithProjection)", ClipVisionConfig.Load, DiffusersLayout.ClipVision, baseName: "model");
        return new ImageEncoderSource(path, config, weights, files);
    }

    /// <summary>
    /// Whether <paramref name="path"/> is a folder (or a .safetensors file in one) whose config.json describes a CLIP
    /// image encoder: model_type clip_vision_model, or a CLIPVisionModelWithProjection architecture. False for anything
    /// else, unreadable configs included; <see cref="Open"/> then says what is wrong.
    /// </summary>
    public static bool IsImageEncoder(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string? folder = Directory.Exists(path) ? path
            : File.Exists(path) && path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))
            : null;
        string? config = folder is null ? null : System.IO.Path.Combine(folder, "config.json");
        if (config is null || !File.Exists(config))
        {
            return false;
        }
        try
        {
            JsonConfig json = JsonConfig.Load(config);
            return json.GetStringOrNull("model_type") == "clip_vision_model"
                || Array.IndexOf(json.GetStrings("architectures", []), "CLIPVisionModelWithProjection") >= 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidFileException)
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
