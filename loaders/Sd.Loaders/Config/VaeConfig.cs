namespace Sd.Loaders.Config;

/// <summary>
/// <c>vae/config.json</c> of an AutoencoderKL with diffusers' defaults. Real SD 1.x VAE configs predate
/// <c>scaling_factor</c>; its absence means 0.18215, the SD 1.x value.
/// Reference: diffusers 0.27 AutoencoderKL.__init__.
/// </summary>
public sealed record VaeConfig
{
    public const double DefaultScalingFactor = 0.18215;

    /// <summary>The smallest scaling_factor accepted (and 1 / it the largest).</summary>
    public const double MinScalingFactor = 1e-4;

    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public string[] DownBlockTypes { get; init; } = ["DownEncoderBlock2D"];
    public string[] UpBlockTypes { get; init; } = ["UpDecoderBlock2D"];
    public int[] BlockOutChannels { get; init; } = [64];
    public int LayersPerBlock { get; init; } = 1;
    public string ActFn { get; init; } = "silu";
    public int LatentChannels { get; init; } = 4;
    public int NormNumGroups { get; init; } = 32;
    public int SampleSize { get; init; } = 32;
    public double ScalingFactor { get; init; } = DefaultScalingFactor;
    public double? ShiftFactor { get; init; }
    public bool ForceUpcast { get; init; } = true;
    public bool UseQuantConv { get; init; } = true;
    public bool UsePostQuantConv { get; init; } = true;
    public bool MidBlockAddAttention { get; init; } = true;

    /// <summary>Pixels per latent along each axis: 2^(number of blocks - 1).</summary>
    public int DownscaleFactor => 1 << (BlockOutChannels.Length - 1);

    public static VaeConfig Load(string path) => From(JsonConfig.Load(path));

    public static VaeConfig From(JsonConfig json)
    {
        var d = new VaeConfig();
        int[] channels = json.GetInts("block_out_channels", d.BlockOutChannels);
        string[] down = json.GetStrings("down_block_types", d.DownBlockTypes);
        string[] up = json.GetStrings("up_block_types", d.UpBlockTypes);
        var config = new VaeConfig
        {
            InChannels = json.GetInt("in_channels", d.InChannels),
            OutChannels = json.GetInt("out_channels", d.OutChannels),
            DownBlockTypes = down,
            UpBlockTypes = up,
            BlockOutChannels = channels,
            LayersPerBlock = json.GetInt("layers_per_block", d.LayersPerBlock),
            ActFn = json.GetString("act_fn", d.ActFn),
            LatentChannels = json.GetInt("latent_channels", d.LatentChannels),
            NormNumGroups = json.GetInt("norm_num_groups", d.NormNumGroups),
            SampleSize = json.GetInt("sample_size", d.SampleSize),
            ScalingFactor = json.GetDouble("scaling_factor", d.ScalingFactor),
            ShiftFactor = json.GetDoubleOrNull("shift_factor"),
            ForceUpcast = json.GetBool("force_upcast", d.ForceUpcast),
            UseQuantConv = json.GetBool("use_quant_conv", d.UseQuantConv),
            UsePostQuantConv = json.GetBool("use_post_quant_conv", d.UsePostQuantConv),
            MidBlockAddAttention = json.GetBool("mid_block_add_attention", d.MidBlockAddAttention),
        };
        config.Validate(json.Path);
        return config;
    }

    /// <summary>
    /// Checks what the layout and the model are built from: one block type and width per block, at most
    /// <see cref="ConfigLimits.MaxBlocks"/> blocks, a tile size tiling can use, a bounded layer count, bounded
    /// widths and norm groups that divide each block's channels.
    /// <paramref name="source"/> is the file named in the error.
    /// </summary>
    public void Validate(string source)
    {
        int blocks = BlockOutChannels.Length;
        if (blocks == 0 || blocks > ConfigLimits.MaxBlocks || DownBlockTypes.Length != blocks || UpBlockTypes.Length != blocks)
        {
            throw new InvalidFileException(source,
                $"down_block_types ({DownBlockTypes.Length}), up_block_types ({UpBlockTypes.Length}) and block_out_channels ({blocks}) must have the same length, 1 to {ConfigLimits.MaxBlocks}");
        }
        ConfigLimits.CheckWidths(source, "block_out_channels", BlockOutChannels);
        // Tiled decoding cuts latents into tiles of sample_size / DownscaleFactor that overlap by a quarter: the
        // tiles' strides in latents and in pixels agree only when that quarter is a whole number of latents.
        int tileMultiple = 4 * DownscaleFactor;
        if (SampleSize <= 0 || SampleSize % tileMultiple != 0)
        {
            throw new InvalidFileException(source, $"sample_size must be a positive multiple of {tileMultiple} (4 x the downscale factor {DownscaleFactor}), found {SampleSize}");
        }
        ConfigLimits.CheckCount(source, "layers_per_block", LayersPerBlock, ConfigLimits.MaxLayers);
        ConfigLimits.CheckWidths(source, "latent_channels/in_channels/out_channels", [LatentChannels, InChannels, OutChannels]);
        ConfigLimits.CheckGroups(source, NormNumGroups, BlockOutChannels);
        // Latents are divided by the factor before decoding: SD's are 0.13-1.5, and a factor near 0 overflows them.
        if (!(ScalingFactor >= MinScalingFactor && ScalingFactor <= 1 / MinScalingFactor))
        {
            throw new InvalidFileException(source, $"scaling_factor must be in [{MinScalingFactor}, {1 / MinScalingFactor}], found {ScalingFactor}");
        }
    }
}
