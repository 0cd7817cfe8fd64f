namespace Sd.Loaders.Config;

/// <summary>
/// <c>config.json</c> of a diffusers ControlNetModel: the down half of a UNet (<see cref="Encoder"/>, read with
/// UNet2DConditionModel's keys and defaults) plus the conditioning image's embedding, with diffusers' defaults for
/// absent keys. Reference: diffusers 0.27 ControlNetModel.__init__.
/// </summary>
public sealed record ControlNetConfig
{
    /// <summary>The copy of the UNet's encoder: conv_in, time embedding, down blocks and mid block.</summary>
    public required UNetConfig Encoder { get; init; }

    /// <summary>Channels of the conditioning image (3: RGB).</summary>
    public int ConditioningChannels { get; init; } = 3;

    /// <summary>
    /// Widths of the conditioning embedding's stages; each stage after the first halves the image, so the image is
    /// 2^(stages - 1) times the latents' size (8 for SD's (16, 32, 96, 256), the VAE's factor).
    /// </summary>
    public int[] ConditioningEmbeddingOutChannels { get; init; } = [16, 32, 96, 256];

    /// <summary>Whether the image's channels are taken in BGR order (controlnet_conditioning_channel_order "bgr").</summary>
    public bool BgrConditioning { get; init; }

    /// <summary>Whether each residual is averaged over the picture (global_pool_conditions: the shuffle ControlNet).</summary>
    public bool GlobalPoolConditions { get; init; }

    /// <summary>How many times larger than the latents the conditioning image is.</summary>
    public int ConditioningScaleFactor => 1 << (ConditioningEmbeddingOutChannels.Length - 1);

    public static ControlNetConfig Load(string path) => From(JsonConfig.Load(path));

    public static ControlNetConfig From(JsonConfig json)
    {
        string source = json.Path;
        if (json.GetStringOrNull("_class_name") is { } className && className != "ControlNetModel")
        {
            throw new InvalidFileException(source, $"_class_name is '{className}', not ControlNetModel (a ControlNet's config.json was expected)");
        }
        string? unsupported =
            json.Has("encoder_hid_dim") || json.Has("encoder_hid_dim_type") ? "encoder_hid_dim"
            : json.Has("num_class_embeds") ? "num_class_embeds"
            : null;
        if (unsupported != null)
        {
            throw new NotSupportedException($"{source}: the ControlNet config uses {unsupported}, which Sd does not support (SD 1.x/2.x ControlNets only)");
        }
        string order = json.GetString("controlnet_conditioning_channel_order", "rgb");
        if (order is not ("rgb" or "bgr"))
        {
            throw new InvalidFileException(source, $"controlnet_conditioning_channel_order is '{order}', expected 'rgb' or 'bgr'");
        }
        var config = new ControlNetConfig
        {
            Encoder = UNetConfig.From(json, encoderOnly: true),
            ConditioningChannels = json.GetInt("conditioning_channels", 3),
            ConditioningEmbeddingOutChannels = json.GetInts("conditioning_embedding_out_channels", [16, 32, 96, 256]),
            BgrConditioning = order == "bgr",
            GlobalPoolConditions = json.GetBool("global_pool_conditions", false),
        };
        config.Validate(source);
        return config;
    }

    /// <summary>Checks the conditioning embedding's shape (the encoder's was checked as it was read).</summary>
    public void Validate(string source)
    {
        Encoder.Validate(source);
        int stages = ConditioningEmbeddingOutChannels.Length;
        if (stages == 0 || stages > ConfigLimits.MaxBlocks)
        {
            throw new InvalidFileException(source, $"conditioning_embedding_out_channels has {stages} stages, expected 1 to {ConfigLimits.MaxBlocks}");
        }
        ConfigLimits.CheckWidths(source, "conditioning_embedding_out_channels", ConditioningEmbeddingOutChannels);
        ConfigLimits.CheckWidths(source, "conditioning_channels", [ConditioningChannels]);
    }
}
