namespace Sd.Loaders.Config;

/// <summary>
/// <c>config.json</c> of a diffusers T2IAdapter with adapter_type "full_adapter" (the SD 1.x/2.x adapters:
/// TencentARC/t2iadapter_canny_sd15v2, ...), diffusers' defaults for absent keys. The picture is pixel-unshuffled by
/// <see cref="DownscaleFactor"/> into conv_in, then each block (the first at that size, every later one after a 2x2
/// average pool) makes one feature of <see cref="Channels"/>[i] channels for the UNet's down block i.
/// Reference: diffusers 0.27 T2IAdapter.__init__ and FullAdapter (adapter.py).
/// </summary>
public sealed record T2IAdapterConfig
{
    /// <summary>Channels of the picture: 3 (RGB) or 1 (gray: the canny and sketch adapters).</summary>
    public int InChannels { get; init; } = 3;

    /// <summary>The features' channels, one per block: the UNet's block widths.</summary>
    public int[] Channels { get; init; } = [320, 640, 1280, 1280];

    /// <summary>AdapterResnetBlocks per block.</summary>
    public int NumResBlocks { get; init; } = 2;

    /// <summary>The pixel unshuffle's factor: how much larger than the latents the picture is (the VAE's 8).</summary>
    public int DownscaleFactor { get; init; } = 8;

    public static T2IAdapterConfig Load(string path) => From(JsonConfig.Load(path));

    public static T2IAdapterConfig From(JsonConfig json)
    {
        string source = json.Path;
        if (json.GetStringOrNull("_class_name") is { } className && className != "T2IAdapter")
        {
            throw new InvalidFileException(source, $"_class_name is '{className}', not T2IAdapter (a T2I-Adapter's config.json was expected)");
        }
        string type = json.GetString("adapter_type", "full_adapter");
        if (type is "full_adapter_xl" or "light_adapter")
        {
            throw new NotSupportedException($"{source}: adapter_type '{type}' is not supported; Sd runs the SD 1.x/2.x adapters (full_adapter)");
        }
        if (type != "full_adapter")
        {
            throw new InvalidFileException(source, $"adapter_type '{type}' is not one of diffusers' full_adapter, full_adapter_xl and light_adapter");
        }
        var config = new T2IAdapterConfig
        {
            InChannels = json.GetInt("in_channels", 3),
            Channels = json.GetInts("channels", [320, 640, 1280, 1280]),
            NumResBlocks = json.GetInt("num_res_blocks", 2),
            DownscaleFactor = json.GetInt("downscale_factor", 8),
        };
        config.Validate(source);
        return config;
    }

    /// <summary>The largest pixel unshuffle factor (SD uses 8).</summary>
    private const int MaxDownscale = 16;

    public void Validate(string source)
    {
        if (InChannels is not (1 or 3))
        {
            throw new InvalidFileException(source, $"'in_channels' is {InChannels}; a T2I-Adapter takes gray (1) or RGB (3) pictures");
        }
        ConfigLimits.CheckCount(source, "channels", Channels.Length, ConfigLimits.MaxBlocks);
        ConfigLimits.CheckWidths(source, "channels", Channels);
        ConfigLimits.CheckCount(source, "num_res_blocks", NumResBlocks, ConfigLimits.MaxLayers);
        ConfigLimits.CheckCount(source, "downscale_factor", DownscaleFactor, MaxDownscale);
    }
}
