using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Lora;

/// <summary>
/// A LoRA for Stable Diffusion 1.x/2.x in a .safetensors file, in any of the layouts that carry them: kohya's
/// (sd-scripts, A1111, Civitai, LyCORIS: "lora_unet_{path}.{part}" and "lora_te_{path}.{part}" for the text encoder,
/// where {path} is the diffusers module path, or the UNet's original LDM one, with '.' written as '_'), diffusers'
/// (PEFT: "unet.{path}.lora_A.weight" / ".lora_B.weight", "text_encoder.{path}...", optionally ".alpha"; older
/// diffusers: ".lora.down.weight" / ".lora.up.weight", ".lora_linear_layer.down.weight" / ".up.weight", and the
/// attention processors' "{block}.processor.to_q_lora.down.weight") and ComfyUI's ("diffusion_model.{LDM path}.{part}",
/// "text_encoders.clip_l.transformer.{path}.{part}"). kohya- and ComfyUI-named modules may be any type A1111 merges
/// (see <see cref="LoraModule"/>): LoRA/LoCon, LoHa, LoKr, full and norm differences. The file stays mapped while
/// open: the tensors are read when the weights they change are loaded. LoRA, LoHa and LoKr modules may be DoRA modules
/// (kohya's "dora_scale", diffusers' "lora_magnitude_vector"). Anything else is refused by name (OFT, IA3, GLoRA, SDXL's
/// second text encoder), since merging half of an adapter would give wrong pictures without a word.
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

    /// <summary>A module's tensors as they are met in the file, by part name ("lora_down.weight", "hada_w1_a").</summary>
    private sealed class Parts(ModelComponent component, string target, bool flat)
    {
        public readonly ModelComponent Component = component;
        public readonly string Target = target;
        public readonly bool Flat = flat;
        public readonly Dictionary<string, TensorInfo> Tensors = new(StringComparer.Ordinal);
        public string? Type;
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
            if (!known.Tensors.TryAdd(part, tensor))
            {
                throw new InvalidFileException(file.Path, $"LoRA module '{key}' has two {part} tensors: '{known.Tensors[part].Name}' and '{tensor.Name}'");
            }
            string type = TypeOf(file.Path, tensor.Name, part);
            if (type.Length > 0 && (known.Type ??= type) != type)
            {
                throw new InvalidFileException(file.Path, $"LoRA module '{key}' mixes {known.Type} and {type} parts ('{tensor.Name}'); a module is one type");
            }
        }
        if (order.Count == 0)
        {
            throw new InvalidFileException(file.Path, "the file holds no tensors; a LoRA holds lora_down/lora_up (or lora_A/lora_B) pairs");
        }
        PeftAdapterMetadata? peft = null;
        bool peftRead = false;
        var modules = new List<LoraModule>(order.Count);
        foreach (string key in order)
        {
            Parts parts = byKey[key];
            if (parts.Target.Length == 0)
            {
                throw new InvalidFileException(file.Path, $"LoRA module '{key}' names no module of the model");
            }
            if (parts.Type is null && parts.Tensors.ContainsKey("diff_b"))
            {
                throw new InvalidFileException(file.Path, $"LoRA module '{key}' has only its bias's difference (diff_b); expected its weight's change beside it");
            }
            float? alpha = Alpha(file, parts.Tensors.GetValueOrDefault("alpha"));
            LoraAlphaRule rule = LoraAlphaRule.Kohya;
            if (!parts.Flat)
            {
                // diffusers' modules store no alpha: the PEFT config saved with them gives it. It is read for any
                // diffusers module, since its use_dora must agree with the modules' magnitudes (diffusers parses it too).
                if (!peftRead)
                {
                    (peft, peftRead) = (PeftAdapterMetadata.Read(file.Path, file.Metadata), true);
                }
                if (alpha is null && peft?.AlphaOf(parts.Component, parts.Target) is { } configured)
                {
                    (alpha, rule) = configured;
                }
                // PEFT builds DoRA layers from use_dora alone: a module whose magnitude says otherwise is half an adapter.
                bool hasMagnitude = parts.Tensors.ContainsKey(LoraModule.PeftMagnitudePart);
                if (peft?.UsesDora(parts.Component) is { } dora && dora != hasMagnitude)
                {
                    throw new InvalidFileException(file.Path, $"LoRA module '{key}' {(dora ? "has no DoRA magnitude (lora_magnitude_vector), though the file's config sets use_dora true" : "has a DoRA magnitude (lora_magnitude_vector), though the file's config does not set use_dora true")}");
                }
            }
            modules.Add(LoraModule.Build(file.Path, key, parts.Component, parts.Target, parts.Flat, parts.Type ?? "LoRA", parts.Tensors, alpha, rule));
        }
        return modules;
    }

    /// <summary>The module type a part belongs to ("" for one any type may have); anything else is refused, naming what it is.</summary>
    private static string TypeOf(string path, string name, string part) => LoraModule.TypeOf(part) ?? throw Unsupported(path, name, part);

    /// <summary>Splits a tensor name into its module key, the module's target and which of its tensors it is.</summary>
    private static (string Key, Parts Parts, string Part) Name(string path, string name)
    {
        if (name.StartsWith("lora_te1_", StringComparison.Ordinal) || name.StartsWith("lora_te2_", StringComparison.Ordinal)
            || name.StartsWith("text_encoder_2.", StringComparison.Ordinal) || name.StartsWith("text_encoders.clip_g.", StringComparison.Ordinal))
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
                return (key, new Parts(component, key[prefix.Length..], flat: true), suffix);
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
                string tail = LastPart(name);
                if (LoraModule.TypeOf(tail) is { } type && type != "LoRA")
                {
                    string what = tail == LoraModule.MagnitudePart ? "DoRA's magnitude as kohya names it (diffusers: lora_magnitude_vector)"
                        : type.Length == 0 ? "a bias difference" : $"a LyCORIS {type} part";
                    throw new InvalidFileException(path, $"tensor '{name}' is {what} under a diffusers name; Sd reads these under kohya's and ComfyUI's names");
                }
                throw Unsupported(path, name, tail);
            }
        }
        foreach ((string prefix, ModelComponent component) in ComfyPrefixes)
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                if (DottedPart(name) is not (string part, int suffix))
                {
                    throw LastPart(name) is "weight" or "bias"
                        ? new InvalidFileException(path, $"tensor '{name}' is a model's weight, not a LoRA's (a checkpoint given as a LoRA?)")
                        : Unsupported(path, name, LastPart(name));
                }
                string key = name[..^suffix];
                if (key.Length <= prefix.Length)
                {
                    throw new InvalidFileException(path, $"tensor '{name}' names no module");
                }
                // Matched as kohya's names are, by the module path with '_' for '.' (LDM's for the UNet).
                return (key, new Parts(component, key[prefix.Length..].Replace('.', '_'), flat: true), part);
            }
        }
        throw new InvalidFileException(path,
            $"tensor '{name}' is not a LoRA tensor Sd knows: expected kohya's lora_unet_*/lora_te_* names (.lora_down.weight, .lora_up.weight, .alpha, .dora_scale, or a LyCORIS part: .hada_*, .lokr_*, .lora_mid.weight, .diff, .diff_b, .w_norm, .b_norm), diffusers' unet.*/text_encoder.* names (.lora_A.weight, .lora_B.weight, .lora_magnitude_vector) or ComfyUI's diffusion_model.*/text_encoders.clip_l.* names with the same parts");
    }

    private static readonly (string, ModelComponent)[] KohyaPrefixes =
    [
        ("lora_unet_", ModelComponent.Unet),
        ("lora_te_", ModelComponent.TextEncoder),
    ];

    /// <summary>
    /// ComfyUI's generic layout ("Extract and Save LoRA", other tools that write it): the module's name in ComfyUI's
    /// state dict, dotted, then the part: the UNet's LDM modules ("diffusion_model.input_blocks.1.1.proj_in"), CLIP
    /// under its SD 1.x (clip_l) or SD 2.x (clip_h) wrapper ("text_encoders.clip_l.transformer.text_model...").
    /// </summary>
    private static readonly (string, ModelComponent)[] ComfyPrefixes =
    [
        ("diffusion_model.", ModelComponent.Unet),
        ("text_encoders.clip_l.transformer.", ModelComponent.TextEncoder),
        (ComfyOpenClipPrefix + "transformer.", ModelComponent.TextEncoder),
    ];

    /// <summary>ComfyUI's SD 2.x text encoder (open_clip ViT-H), whose 24th layer SD 2.x never runs (see <see cref="LoraTargets"/>).</summary>
    internal const string ComfyOpenClipPrefix = "text_encoders.clip_h.";

    /// <summary>What follows a dotted name's last dot ("weight" for "....proj_in.weight").</summary>
    private static string LastPart(string name) => name[(name.LastIndexOf('.') + 1)..];

    private static readonly (string, ModelComponent)[] DiffusersPrefixes =
    [
        ("unet.", ModelComponent.Unet),
        ("text_encoder.", ModelComponent.TextEncoder),
    ];

    private const string Down = "lora_down.weight", Up = "lora_up.weight";

    private static readonly (string, string)[] DiffusersSuffixes =
    [
        (".lora_A.weight", Down),
        (".lora_B.weight", Up),
        (".lora.down.weight", Down),
        (".lora.up.weight", Up),
        (".lora_linear_layer.down.weight", Down),
        (".lora_linear_layer.up.weight", Up),
        (".alpha", "alpha"),
        (".lora_magnitude_vector", LoraModule.PeftMagnitudePart), // as PEFT saves it
        (".lora_magnitude_vector.weight", LoraModule.PeftMagnitudePart), // as a raw state dict or a conversion names it
    ];

    /// <summary>The part a dotted name ends with and its suffix's length: a kohya or LyCORIS part, or a diffusers suffix.</summary>
    private static (string Part, int SuffixLength)? DottedPart(string name)
    {
        if (LoraModule.PartAtEnd(name) is { } part)
        {
            return (part, part.Length + 1);
        }
        foreach ((string suffix, string diffusersPart) in DiffusersSuffixes)
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal))
            {
                return (diffusersPart, suffix.Length);
            }
        }
        return null;
    }

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
            foreach ((string suffix, string part) in (ReadOnlySpan<(string, string)>)[("_lora.down.weight", Down), ("_lora.up.weight", Up)])
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
        $"tensor '{name}': '{part}' is not part of a LoRA module Sd merges; Sd merges LoRA/LoCon (lora_down, lora_up, lora_mid; lora_A/lora_B), LoHa (hada_*), LoKr (lokr_*) and full or norm differences (diff, diff_b, w_norm, b_norm), with their alpha and DoRA's magnitude (dora_scale, lora_magnitude_vector)");

    /// <summary>The module's alpha: a one-element float tensor, or null when it has none.</summary>
    private static float? Alpha(SafetensorsFile file, TensorInfo? tensor)
    {
        if (tensor is null)
        {
            return null;
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
        return value[0];
    }
}
