namespace Sd.Loaders.Config;

/// <summary>
/// <c>unet/config.json</c> of a UNet2DConditionModel with diffusers' constructor defaults for absent keys, and the
/// per-block settings (layers, heads, cross-attention width) expanded to one value per down block.
/// Reference: diffusers 0.27 UNet2DConditionModel.__init__.
/// </summary>
public sealed record UNetConfig
{
    public int? SampleSize { get; init; }
    public int InChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 4;
    public bool CenterInputSample { get; init; }
    public bool FlipSinToCos { get; init; } = true;
    public int FreqShift { get; init; }
    public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
    public string? MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";
    public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];
    public bool[] OnlyCrossAttention { get; init; } = [false, false, false, false];
    public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    public int[] LayersPerBlock { get; init; } = [2, 2, 2, 2];
    public int DownsamplePadding { get; init; } = 1;
    public double MidBlockScaleFactor { get; init; } = 1;
    public string ActFn { get; init; } = "silu";
    public int NormNumGroups { get; init; } = 32;
    public double NormEps { get; init; } = 1e-5;
    public int[] CrossAttentionDim { get; init; } = [1280, 1280, 1280, 1280];
    public int[] TransformerLayersPerBlock { get; init; } = [1, 1, 1, 1];

    /// <summary>Heads per down block (the mid block uses the last, up blocks the reverse).</summary>
    public int[] NumAttentionHeads { get; init; } = [8, 8, 8, 8];

    public bool UseLinearProjection { get; init; }
    public bool UpcastAttention { get; init; }
    public string ResnetTimeScaleShift { get; init; } = "default";
    public string TimeEmbeddingType { get; init; } = "positional";
    public string? ClassEmbedType { get; init; }
    public string? AdditionEmbedType { get; init; }
    public int ConvInKernel { get; init; } = 3;
    public int ConvOutKernel { get; init; } = 3;

    /// <summary>
    /// Width of the guidance-scale embedding that LCM-distilled UNets add to the timestep features through
    /// <c>time_embedding.cond_proj</c> (diffusers' <c>time_cond_proj_dim</c>); null for every other UNet.
    /// </summary>
    public int? TimeCondProjDim { get; init; }

    /// <summary>Activations diffusers applies to the time embedding when set (null: none); Sd supports none.</summary>
    public string? TimestepPostAct { get; init; }

    /// <inheritdoc cref="TimestepPostAct"/>
    public string? TimeEmbeddingActFn { get; init; }

    public static UNetConfig Load(string path) => From(JsonConfig.Load(path));

    public static UNetConfig From(JsonConfig json) => From(json, encoderOnly: false);

    /// <summary>
    /// The config's UNet; with <paramref name="encoderOnly"/> (a ControlNet's config, which has only the down half) the
    /// up blocks mirror the down blocks, so the shared checks hold, and nothing reads them.
    /// </summary>
    internal static UNetConfig From(JsonConfig json, bool encoderOnly)
    {
        var d = new UNetConfig();
        string[] down = json.GetStrings("down_block_types", d.DownBlockTypes);
        int blocks = down.Length;
        // diffusers' historical naming: `attention_head_dim` holds the number of heads unless
        // `num_attention_heads` is given ("num_attention_heads = num_attention_heads or attention_head_dim").
        string headsKey = json.Has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
        var config = new UNetConfig
        {
            SampleSize = json.GetIntOrNull("sample_size"),
            InChannels = json.GetInt("in_channels", d.InChannels),
            OutChannels = json.GetInt("out_channels", d.OutChannels),
            CenterInputSample = json.GetBool("center_input_sample", false),
            FlipSinToCos = json.GetBool("flip_sin_to_cos", d.FlipSinToCos),
            FreqShift = json.GetInt("freq_shift", 0),
            DownBlockTypes = down,
            MidBlockType = json.Has("mid_block_type") ? json.GetString("mid_block_type", "") : d.MidBlockType,
            UpBlockTypes = encoderOnly ? MirroredUpBlocks(down) : json.GetStrings("up_block_types", d.UpBlockTypes),
            OnlyCrossAttention = json.GetBoolPerBlock("only_cross_attention", blocks, false),
            BlockOutChannels = json.GetInts("block_out_channels", d.BlockOutChannels),
            LayersPerBlock = json.GetIntPerBlock("layers_per_block", blocks, 2),
            DownsamplePadding = json.GetInt("downsample_padding", d.DownsamplePadding),
            MidBlockScaleFactor = json.GetDouble("mid_block_scale_factor", d.MidBlockScaleFactor),
            ActFn = json.GetString("act_fn", d.ActFn),
            NormNumGroups = json.GetInt("norm_num_groups", d.NormNumGroups),
            NormEps = json.GetDouble("norm_eps", d.NormEps),
            CrossAttentionDim = json.GetIntPerBlock("cross_attention_dim", blocks, 1280),
            TransformerLayersPerBlock = json.GetIntPerBlock("transformer_layers_per_block", blocks, 1),
            NumAttentionHeads = json.GetIntPerBlock(headsKey, blocks, 8),
            UseLinearProjection = json.GetBool("use_linear_projection", false),
            UpcastAttention = json.GetBool("upcast_attention", false),
            ResnetTimeScaleShift = json.GetString("resnet_time_scale_shift", d.ResnetTimeScaleShift),
            TimeEmbeddingType = json.GetString("time_embedding_type", d.TimeEmbeddingType),
            ClassEmbedType = json.GetStringOrNull("class_embed_type"),
            AdditionEmbedType = json.GetStringOrNull("addition_embed_type"),
            ConvInKernel = json.GetInt("conv_in_kernel", d.ConvInKernel),
            ConvOutKernel = json.GetInt("conv_out_kernel", d.ConvOutKernel),
            TimeCondProjDim = json.GetIntOrNull("time_cond_proj_dim"),
            TimestepPostAct = json.GetStringOrNull("timestep_post_act"),
            TimeEmbeddingActFn = json.GetStringOrNull("time_embedding_act_fn"),
        };
        config.Validate(json.Path, headsKey);
        return config;
    }

    internal static string[] MirroredUpBlocks(string[] down)
    {
        var up = new string[down.Length];
        for (int i = 0; i < down.Length; i++)
        {
            up[down.Length - 1 - i] = down[i].Replace("Down", "Up", StringComparison.Ordinal);
        }
        return up;
    }

    /// <summary>
    /// Checks what the layout and the model are built from: one value per block everywhere, at most
    /// <see cref="ConfigLimits.MaxBlocks"/> blocks, bounded layer counts and widths, heads and norm groups that divide
    /// each block's channels, odd kernels. <paramref name="source"/> is the file named in the error.
    /// </summary>
    public void Validate(string source) => Validate(source, "num_attention_heads");

    private void Validate(string source, string headsKey)
    {
        int blocks = DownBlockTypes.Length;
        if (blocks == 0 || blocks > ConfigLimits.MaxBlocks || UpBlockTypes.Length != blocks || BlockOutChannels.Length != blocks)
        {
            throw new InvalidFileException(source,
                $"down_block_types ({blocks}), up_block_types ({UpBlockTypes.Length}) and block_out_channels ({BlockOutChannels.Length}) must have the same length, 1 to {ConfigLimits.MaxBlocks}");
        }
        ConfigLimits.CheckPerBlock(source, "layers_per_block", LayersPerBlock.Length, blocks);
        ConfigLimits.CheckPerBlock(source, "cross_attention_dim", CrossAttentionDim.Length, blocks);
        ConfigLimits.CheckPerBlock(source, "transformer_layers_per_block", TransformerLayersPerBlock.Length, blocks);
        ConfigLimits.CheckPerBlock(source, headsKey, NumAttentionHeads.Length, blocks);
        ConfigLimits.CheckWidths(source, "block_out_channels", BlockOutChannels);
        for (int i = 0; i < blocks; i++)
        {
            if (NumAttentionHeads[i] <= 0 || BlockOutChannels[i] % NumAttentionHeads[i] != 0)
            {
                throw new InvalidFileException(source, $"{headsKey} {NumAttentionHeads[i]} does not divide block {i}'s {BlockOutChannels[i]} channels");
            }
            ConfigLimits.CheckCount(source, "layers_per_block", LayersPerBlock[i], ConfigLimits.MaxLayers);
            ConfigLimits.CheckCount(source, "transformer_layers_per_block", TransformerLayersPerBlock[i], ConfigLimits.MaxLayers);
        }
        ConfigLimits.CheckWidths(source, "cross_attention_dim", CrossAttentionDim);
        ConfigLimits.CheckWidths(source, "in_channels/out_channels", [InChannels, OutChannels]);
        if (TimeCondProjDim is { } condDim)
        {
            ConfigLimits.CheckWidths(source, "time_cond_proj_dim", [condDim]);
            if (condDim < 4)
            {
                // The guidance embedding divides by half its width minus 1 (diffusers gives NaN below 4).
                throw new InvalidFileException(source, $"time_cond_proj_dim must be at least 4, found {condDim}");
            }
        }
        ConfigLimits.CheckGroups(source, NormNumGroups, BlockOutChannels);
        ConfigLimits.CheckKernel(source, "conv_in_kernel", ConvInKernel);
        ConfigLimits.CheckKernel(source, "conv_out_kernel", ConvOutKernel);
        ConfigLimits.CheckEpsilon(source, "norm_eps", NormEps);
        if (DownsamplePadding < 0)
        {
            throw new InvalidFileException(source, $"downsample_padding must not be negative, found {DownsamplePadding}");
        }
    }
}
