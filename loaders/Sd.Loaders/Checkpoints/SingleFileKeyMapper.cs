namespace Sd.Loaders.Checkpoints;

public enum SingleFileKeyKind
{
    /// <summary>A weight with a diffusers counterpart.</summary>
    Mapped,

    /// <summary>Not a model weight (schedule buffers, EMA copies, position ids); the loader skips it.</summary>
    Ignored,

    /// <summary>No rule applies; the loader reports it as unexpected.</summary>
    Unknown,
}

/// <summary>What one single-file key becomes in a diffusers model folder.</summary>
/// <param name="Component">
/// The model the key belongs to. Meaningful for <see cref="SingleFileKeyKind.Mapped"/> keys and for keys under a
/// component prefix; for other keys it is <see cref="ModelComponent.Unet"/>, the model the checkpoint is built around.
/// </param>
/// <param name="DiffusersKey">The diffusers key; the single-file key itself when there is none.</param>
/// <param name="SqueezeTrailing1x1">
/// The tensor is a [C,C,1,1] 1x1 convolution kernel in the single file and a [C,C] Linear weight in diffusers;
/// drop the trailing 1x1 (the element order is the same).
/// </param>
/// <param name="Reason">Why the key is ignored or unknown; null for mapped keys.</param>
/// <param name="SplitRows">
/// When not null, the stored tensor holds these diffusers tensors, in order, as equal blocks of its first axis
/// (OpenCLIP's fused in_proj: q, k, v); <paramref name="DiffusersKey"/> is the first of them.
/// </param>
public readonly record struct SingleFileKeyResult(
    SingleFileKeyKind Kind,
    ModelComponent Component,
    string DiffusersKey,
    bool SqueezeTrailing1x1,
    string? Reason,
    string[]? SplitRows = null);

/// <summary>
/// Maps the tensor names of an original (CompVis/ldm) single-file Stable Diffusion checkpoint to diffusers
/// components and keys. The block layout (number of blocks, resnets per block, which blocks have attention) is
/// inferred from the key set, so SD 1.x and SD 2.x UNets and VAEs of any size map the same way.
/// </summary>
public sealed class SingleFileKeyMapper
{
    private const string TextPrefix = "cond_stage_model.transformer.";
    private const string EmaPrefix = "model_ema.";
    private const string PositionIdsKey = "text_model.embeddings.position_ids";

    private static readonly string[] Prefixes = [UnetKeyMapping.Prefix, VaeKeyMapping.Prefix, TextPrefix, OpenClipKeyMapping.Prefix];

    // The DDPM noise schedule that ldm's LatentDiffusion registers as buffers; the scheduler recomputes it.
    private static readonly HashSet<string> ScheduleBuffers = new(StringComparer.Ordinal)
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
        "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    };

    // Names of diffusers VAE attention weights before diffusers 0.14, and their current names.
    private static readonly (string Legacy, string Current)[] LegacyAttentionNames =
    [
        ("query.", "to_q."),
        ("key.", "to_k."),
        ("value.", "to_v."),
        ("proj_attn.", "to_out.0."),
    ];

    private readonly UnetKeyMapping? _unet;
    private readonly VaeKeyMapping? _vae;

    private SingleFileKeyMapper(UnetKeyMapping? unet, VaeKeyMapping? vae)
    {
        _unet = unet;
        _vae = vae;
    }

    /// <summary>The UNet layout inferred from the keys; null when the file has no UNet.</summary>
    public SingleFileUnetLayout? Unet => _unet?.Layout;

    /// <summary>The VAE layout inferred from the keys; null when the file has no VAE.</summary>
    public SingleFileVaeLayout? Vae => _vae?.Layout;

    /// <summary>Whether any key has a UNet, VAE or CLIP text encoder prefix of the single-file layout.</summary>
    public static bool LooksLikeSingleFileCheckpoint(IEnumerable<string> keys)
    {
        foreach (string key in keys)
        {
            foreach (string prefix in Prefixes)
            {
                if (key.StartsWith(prefix, StringComparison.Ordinal))
                    return true;
            }
        }
        return false;
    }

    /// <summary>Infers the block layout from all keys of one file.</summary>
    /// <exception cref="InvalidFileException">The keys are not a single-file checkpoint, or its blocks are inconsistent.</exception>
    public static SingleFileKeyMapper Create(IReadOnlyCollection<string> keys, string filePathForErrors)
    {
        if (!LooksLikeSingleFileCheckpoint(keys))
            throw new InvalidFileException(filePathForErrors,
                $"not a single-file Stable Diffusion checkpoint: no key starts with {string.Join(", ", Prefixes)}");
        OpenClipKeyMapping.CheckLayers(keys, filePathForErrors);
        return new SingleFileKeyMapper(
            UnetKeyMapping.Create(keys, filePathForErrors),
            VaeKeyMapping.Create(keys, filePathForErrors));
    }

    /// <summary>
    /// The diffusers component and key of one single-file key: UNet and VAE keys by the inferred block layout, CLIP
    /// text encoder keys (SD 1.x) by their prefix, OpenCLIP ones (SD 2.x) by <see cref="OpenClipKeyMapping"/>.
    /// </summary>
    public SingleFileKeyResult Map(string singleKey)
    {
        if (ScheduleBuffers.Contains(singleKey))
            return Ignored(ModelComponent.Unet, singleKey, "DDPM noise-schedule buffer; the scheduler computes its own");
        if (singleKey.StartsWith(EmaPrefix, StringComparison.Ordinal))
            return Ignored(ModelComponent.Unet, singleKey, "EMA copy of the UNet weights; the checkpoint's main UNet weights are used");

        ReadOnlySpan<char> key = singleKey;
        if (KeyPath.TryTakePrefix(ref key, UnetKeyMapping.Prefix))
            return Result(ModelComponent.Unet, singleKey, _unet?.Map(key), squeeze: false);
        if (KeyPath.TryTakePrefix(ref key, VaeKeyMapping.Prefix))
        {
            bool squeeze = false;
            string? vaeKey = _vae?.Map(key, out squeeze);
            return Result(ModelComponent.Vae, singleKey, vaeKey, squeeze);
        }
        if (KeyPath.TryTakePrefix(ref key, TextPrefix))
            return MapClipText(singleKey, key);
        if (KeyPath.TryTakePrefix(ref key, OpenClipKeyMapping.Prefix))
            return OpenClipKeyMapping.Map(singleKey, key);
        return Unknown(ModelComponent.Unet, singleKey);
    }

    /// <summary>
    /// Renames the legacy mid-block attention names of diffusers-format VAE files saved before diffusers 0.14
    /// (<c>query/key/value/proj_attn</c>) to the current ones (<c>to_q/to_k/to_v/to_out.0</c>); other keys are
    /// returned unchanged.
    /// </summary>
    public static string NormalizeLegacyVaeAttentionName(string diffusersVaeKey)
    {
        const string attentions = "mid_block.attentions.";
        int at = diffusersVaeKey.IndexOf(attentions, StringComparison.Ordinal);
        if (at < 0)
            return diffusersVaeKey;
        ReadOnlySpan<char> rest = diffusersVaeKey.AsSpan(at + attentions.Length);
        if (!KeyPath.TryTakeIndex(ref rest, out _))
            return diffusersVaeKey;
        ReadOnlySpan<char> parent = diffusersVaeKey.AsSpan(0, diffusersVaeKey.Length - rest.Length);
        foreach (var (legacy, current) in LegacyAttentionNames)
        {
            ReadOnlySpan<char> parameter = rest;
            if (KeyPath.TryTakePrefix(ref parameter, legacy) && parameter is "weight" or "bias")
                return string.Concat(parent, current, parameter);
        }
        return diffusersVaeKey;
    }

    /// <summary>
    /// transformers' CLIPTextModel keys are the single-file keys without the prefix. Checkpoints saved from a
    /// CLIPTextModel without its <c>text_model</c> level (NovelAI's, and the many models merged from it) name the
    /// text encoder's tensors <c>embeddings.*</c>, <c>encoder.*</c> and <c>final_layer_norm.*</c> straight under the
    /// prefix; A1111 and kohya's scripts put the level back when they load them, and so does this mapper.
    /// </summary>
    private static SingleFileKeyResult MapClipText(string singleKey, ReadOnlySpan<char> key)
    {
        string? textKey = key.StartsWith(TextModelLevel, StringComparison.Ordinal) ? key.ToString()
            : IsBelowTextModel(key) ? string.Concat(TextModelLevel, key)
            : null;
        if (textKey == PositionIdsKey)
        {
            return Ignored(ModelComponent.TextEncoder, PositionIdsKey,
                "int64 position-id buffer, not a weight; the text encoder derives the positions itself");
        }
        return textKey is null
            ? Unknown(ModelComponent.TextEncoder, singleKey)
            : new SingleFileKeyResult(SingleFileKeyKind.Mapped, ModelComponent.TextEncoder, textKey, false, null);
    }

    private const string TextModelLevel = "text_model.";

    private static bool IsBelowTextModel(ReadOnlySpan<char> key) =>
        key.StartsWith("embeddings.", StringComparison.Ordinal)
        || key.StartsWith("encoder.", StringComparison.Ordinal)
        || key.StartsWith("final_layer_norm.", StringComparison.Ordinal);

    private static SingleFileKeyResult Result(ModelComponent component, string singleKey, string? diffusersKey, bool squeeze) =>
        diffusersKey is null
            ? Unknown(component, singleKey)
            : new SingleFileKeyResult(SingleFileKeyKind.Mapped, component, diffusersKey, squeeze, null);

    internal static SingleFileKeyResult Ignored(ModelComponent component, string key, string reason) =>
        new(SingleFileKeyKind.Ignored, component, key, false, reason);

    internal static SingleFileKeyResult Unknown(ModelComponent component, string singleKey) =>
        new(SingleFileKeyKind.Unknown, component, singleKey, false, "no diffusers counterpart for this single-file key");
}
