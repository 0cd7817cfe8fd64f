using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Lora;

/// <summary>
/// A LoRA for Stable Diffusion 1.x/2.x in a .safetensors file, in either of the two layouts that carry them:
/// kohya's (sd-scripts, A1111, Civitai: "lora_unet_{path}.lora_down.weight", ".lora_up.weight", ".alpha", and
/// "lora_te_{path}..." for the text encoder, where {path} is the diffusers module path with '.' written as '_') and
/// diffusers' (PEFT: "unet.{path}.lora_A.weight" / ".lora_B.weight", "text_encoder.{path}...", optionally ".alpha";
/// older diffusers: ".lora.down.weight" / ".lora.up.weight", ".lora_linear_layer.down.weight" / ".up.weight", and the
/// attention processors' "{block}.processor.to_q_lora.down.weight"). The file stays mapped while open: the tensors are read
/// when the weights they change are loaded. Anything that is not a plain LoRA module is refused by name (LyCORIS
/// LoHa/LoKr/DoRA parts, SDXL's second text encoder), since merging half of an adapter would give wrong pictures
/// without a word.
/// </summary>
public sealed class LoraFile : IDisposable
{
    /// <summary>Ranks above this are no low-rank update (and would overflow the merge's sizes).</summary>
    public const int MaxRank = 1 << 16;

    private readonly SafetensorsFile _file;

    private LoraFile(SafetensorsFile file, IReadOnlyList<LoraModule> modules)
    {
        _file = file;
        Modules = modules;
    }

    public string Path => _file.Path;

    /// <summary>The mapped file the modules' tensors are read from.</summary>
    public SafetensorsFile File => _file;

    /// <summary>The modules, in the order of their first tensor in the file.</summary>
    public IReadOnlyList<LoraModule> Modules { get; }

    public static LoraFile Open(string path)
    {
        SafetensorsFile file = SafetensorsFile.Open(path);
        try
        {
            return new LoraFile(file, Parse(file));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public void Dispose() => _file.Dispose();

    /// <summary>A module's tensors as they are met in the file.</summary>
    private sealed class Parts(ModelComponent component, string target, bool flat)
    {
        public readonly ModelComponent Component = component;
        public readonly string Target = target;
        public readonly bool Flat = flat;
        public TensorInfo? Down;
        public TensorInfo? Up;
        public TensorInfo? Alpha;
    }

    private static List<LoraModule> Parse(SafetensorsFile file)
    {
        var byKey = new Dictionary<string, Parts>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (TensorInfo tensor in file.Tensors)
        {
            (string key, Parts parts, string part) = Name(file.Path, tensor.Name);
            if (!byKey.TryGetValue(key, out Parts? known))
            {
                byKey.Add(key, known = parts);
                order.Add(key);
            }
            if (!tensor.DType.IsFloatWeight())
            {
                throw new InvalidFileException(file.Path, $"LoRA tensor '{tensor.Name}' has dtype {tensor.DType.Name()}; expected F32, F16 or BF16");
            }
            ref TensorInfo? slot = ref part == "down" ? ref known.Down : ref part == "up" ? ref known.Up : ref known.Alpha;
            if (slot is not null)
            {
                throw new InvalidFileException(file.Path, $"LoRA module '{key}' has two {part} tensors: '{slot.Name}' and '{tensor.Name}'");
            }
            slot = tensor;
        }
        if (order.Count == 0)
        {
            throw new InvalidFileException(file.Path, "the file holds no tensors; a LoRA holds lora_down/lora_up (or lora_A/lora_B) pairs");
        }
        var modules = new List<LoraModule>(order.Count);
        foreach (string key in order)
        {
            modules.Add(Module(file, key, byKey[key]));
        }
        return modules;
    }

    /// <summary>Splits a tensor name into its module key, the module's target and which of its tensors it is.</summary>
    private static (string Key, Parts Parts, string Part) Name(string path, string name)
    {
        if (name.StartsWith("lora_te1_", StringComparison.Ordinal) || name.StartsWith("lora_te2_", StringComparison.Ordinal)
            || name.StartsWith("text_encoder_2.", StringComparison.Ordinal))
        {
            throw new InvalidFileException(path, $"tensor '{name}' belongs to an SDXL LoRA (two text encoders); Sd runs Stable Diffusion 1.x/2.x");
        }
        foreach ((string prefix, ModelComponent component) in KohyaPrefixes)
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                int dot = name.IndexOf('.');
                string key = dot < 0 ? name : name[..dot];
                string suffix = dot < 0 ? "" : name[(dot + 1)..];
                string part = suffix switch
                {
                    "lora_down.weight" => "down",
                    "lora_up.weight" => "up",
                    "alpha" => "alpha",
                    _ => throw Unsupported(path, name, suffix),
                };
                return (key, new Parts(component, key[prefix.Length..], flat: true), part);
            }
        }
        if (AttentionProcessorName(name) is { } processor)
        {
            return processor;
        }
        foreach ((string prefix, ModelComponent component) in DiffusersPrefixes)
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                foreach ((string suffix, string part) in DiffusersSuffixes)
                {
                    if (name.EndsWith(suffix, StringComparison.Ordinal) && name.Length > prefix.Length + suffix.Length)
                    {
                        string key = name[..^suffix.Length];
                        return (key, new Parts(component, key[prefix.Length..], flat: false), part);
                    }
                }
                int last = name.LastIndexOf('.');
                throw Unsupported(path, name, name[(last + 1)..]);
            }
        }
        throw new InvalidFileException(path,
            $"tensor '{name}' is not a LoRA tensor Sd knows: expected kohya's lora_unet_*/lora_te_* names (.lora_down.weight, .lora_up.weight, .alpha) or diffusers' unet.*/text_encoder.* names (.lora_A.weight, .lora_B.weight)");
    }

    private static readonly (string, ModelComponent)[] KohyaPrefixes =
    [
        ("lora_unet_", ModelComponent.Unet),
        ("lora_te_", ModelComponent.TextEncoder),
    ];

    private static readonly (string, ModelComponent)[] DiffusersPrefixes =
    [
        ("unet.", ModelComponent.Unet),
        ("text_encoder.", ModelComponent.TextEncoder),
    ];

    private static readonly (string, string)[] DiffusersSuffixes =
    [
        (".lora_A.weight", "down"),
        (".lora_B.weight", "up"),
        (".lora.down.weight", "down"),
        (".lora.up.weight", "up"),
        (".lora_linear_layer.down.weight", "down"),
        (".lora_linear_layer.up.weight", "up"),
        (".alpha", "alpha"),
    ];

    /// <summary>
    /// diffusers' attention-processor layout (2023; UNet only, "unet." optional):
    /// "{block}.attn1.processor.to_q_lora.down.weight" changes "{block}.attn1.to_q", and to_out_lora changes to_out.0.
    /// </summary>
    private static (string, Parts, string)? AttentionProcessorName(string name)
    {
        const string Marker = ".processor.to_";
        int at = name.IndexOf(Marker, StringComparison.Ordinal);
        if (at <= 0)
        {
            return null;
        }
        string block = name.StartsWith("unet.", StringComparison.Ordinal) ? name[5..at] : name[..at];
        string rest = name[(at + Marker.Length)..]; // "q_lora.down.weight"
        foreach (string projection in (string[])["q", "k", "v", "out"])
        {
            foreach ((string suffix, string part) in (ReadOnlySpan<(string, string)>)[("_lora.down.weight", "down"), ("_lora.up.weight", "up")])
            {
                if (rest == projection + suffix)
                {
                    string target = $"{block}.to_{projection}{(projection == "out" ? ".0" : "")}";
                    return (name[..^(suffix.Length - "_lora".Length)], new Parts(ModelComponent.Unet, target, flat: false), part);
                }
            }
        }
        return null;
    }

    private static InvalidFileException Unsupported(string path, string name, string part) => new(path,
        $"tensor '{name}': '{part}' is not part of a plain LoRA module (LyCORIS LoHa/LoKr/LoCon-Tucker, DoRA and full-difference adapters are not supported); Sd merges lora_down/lora_up (lora_A/lora_B) pairs with their alpha");

    private static LoraModule Module(SafetensorsFile file, string key, Parts parts)
    {
        if (parts.Down is null || parts.Up is null)
        {
            throw new InvalidFileException(file.Path, $"LoRA module '{key}' has {(parts.Down is null ? "no down (lora_down/lora_A)" : "no up (lora_up/lora_B)")} weight");
        }
        if (parts.Target.Length == 0)
        {
            throw new InvalidFileException(file.Path, $"LoRA module '{key}' names no module of the model");
        }
        long[] down = parts.Down.Shape, up = parts.Up.Shape;
        bool downFits = down.Length is 2 or 4 && down[0] is >= 1 and <= MaxRank && down[1] >= 1 && (down.Length == 2 || (down[2] >= 1 && down[3] >= 1));
        bool upFits = up.Length is 2 or 4 && up[0] >= 1 && down.Length >= 1 && up[1] == down[0] && (up.Length == 2 || (up[2] == 1 && up[3] == 1));
        if (!downFits || !upFits)
        {
            throw new InvalidFileException(file.Path,
                $"LoRA module '{key}' has down {TensorInfo.ShapeText(down)} and up {TensorInfo.ShapeText(up)}; expected down [rank, in] or [rank, in, kh, kw] and up [out, rank] or [out, rank, 1, 1], rank in [1, {MaxRank}]");
        }
        return new LoraModule(key, parts.Component, parts.Target, parts.Flat, parts.Down, parts.Up, Alpha(file, key, parts.Alpha, (int)down[0]));
    }

    /// <summary>The module's alpha: a one-element float tensor; none, or 0, means the rank (kohya's rule: a scale of 1).</summary>
    private static float Alpha(SafetensorsFile file, string key, TensorInfo? tensor, int rank)
    {
        if (tensor is null)
        {
            return rank;
        }
        if (tensor.ElementCount != 1)
        {
            throw new InvalidFileException(file.Path, $"LoRA tensor '{tensor.Name}' has shape {TensorInfo.ShapeText(tensor.Shape)}; an alpha is one number");
        }
        Span<float> value = stackalloc float[1];
        file.ReadFloat32(tensor, value);
        if (!float.IsFinite(value[0]))
        {
            throw new InvalidFileException(file.Path, $"LoRA tensor '{tensor.Name}' is {value[0]}; an alpha must be finite");
        }
        return value[0] == 0 ? rank : value[0];
    }
}
