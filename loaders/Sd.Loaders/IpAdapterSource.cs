using System.Globalization;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

/// <summary>
/// An IP-Adapter's memory-mapped weights in h94/IP-Adapter's safetensors layout (models/ip-adapter_sd15.safetensors):
/// the image projection <c>image_proj.proj</c> (Linear image_embeds -> tokens x cross_attention_dim) and
/// <c>image_proj.norm</c> (LayerNorm), and one key and value projection <c>ip_adapter.N.to_k_ip</c>/<c>to_v_ip</c>
/// (no bias) per UNet cross-attention layer, N = 1, 3, 5... numbering them in diffusers' attention-processor order
/// (down blocks, up blocks, mid block; the even numbers are the self-attention layers, which have none). The shapes
/// are read from the file and checked against each other; the UNet checks the widths when it runs one. The
/// Plus (Resampler), full-face (MLP) and FaceID (LoRA) variants are refused by name, and the .bin releases as pickles.
/// Reference: diffusers 0.27 _convert_ip_adapter_image_proj_to_diffusers / _convert_ip_adapter_attn_to_diffusers.
/// </summary>
public sealed class IpAdapterSource : IDisposable
{
    private const string Projection = "image_proj.proj.";
    private const string Norm = "image_proj.norm.";
    private readonly SafetensorsFile _file;

    private IpAdapterSource(string path, SafetensorsFile file, WeightSet weights, int embedDim, int crossDim, int tokens, int[] widths)
    {
        Path = path;
        _file = file;
        Weights = weights;
        ImageEmbedDim = embedDim;
        CrossAttentionDim = crossDim;
        Tokens = tokens;
        LayerWidths = widths;
    }

    /// <summary>The file it was opened from.</summary>
    public string Path { get; }

    public WeightSet Weights { get; }

    /// <summary>The image encoder's projection_dim the adapter takes (1024 for ViT-H/14).</summary>
    public int ImageEmbedDim { get; }

    /// <summary>The UNet's cross_attention_dim (768 for SD 1.x).</summary>
    public int CrossAttentionDim { get; }

    /// <summary>Image tokens the projection makes per picture (4).</summary>
    public int Tokens { get; }

    /// <summary>The width (query channels) of each cross-attention layer the adapter steers, in processor order.</summary>
    public IReadOnlyList<int> LayerWidths { get; }

    /// <summary>The key of cross-attention layer <paramref name="layer"/>'s <paramref name="part"/> (to_k_ip, to_v_ip).</summary>
    public static string LayerKey(int layer, string part) =>
        string.Create(CultureInfo.InvariantCulture, $"ip_adapter.{2 * layer + 1}.{part}.weight");

    /// <summary>Opens an IP-Adapter .safetensors file; throws naming the file and what is wrong with it.</summary>
    public static IpAdapterSource Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            throw new InvalidFileException(path, "is a folder; give the IP-Adapter's .safetensors file (e.g. models/ip-adapter_sd15.safetensors)");
        }
        SafetensorsFile file = SafetensorsFile.Open(path);
        try
        {
            var weights = new WeightSet(path, [file]);
            foreach (TensorInfo tensor in file.Tensors) weights.Add(new TensorEntry(tensor.Name, tensor.Shape, file, tensor));
            RefuseVariants(path, weights);
            (int embedDim, int crossDim, int tokens) = ReadProjection(path, weights);
            int[] widths = ReadLayers(path, weights, crossDim);
            foreach (TensorEntry entry in weights.Entries)
            {
                if (!entry.Name.StartsWith("image_proj.", StringComparison.Ordinal) && !entry.Name.StartsWith("ip_adapter.", StringComparison.Ordinal))
                {
                    throw new InvalidFileException(path, $"'{entry.Name}' is neither an image_proj.* nor an ip_adapter.* tensor: not an IP-Adapter file");
                }
            }
            return new IpAdapterSource(path, file, weights, embedDim, crossDim, tokens, widths);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="path"/> is a .safetensors file with an IP-Adapter's image_proj.* and ip_adapter.* tensors; false for anything else, unreadable files included.</summary>
    public static bool IsIpAdapter(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path) || !path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        try
        {
            using SafetensorsFile file = SafetensorsFile.Open(path);
            bool projection = false, layers = false;
            foreach (TensorInfo tensor in file.Tensors)
            {
                projection |= tensor.Name.StartsWith("image_proj.", StringComparison.Ordinal);
                layers |= tensor.Name.StartsWith("ip_adapter.", StringComparison.Ordinal);
            }
            return projection && layers;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidFileException)
        {
            return false;
        }
    }

    /// <summary>
    /// Where h94/IP-Adapter keeps the image encoder an adapter file was trained with: the image_encoder folder beside
    /// it (models/image_encoder for models/ip-adapter_sd15.safetensors); null when there is none.
    /// </summary>
    public static string? ImageEncoderBeside(string path)
    {
        string? folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        string? beside = folder is null ? null : System.IO.Path.Combine(folder, "image_encoder");
        return beside is not null && Directory.Exists(beside) ? beside : null;
    }

    private static void RefuseVariants(string path, WeightSet weights)
    {
        string? variant =
            weights.TryGet("image_proj.latents", out _) ? "an IP-Adapter Plus (its image projection is a Resampler)"
            : weights.TryGet("image_proj.proj.0.weight", out _) ? "a full-face IP-Adapter (its image projection is an MLP)"
            : null;
        foreach (TensorEntry entry in weights.Entries)
        {
            if (entry.Name.Contains("lora", StringComparison.OrdinalIgnoreCase)) variant ??= "an IP-Adapter FaceID (it carries LoRA weights)";
        }
        if (variant != null)
        {
            throw new NotSupportedException($"{path}: {variant}, which Sd does not run yet; Sd runs the plain IP-Adapter (ip-adapter_sd15.safetensors)");
        }
    }

    /// <summary>image_proj.proj [tokens x D, E] with its bias and image_proj.norm [D]: (E, D, tokens).</summary>
    private static (int EmbedDim, int CrossDim, int Tokens) ReadProjection(string path, WeightSet weights)
    {
        if (!weights.TryGet(Projection + "weight", out TensorEntry proj) || !weights.TryGet(Norm + "weight", out TensorEntry norm))
        {
            throw new InvalidFileException(path, "has no image_proj.proj.weight and image_proj.norm.weight: not an IP-Adapter file");
        }
        if (proj.Shape.Length != 2 || norm.Shape.Length != 1 || norm.Shape[0] < 1 || proj.Shape[0] % norm.Shape[0] != 0)
        {
            throw new InvalidFileException(path, $"image_proj.proj.weight is {TensorInfo.ShapeText(proj.Shape)} and image_proj.norm.weight {TensorInfo.ShapeText(norm.Shape)}; " +
                "expected [tokens x D, embed] and [D]");
        }
        int crossDim = Width(path, norm.Name, norm.Shape[0]);
        int embedDim = Width(path, proj.Name, proj.Shape[1]);
        int tokens = Width(path, proj.Name, proj.Shape[0] / crossDim);
        weights.Require(Projection + "bias", [proj.Shape[0]]);
        weights.Require(Norm + "bias", [crossDim]);
        return (embedDim, crossDim, tokens);
    }

    /// <summary>ip_adapter.1, .3, ... each with to_k_ip and to_v_ip of one shape [C, D]: the C of each.</summary>
    private static int[] ReadLayers(string path, WeightSet weights, int crossDim)
    {
        var widths = new List<int>();
        while (weights.TryGet(LayerKey(widths.Count, "to_k_ip"), out TensorEntry key))
        {
            if (key.Shape.Length != 2 || key.Shape[1] != crossDim)
            {
                throw new InvalidFileException(path, $"'{key.Name}' is {TensorInfo.ShapeText(key.Shape)}; expected [channels, {crossDim}] (the image projection's width)");
            }
            weights.Require(LayerKey(widths.Count, "to_v_ip"), key.Shape);
            widths.Add(Width(path, key.Name, key.Shape[0]));
        }
        if (widths.Count == 0)
        {
            throw new InvalidFileException(path, $"has no {LayerKey(0, "to_k_ip")}: an IP-Adapter needs a key and value projection per cross-attention layer");
        }
        int count = 0;
        foreach (TensorEntry entry in weights.Entries)
        {
            if (entry.Name.StartsWith("ip_adapter.", StringComparison.Ordinal)) count++;
        }
        if (count != 2 * widths.Count)
        {
            throw new InvalidFileException(path, $"holds {count} ip_adapter.* tensors where its {widths.Count} layers (ip_adapter.1 to ip_adapter.{2 * widths.Count - 1}, to_k_ip and to_v_ip) make {2 * widths.Count}");
        }
        return widths.ToArray();
    }

    private static int Width(string path, string name, long value) =>
        value is >= 1 and <= Config.ConfigLimits.MaxWidth ? (int)value
            : throw new InvalidFileException(path, $"'{name}' has a size of {value}; expected [1, {Config.ConfigLimits.MaxWidth}]");

    public void Dispose() => _file.Dispose();
}
