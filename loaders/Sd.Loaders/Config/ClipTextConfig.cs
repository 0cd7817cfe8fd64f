namespace Sd.Loaders.Config;

/// <summary>
/// <c>text_encoder/config.json</c> of a CLIPTextModel with transformers' CLIPTextConfig defaults.
/// SD 1.x uses quick_gelu; SD 2.x (OpenCLIP) uses gelu.
/// Reference: transformers 4.38 CLIPTextConfig.
/// </summary>
public sealed record ClipTextConfig
{
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 512;
    public int IntermediateSize { get; init; } = 2048;
    public int ProjectionDim { get; init; } = 512;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 8;
    public int MaxPositionEmbeddings { get; init; } = 77;
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    public int PadTokenId { get; init; } = 1;
    public int BosTokenId { get; init; } = 49406;
    public int EosTokenId { get; init; } = 49407;

    public int HeadDim => HiddenSize / NumAttentionHeads;

    public static ClipTextConfig Load(string path) => From(JsonConfig.Load(path));

    public static ClipTextConfig From(JsonConfig json)
    {
        var d = new ClipTextConfig();
        var config = new ClipTextConfig
        {
            VocabSize = json.GetInt("vocab_size", d.VocabSize),
            HiddenSize = json.GetInt("hidden_size", d.HiddenSize),
            IntermediateSize = json.GetInt("intermediate_size", d.IntermediateSize),
            ProjectionDim = json.GetInt("projection_dim", d.ProjectionDim),
            NumHiddenLayers = json.GetInt("num_hidden_layers", d.NumHiddenLayers),
            NumAttentionHeads = json.GetInt("num_attention_heads", d.NumAttentionHeads),
            MaxPositionEmbeddings = json.GetInt("max_position_embeddings", d.MaxPositionEmbeddings),
            HiddenAct = json.GetString("hidden_act", d.HiddenAct),
            LayerNormEps = json.GetDouble("layer_norm_eps", d.LayerNormEps),
            PadTokenId = json.GetInt("pad_token_id", d.PadTokenId),
            BosTokenId = json.GetInt("bos_token_id", d.BosTokenId),
            EosTokenId = json.GetInt("eos_token_id", d.EosTokenId),
        };
        config.Validate(json.Path);
        return config;
    }

    /// <summary>
    /// Checks what the layout and the model are built from: bounded sizes, at most <see cref="ConfigLimits.MaxLayers"/>
    /// layers, heads that divide the width and a supported activation. <paramref name="source"/> is the file named
    /// in the error.
    /// </summary>
    public void Validate(string source)
    {
        ConfigLimits.CheckCount(source, "vocab_size", VocabSize, ConfigLimits.MaxVocabulary);
        ConfigLimits.CheckWidths(source, "hidden_size/intermediate_size/num_attention_heads/max_position_embeddings",
            [HiddenSize, IntermediateSize, NumAttentionHeads, MaxPositionEmbeddings]);
        ConfigLimits.CheckCount(source, "num_hidden_layers", NumHiddenLayers, ConfigLimits.MaxLayers);
        ConfigLimits.CheckEpsilon(source, "layer_norm_eps", LayerNormEps);
        if (HiddenSize % NumAttentionHeads != 0)
        {
            throw new InvalidFileException(source, $"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
        }
        if (HiddenAct is not ("quick_gelu" or "gelu"))
        {
            throw new InvalidFileException(source, $"hidden_act '{HiddenAct}' is not supported; expected quick_gelu or gelu");
        }
    }
}
