using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Lora;

/// <summary>How a module's alpha scales its update.</summary>
public enum LoraAlphaRule
{
    /// <summary>alpha / rank, an alpha of 0 counting as the rank (kohya's and LyCORIS's loaders read it so).</summary>
    Kohya,

    /// <summary>alpha / rank, from a PEFT config (an alpha of 0 changes nothing).</summary>
    Peft,

    /// <summary>alpha / sqrt(rank), from a PEFT config with use_rslora.</summary>
    PeftRankStabilized,
}

/// <summary>
/// One module of a LoRA file: a change to one Linear, Conv2d or norm of the UNet or the text encoder, of one of the
/// kinds A1111 merges: LoRA/LoCon (up x down, with LyCORIS's Tucker "lora_mid"), LyCORIS LoHa (the element-wise
/// product of two low-rank products), LoKr (a Kronecker product) and full or norm differences (stored whole), any of
/// them with the bias's difference, and LoRA/LoHa/LoKr with DoRA's magnitude (<see cref="Magnitude"/>). The weight gets <see cref="Weight"/> x <see cref="Scale"/> x the user's weight; the bias,
/// <see cref="Bias"/> x the user's weight.
/// Reference: A1111 extensions-builtin/Lora network_lora, network_hada, network_lokr, network_full, network_norm.
/// </summary>
public sealed class LoraModule
{
    private LoraModule(string key, ModelComponent component, string target, bool flatTarget, string type, LoraUpdate weight,
        LoraUpdate? bias, float? alpha, int rank, LoraAlphaRule alphaRule, TensorInfo? magnitude, bool peftMagnitude)
    {
        AlphaRule = alphaRule;
        Magnitude = magnitude;
        PeftMagnitude = peftMagnitude;
        Key = key;
        Component = component;
        Target = target;
        FlatTarget = flatTarget;
        Type = type;
        Weight = weight;
        Bias = bias;
        Alpha = alpha;
        Rank = rank;
    }

    /// <summary>
    /// The module's name in the file: "lora_unet_down_blocks_0_attentions_0_proj_in", "unet.down_blocks.0.attentions.0.proj_in"
    /// or "diffusion_model.input_blocks.1.1.proj_in".
    /// </summary>
    public string Key { get; }

    /// <summary>The model part it changes: <see cref="ModelComponent.Unet"/> or <see cref="ModelComponent.TextEncoder"/>.</summary>
    public ModelComponent Component { get; }

    /// <summary>
    /// The changed module's diffusers path within the component, dotted ("down_blocks.0.attentions.0.proj_in"), or,
    /// for kohya's and ComfyUI's names (<see cref="FlatTarget"/>), with every '.' written as '_', a UNet module's
    /// diffusers or LDM path ("down_blocks_0_attentions_0_proj_in", "input_blocks_1_1_proj_in").
    /// </summary>
    public string Target { get; }

    public bool FlatTarget { get; }

    /// <summary>"LoRA", "LoHa", "LoKr", "full" or "norm".</summary>
    public string Type { get; }

    /// <summary>The change to the module's weight.</summary>
    public LoraUpdate Weight { get; }

    /// <summary>The change to its bias (diff_b, which any type may have, or a norm module's b_norm), or null.</summary>
    public LoraUpdate? Bias { get; }

    /// <summary>The module's alpha as stored; null when it has none.</summary>
    public float? Alpha { get; }

    /// <summary>The rank alpha is divided by (down's rank: lora_down, hada_w1_b, lokr_w2_b or else lokr_w1_b); 0 for none.</summary>
    public int Rank { get; }

    /// <summary>
    /// The weight update's own scale: alpha / rank (A1111's calc_scale; alpha / sqrt(rank) for rsLoRA), 1 without an
    /// alpha or a rank; a stored alpha of 0 counts as the rank, as kohya's and LyCORIS's loaders read it (A1111's
    /// calc_scale would scale by 0), while a PEFT config's 0 scales by 0, as PEFT does.
    /// </summary>
    public double Scale => Rank == 0 || Alpha is not { } alpha ? 1 : AlphaRule switch
    {
        LoraAlphaRule.Kohya => alpha == 0 ? 1 : (double)alpha / Rank,
        LoraAlphaRule.Peft => (double)alpha / Rank,
        _ => alpha / Math.Sqrt(Rank),
    };

    /// <summary>How <see cref="Alpha"/> scales: kohya's rule for a stored alpha, PEFT's for one from a diffusers file's config.</summary>
    public LoraAlphaRule AlphaRule { get; }

    /// <summary>
    /// DoRA's magnitude m, or null: the weight becomes W + s x (m x V / ||V|| - W) for the user's weight s, where
    /// V = W + <see cref="Scale"/> x the update and the norms are taken per output row or, for LyCORIS's [1, in, ...]
    /// dora_scale, per input channel, with float32's epsilon beside them (LyCORIS trains so). At s = 1 this is
    /// LyCORIS's and PEFT's merge (ComfyUI's too per input channel; per output row ComfyUI takes the norm of W alone).
    /// The blend is ComfyUI's; LyCORIS would give V + s x (m x V / ||V|| - V), and PEFT (diffusers' fuse_lora) would
    /// put s inside V, so at s = 0 either would still change W.
    /// Reference: LyCORIS modules/locon.py apply_weight_decompose; ComfyUI weight_adapter/base.py weight_decompose; peft tuners/lora/layer.py merge.
    /// </summary>
    public TensorInfo? Magnitude { get; }

    /// <summary>
    /// Whether <see cref="Magnitude"/> is PEFT's lora_magnitude_vector: one value per output row, [out] for a Linear,
    /// [1, out, 1, 1] or [out] for a conv; else kohya's dora_scale, [out, 1, ...] per output row or [1, in, ...] per input channel.
    /// </summary>
    public bool PeftMagnitude { get; }

    public override string ToString() => $"{Key} {Type} rank {Rank} alpha {Alpha}{(Magnitude is null ? "" : " DoRA")}";

    /// <summary>The weight's parts a module may have, by type: the file's suffixes after the module key.</summary>
    private static readonly (string Type, string[] Parts)[] Types =
    [
        ("LoRA", ["lora_down.weight", "lora_up.weight", "lora_mid.weight"]),
        ("LoHa", ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"]),
        ("LoKr", ["lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"]),
        ("full", ["diff"]),
        ("norm", ["w_norm", "b_norm"]),
    ];

    /// <summary>
    /// Parts any type may have: its alpha; the bias's difference, which ComfyUI's LoRA extraction writes beside
    /// lora_up/lora_down and applies with any type (A1111 reads it in full modules only); DoRA's magnitude (which
    /// <see cref="Build"/> allows with LoRA, LoHa and LoKr, as LyCORIS trains it).
    /// </summary>
    private static readonly string[] SharedParts = ["alpha", "diff_b", MagnitudePart, PeftMagnitudePart];

    /// <summary>DoRA's magnitude as kohya's, LyCORIS's and ComfyUI's layouts name it.</summary>
    internal const string MagnitudePart = "dora_scale";

    /// <summary>DoRA's magnitude as PEFT names it (diffusers' layout), one value per output row.</summary>
    internal const string PeftMagnitudePart = "lora_magnitude_vector";

    /// <summary>The module type <paramref name="part"/> belongs to: "" for a part any type may have, null for no part Sd knows.</summary>
    internal static string? TypeOf(string part)
    {
        if (Array.IndexOf(SharedParts, part) >= 0)
        {
            return "";
        }
        foreach ((string type, string[] parts) in Types)
        {
            if (Array.IndexOf(parts, part) >= 0)
            {
                return type;
            }
        }
        return null;
    }

    /// <summary>The part a dotted tensor name ends with ("....proj_in.lora_up.weight" gives "lora_up.weight"), or null.</summary>
    internal static string? PartAtEnd(string name)
    {
        foreach (string part in SharedParts)
        {
            if (EndsWithPart(name, part))
            {
                return part;
            }
        }
        foreach ((_, string[] parts) in Types)
        {
            foreach (string part in parts)
            {
                if (EndsWithPart(name, part))
                {
                    return part;
                }
            }
        }
        return null;
    }

    private static bool EndsWithPart(string name, string part) =>
        name.Length > part.Length + 1 && name.EndsWith(part, StringComparison.Ordinal) && name[^(part.Length + 1)] == '.';

    /// <summary>Builds a module from its tensors by part name; <paramref name="type"/> is the type of its parts.</summary>
    internal static LoraModule Build(string path, string key, ModelComponent component, string target, bool flat, string type,
        IReadOnlyDictionary<string, TensorInfo> parts, float? alpha, LoraAlphaRule alphaRule)
    {
        TensorInfo? Get(string part) => parts.GetValueOrDefault(part);
        TensorInfo Need(string part) => Get(part) ?? throw new InvalidFileException(path, $"LoRA module '{key}' ({type}) has no '{part}' tensor");
        LoraUpdate weight;
        LoraUpdate? bias = null;
        int rank = 0;
        switch (type)
        {
            case "LoRA":
                if (Get("lora_down.weight") is null || Get("lora_up.weight") is null)
                {
                    throw new InvalidFileException(path, $"LoRA module '{key}' has {(Get("lora_down.weight") is null ? "no down (lora_down/lora_A)" : "no up (lora_up/lora_B)")} weight");
                }
                weight = LoraUpdate.Single(LoraFactor.Product(path, key, Get("lora_up.weight")!, Get("lora_down.weight")!, Get("lora_mid.weight"), upTransposed: false));
                rank = weight.First.DownRank;
                break;
            case "LoHa":
                LoraFactor one = Hadamard(path, key, Need("hada_w1_a"), Need("hada_w1_b"), Get("hada_t1"));
                weight = LoraUpdate.Hadamard(path, key, one, Hadamard(path, key, Need("hada_w2_a"), Need("hada_w2_b"), Get("hada_t2")));
                rank = one.DownRank;
                break;
            case "LoKr":
                LoraFactor first = Either(path, key, "lokr_w1", parts, t: null);
                LoraFactor second = Either(path, key, "lokr_w2", parts, Get("lokr_t2"));
                weight = LoraUpdate.Kronecker(path, key, first, second);
                rank = second.IsProduct ? second.DownRank : first.DownRank; // A1111: w2b's rank, else w1b's, else none
                break;
            default: // full, norm: differences stored whole
                weight = LoraUpdate.Single(LoraFactor.Stored(path, key, Need(type == "full" ? "diff" : "w_norm"), matrix: false));
                break;
        }
        // A1111 asks a norm module for both of its parts; the bias's may be missing here.
        if (Get("diff_b") is not null && Get("b_norm") is not null)
        {
            throw new InvalidFileException(path, $"LoRA module '{key}' has two bias differences, 'diff_b' and 'b_norm'; expected one");
        }
        if ((Get("diff_b") ?? Get("b_norm")) is { } b)
        {
            bias = LoraUpdate.Single(LoraFactor.Stored(path, key, b, matrix: false));
        }
        if (Get(MagnitudePart) is not null && Get(PeftMagnitudePart) is not null)
        {
            throw new InvalidFileException(path, $"LoRA module '{key}' has two DoRA magnitudes, '{MagnitudePart}' and '{PeftMagnitudePart}'; expected one");
        }
        TensorInfo? magnitude = Get(MagnitudePart) ?? Get(PeftMagnitudePart);
        if (magnitude is not null && type is "full" or "norm")
        {
            throw new InvalidFileException(path, $"LoRA module '{key}' ({type}) has DoRA's magnitude ('{magnitude.Name}'); DoRA goes with LoRA, LoHa and LoKr modules");
        }
        return new LoraModule(key, component, target, flat, type, weight, bias, alpha, rank, alphaRule, magnitude, Get(PeftMagnitudePart) is not null);
    }

    /// <summary>A LoHa factor: a [out, rank] x b [rank, ...], or with a Tucker core t, a stored [rank, out].</summary>
    private static LoraFactor Hadamard(string path, string key, TensorInfo a, TensorInfo b, TensorInfo? t) =>
        LoraFactor.Product(path, key, a, b, t, upTransposed: t is not null);

    /// <summary>A LoKr factor: {name} stored whole, or {name}_a x {name}_b (with a Tucker core t), not both.</summary>
    private static LoraFactor Either(string path, string key, string name, IReadOnlyDictionary<string, TensorInfo> parts, TensorInfo? t)
    {
        TensorInfo? whole = parts.GetValueOrDefault(name), a = parts.GetValueOrDefault(name + "_a"), b = parts.GetValueOrDefault(name + "_b");
        if (whole is not null && (a is not null || b is not null || t is not null))
        {
            throw new InvalidFileException(path, $"LoRA module '{key}' (LoKr) has both '{name}' and its factors; expected one of them");
        }
        if (whole is not null)
        {
            return LoraFactor.Stored(path, key, whole, matrix: name == "lokr_w1");
        }
        if (a is null || b is null)
        {
            throw new InvalidFileException(path, $"LoRA module '{key}' (LoKr) has no '{name}' and not both '{name}_a' and '{name}_b'");
        }
        return LoraFactor.Product(path, key, a, b, t, upTransposed: t is not null);
    }
}
