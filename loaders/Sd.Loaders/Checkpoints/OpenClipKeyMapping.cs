namespace Sd.Loaders.Checkpoints;

// Reference: diffusers convert_from_ckpt.py convert_open_clip_checkpoint (textenc_conversion_lst,
// textenc_transformer_conversion_lst), open_clip TextTransformer, ldm FrozenOpenCLIPEmbedder (layer "penultimate").
/// <summary>
/// Maps the OpenCLIP text encoder of an SD 2.x single-file checkpoint (keys without "cond_stage_model.model.") to
/// transformers CLIPTextModel keys. Two things differ beyond names:
/// <list type="bullet">
/// <item>Each layer's attention stores q, k and v as one fused in_proj tensor ([3C, C] weight, [3C] bias); CLIPTextModel
/// keeps three, so the key maps to three row blocks of the stored tensor.</item>
/// <item>SD 2.x conditions on the penultimate layer's output: OpenCLIP ViT-H's 24th resblock (index 23) never runs.
/// diffusers' conversion skips it (SD 2's text encoder has 23 layers), and so does this mapping, along with
/// text_projection and logit_scale, which only CLIP's image-text similarity uses. Files written back from diffusers'
/// 23 layers have no resblock 23, and all of theirs are used.</item>
/// </list>
/// </summary>
internal static class OpenClipKeyMapping
{
    public const string Prefix = "cond_stage_model.model.";

    private const string Layers = "transformer.resblocks.";

    private static readonly (string From, string To)[] TopLevelRenames =
    [
        ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
        ("positional_embedding", "text_model.embeddings.position_embedding.weight"),
        ("ln_final.weight", "text_model.final_layer_norm.weight"),
        ("ln_final.bias", "text_model.final_layer_norm.bias"),
    ];

    private static readonly (string From, string To)[] LayerRenames =
    [
        ("ln_1.", "layer_norm1."),
        ("ln_2.", "layer_norm2."),
        ("attn.out_proj.", "self_attn.out_proj."),
        ("mlp.c_fc.", "mlp.fc1."),
        ("mlp.c_proj.", "mlp.fc2."),
    ];

    /// <summary>The resblock SD 2.x never runs: ViT-H's last (diffusers' SD_2_TEXT_ENCODER_KEYS_TO_IGNORE).</summary>
    private const int UnusedLayer = 23;

    /// <summary>
    /// Throws when the resblocks under <see cref="Prefix"/> have a gap (a truncated or hand-edited file). The mapping
    /// itself needs no layout: every key names its own layer.
    /// </summary>
    public static void CheckLayers(IEnumerable<string> keys, string filePath)
    {
        var layers = new HashSet<int>();
        foreach (string fullKey in keys)
        {
            ReadOnlySpan<char> key = fullKey;
            if (KeyPath.TryTakePrefix(ref key, Prefix) && KeyPath.TryTakePrefix(ref key, Layers) && KeyPath.TryTakeIndex(ref key, out int layer))
                layers.Add(layer);
        }
        KeyPath.CountContiguous(layers, Prefix + Layers.TrimEnd('.'), filePath);
    }

    /// <summary>The result for <paramref name="key"/>, the part of <paramref name="singleKey"/> after <see cref="Prefix"/>.</summary>
    public static SingleFileKeyResult Map(string singleKey, ReadOnlySpan<char> key)
    {
        if (key is "text_projection" or "logit_scale")
            return Ignored(singleKey, "CLIP's image-text similarity head; SD 2.x conditions on the text encoder's hidden states");
        foreach (var (from, to) in TopLevelRenames)
        {
            if (key.SequenceEqual(from))
                return Mapped(to);
        }
        if (!KeyPath.TryTakePrefix(ref key, Layers) || !KeyPath.TryTakeIndex(ref key, out int layer))
            return Unknown(singleKey);
        if (layer == UnusedLayer)
            return Ignored(singleKey, "OpenCLIP ViT-H's last layer: SD 2.x conditions on the penultimate layer's output, so it never runs");
        string parent = $"text_model.encoder.layers.{layer}.";
        if (key is "attn.in_proj_weight" or "attn.in_proj_bias")
        {
            string parameter = key.EndsWith("weight", StringComparison.Ordinal) ? "weight" : "bias";
            string[] parts = [$"{parent}self_attn.q_proj.{parameter}", $"{parent}self_attn.k_proj.{parameter}", $"{parent}self_attn.v_proj.{parameter}"];
            return Mapped(parts[0]) with { SplitRows = parts };
        }
        string? renamed = KeyPath.RenameModule(key, parent, LayerRenames);
        return renamed is null ? Unknown(singleKey) : Mapped(renamed);
    }

    private static SingleFileKeyResult Mapped(string diffusersKey) =>
        new(SingleFileKeyKind.Mapped, ModelComponent.TextEncoder, diffusersKey, false, null);

    private static SingleFileKeyResult Ignored(string singleKey, string reason) =>
        SingleFileKeyMapper.Ignored(ModelComponent.TextEncoder, singleKey, reason);

    private static SingleFileKeyResult Unknown(string singleKey) => SingleFileKeyMapper.Unknown(ModelComponent.TextEncoder, singleKey);
}
