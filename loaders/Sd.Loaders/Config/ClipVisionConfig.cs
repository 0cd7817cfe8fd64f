namespace Sd.Loaders.Config;

/// <summary>
/// <c>image_encoder/config.json</c> of a transformers CLIPVisionModelWithProjection (IP-Adapter's image encoder, e.g.
/// h94/IP-Adapter's models/image_encoder: OpenCLIP ViT-H/14, 1280 wide, 32 layers, 224 px pictures), with
/// transformers' CLIPVisionConfig defaults for absent keys. A full CLIPConfig's nested <c>vision_config</c> is read too.
/// Reference: transformers 4.38 CLIPVisionConfig.
/// </summary>
public sealed record ClipVisionConfig
{
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int ProjectionDim { get; init; } = 512;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int NumChannels { get; init; } = 3;

    /// <summary>The side of the square picture the encoder sees (the image processor resizes and crops to it).</summary>
    public int ImageSize { get; init; } = 224;

    public int PatchSize { get; init; } = 32;
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;

    /// <summary>Patches per side.</summary>
    public int PatchesPerSide => ImageSize / PatchSize;

    /// <summary>Tokens the transformer sees: the class token and one per patch.</summary>
    public int Positions => PatchesPerSide * PatchesPerSide + 1;

    /// <summary>The largest picture side a config may ask for (CLIP encoders use 224-448).</summary>
    private const int MaxImageSize = 4096;

    /// <summary>The most tokens (patches + 1) a config may ask for, so that attention scratch stays bounded.</summary>
    private const int MaxPositions = 16385;

    public static ClipVisionConfig Load(string path) => From(JsonConfig.Load(path));

    public static ClipVisionConfig From(JsonConfig json)
    {
        string? type = json.GetStringOrNull("model_type");
        if (type is not (null or "clip_vision_model" or "clip"))
        {
            throw new InvalidFileException(json.Path, $"model_type is '{type}', not clip_vision_model (a CLIP image encoder's config.json was expected)");
        }
        JsonConfig vision = json.Child("vision_config") ?? json;
        var d = new ClipVisionConfig();
        var config = new ClipVisionConfig
        {
            HiddenSize = vision.GetInt("hidden_size", d.HiddenSize),
            IntermediateSize = vision.GetInt("intermediate_size", d.IntermediateSize),
            // A full CLIPConfig keeps projection_dim at its top level.
            ProjectionDim = vision.GetIntOrNull("projection_dim") ?? json.GetInt("projection_dim", d.ProjectionDim),
            NumHiddenLayers = vision.GetInt("num_hidden_layers", d.NumHiddenLayers),
            NumAttentionHeads = vision.GetInt("num_attention_heads", d.NumAttentionHeads),
            NumChannels = vision.GetInt("num_channels", d.NumChannels),
            ImageSize = vision.GetInt("image_size", d.ImageSize),
            PatchSize = vision.GetInt("patch_size", d.PatchSize),
            HiddenAct = vision.GetString("hidden_act", d.HiddenAct),
            LayerNormEps = vision.GetDouble("layer_norm_eps", d.LayerNormEps),
        };
        config.Validate(json.Path);
        return config;
    }

    /// <summary>
    /// Bounded sizes and layer count, heads that divide the width, RGB pictures, a picture side that the patch side
    /// divides, and a supported activation. <paramref name="source"/> is the file named in the error.
    /// </summary>
    public void Validate(string source)
    {
        ConfigLimits.CheckWidths(source, "hidden_size/intermediate_size/projection_dim/num_attention_heads",
            [HiddenSize, IntermediateSize, ProjectionDim, NumAttentionHeads]);
        ConfigLimits.CheckCount(source, "num_hidden_layers", NumHiddenLayers, ConfigLimits.MaxLayers);
        ConfigLimits.CheckCount(source, "image_size", ImageSize, MaxImageSize);
        ConfigLimits.CheckCount(source, "patch_size", PatchSize, ImageSize);
        ConfigLimits.CheckEpsilon(source, "layer_norm_eps", LayerNormEps);
        if (NumChannels != 3)
        {
            throw new InvalidFileException(source, $"num_channels is {NumChannels}; a CLIP image encoder takes RGB pictures (3)");
        }
        if (HiddenSize % NumAttentionHeads != 0)
        {
            throw new InvalidFileException(source, $"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
        }
        if (ImageSize % PatchSize != 0)
        {
            throw new InvalidFileException(source, $"image_size {ImageSize} is not divisible by patch_size {PatchSize}");
        }
        ConfigLimits.CheckCount(source, "(image_size / patch_size)^2 + 1 positions", Positions, MaxPositions);
        if (HiddenAct is not ("quick_gelu" or "gelu"))
        {
            throw new InvalidFileException(source, $"hidden_act '{HiddenAct}' is not supported; expected quick_gelu or gelu");
        }
    }
}
