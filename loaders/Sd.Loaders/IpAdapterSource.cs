using System.Globalization;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

/// <summary>
/// An IP-Adapter's memory-mapped weights in h94/IP-Adapter's safetensors layout (models/ip-adapter_sd15.safetensors):
/// the image projection image_proj.* (<see cref="ImageProjectionShape"/>: the plain Linear, the Plus Resampler or the
/// full-face MLP, told apart by their tensors) and one key and value projection <c>ip_adapter.N.to_k_ip</c>/<c>to_v_ip</c>
/// (no bias) per UNet cross-attention layer, N = 1, 3, 5... numbering them in diffusers' attention-processor order
/// (down blocks, up blocks, mid block; the even numbers are the self-attention layers, which have none). The sizes are
/// read from a few tensors, and every tensor is then checked against the layout they imply; the UNet checks the widths
/// when it runs one. FaceID files (LoRA weights, InsightFace embeddings) are refused by name, and the .bin releases as
/// pickles.
/// Reference: diffusers 0.27 _convert_ip_adapter_image_proj_to_diffusers / _convert_ip_adapter_attn_to_diffusers.
/// </summary>
public sealed class IpAdapterSource : IDisposable
{
    private const string Prefix = "image_proj.";
    private readonly SafetensorsFile _file;

    private IpAdapterSource(string path, SafetensorsFile file, WeightSet weights, ImageProjectionShape projection, int[] widths)
    {
        Path = path;
        _file = file;
        Weights = weights;
        Projection = projection;
        LayerWidths = widths;
    }

    /// <summary>The file it was opened from.</summary>
    public string Path { get; }

    public WeightSet Weights { get; }

    /// <summary>Its image projection's kind and sizes.</summary>
    public ImageProjectionShape Projection { get; }

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
            RefuseFaceId(path, weights);
            ImageProjectionShape projection = ReadProjection(path, weights);
            int[] widths = ReadLayers(path, weights, projection.CrossAttentionDim);
            foreach (TensorEntry entry in weights.Entries)
            {
                if (!entry.Name.StartsWith("image_proj.", StringComparison.Ordinal) && !entry.Name.StartsWith("ip_adapter.", StringComparison.Ordinal))
                {
                    throw new InvalidFileException(path, $"'{entry.Name}' is neither an image_proj.* nor an ip_adapter.* tensor: not an IP-Adapter file");
                }
            }
            return new IpAdapterSource(path, file, weights, projection, widths);
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

    private static void RefuseFaceId(string path, WeightSet weights)
    {
        foreach (TensorEntry entry in weights.Entries)
        {
            if (entry.Name.Contains("lora", StringComparison.OrdinalIgnoreCase))
            {
                throw new NotSupportedException($"{path}: an IP-Adapter FaceID (it carries LoRA weights and takes InsightFace embeddings), which Sd does not run; " +
                    "Sd runs the plain, Plus, Plus-face and full-face IP-Adapters");
            }
        }
    }

    /// <summary>
    /// The image projection's sizes from latents, proj_in, proj_out and layers.0 (Resampler), proj.0 and proj.2 (MLP)
    /// or proj and norm (Linear); then every image_proj.* tensor against the layout they imply, none missing or extra.
    /// </summary>
    private static ImageProjectionShape ReadProjection(string path, WeightSet weights)
    {
        ImageProjectionShape shape;
        if (weights.TryGet(Prefix + "latents", out TensorEntry latents))
        {
            long[] l = Dims(path, latents, 3);
            long[] input = Dims(path, Anchor(path, weights, "proj_in.weight"), 2);
            long[] output = Dims(path, Anchor(path, weights, "proj_out.weight"), 2);
            long[] query = Dims(path, Anchor(path, weights, "layers.0.0.to_q.weight"), 2);
            long[] feedForward = Dims(path, Anchor(path, weights, "layers.0.1.1.weight"), 2);
            if (query[0] % ImageProjectionShape.HeadDim != 0)
            {
                throw new InvalidFileException(path, $"'image_proj.layers.0.0.to_q.weight' is {TensorInfo.ShapeText(query)}; expected [heads x {ImageProjectionShape.HeadDim}, width]");
            }
            int depth = 0;
            while (weights.TryGet($"{Prefix}layers.{depth}.0.to_q.weight", out _)) depth++;
            Config.ConfigLimits.CheckCount(path, "image_proj.layers.* (the Resampler's depth)", depth, Config.ConfigLimits.MaxLayers);
            shape = ImageProjectionShape.Resampler(Width(path, "image_proj.proj_in.weight", input[1]), Width(path, "image_proj.proj_out.weight", output[0]),
                Width(path, "image_proj.latents", l[2]), Width(path, "image_proj.latents", l[1]), depth,
                Width(path, "image_proj.layers.0.0.to_q.weight", query[0] / ImageProjectionShape.HeadDim), Width(path, "image_proj.layers.0.1.1.weight", feedForward[0]));
        }
        else if (weights.TryGet(Prefix + "proj.0.weight", out TensorEntry first))
        {
            long[] f = Dims(path, first, 2);
            long[] second = Dims(path, Anchor(path, weights, "proj.2.weight"), 2);
            shape = ImageProjectionShape.Mlp(Width(path, first.Name, f[1]), Width(path, "image_proj.proj.2.weight", second[0]), Width(path, first.Name, f[0]));
        }
        else
        {
            long[] proj = Dims(path, Anchor(path, weights, "proj.weight"), 2);
            long[] norm = Dims(path, Anchor(path, weights, "norm.weight"), 1);
            if (norm[0] < 1 || proj[0] % norm[0] != 0)
            {
                throw new InvalidFileException(path, $"image_proj.proj.weight is {TensorInfo.ShapeText(proj)} and image_proj.norm.weight {TensorInfo.ShapeText(norm)}; " +
                    "expected [tokens x D, embed] and [D]");
            }
            int crossDim = Width(path, "image_proj.norm.weight", norm[0]);
            shape = ImageProjectionShape.Linear(Width(path, "image_proj.proj.weight", proj[1]), crossDim, Width(path, "image_proj.proj.weight", proj[0] / crossDim));
        }
        List<ParameterSpec> expected = DiffusersLayout.ImageProjection(shape);
        foreach (ParameterSpec spec in expected) weights.Require(spec.Name, spec.Shape);
        int count = 0;
        foreach (TensorEntry entry in weights.Entries)
        {
            if (entry.Name.StartsWith(Prefix, StringComparison.Ordinal)) count++;
        }
        if (count != expected.Count)
        {
            throw new InvalidFileException(path, $"holds {count} image_proj.* tensors where its {shape.Kind} image projection has {expected.Count}");
        }
        return shape;
    }

    private static TensorEntry Anchor(string path, WeightSet weights, string name) =>
        weights.TryGet(Prefix + name, out TensorEntry entry) ? entry
            : throw new InvalidFileException(path, $"has no {Prefix}{name}: not an IP-Adapter file, or one with its image projection cut short");

    private static long[] Dims(string path, TensorEntry entry, int rank) =>
        entry.Shape.Length == rank ? entry.Shape
            : throw new InvalidFileException(path, $"'{entry.Name}' is {TensorInfo.ShapeText(entry.Shape)}; expected a rank-{rank} tensor");

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
