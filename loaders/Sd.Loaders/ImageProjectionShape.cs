namespace Sd.Loaders;

/// <summary>An IP-Adapter's image projection (its image_proj.* tensors): what turns a picture's encoding into image tokens.</summary>
public enum ImageProjectionKind
{
    /// <summary>ip-adapter_sd15: Linear then LayerNorm over the encoder's image_embeds (diffusers' ImageProjection).</summary>
    Linear,

    /// <summary>
    /// ip-adapter-plus(-face)_sd15: a perceiver Resampler whose learned queries attend to the encoder's penultimate
    /// hidden states (diffusers' IPAdapterPlusImageProjection).
    /// </summary>
    Resampler,

    /// <summary>
    /// ip-adapter-full-face_sd15: Linear, GELU, Linear, LayerNorm over the encoder's penultimate hidden states, one
    /// token per encoder position (diffusers' IPAdapterFullImageProjection).
    /// </summary>
    Mlp,
}

/// <summary>
/// The sizes of an IP-Adapter's image projection, read from its file (<see cref="IpAdapterSource"/>) or given to
/// write one (<see cref="Layout.DiffusersLayout.ImageProjection"/>).
/// </summary>
/// <param name="InputWidth">What it takes: the encoder's projection_dim (image_embeds) for <see cref="ImageProjectionKind.Linear"/>, its hidden_size (hidden states) otherwise.</param>
/// <param name="CrossAttentionDim">The width of its tokens: the UNet's cross_attention_dim.</param>
/// <param name="Tokens">Tokens per picture: the Linear's (4) or the Resampler's queries (16); 0 for the MLP, which makes one per encoder position.</param>
/// <param name="Width">The Resampler's width (its latents') or the MLP's hidden width; 0 for the Linear.</param>
/// <param name="Depth">The Resampler's layers.</param>
/// <param name="Heads">The Resampler's attention heads, of <see cref="HeadDim"/> channels each.</param>
/// <param name="FeedForward">The Resampler's feed-forward width.</param>
public sealed record ImageProjectionShape(ImageProjectionKind Kind, int InputWidth, int CrossAttentionDim, int Tokens,
    int Width = 0, int Depth = 0, int Heads = 0, int FeedForward = 0)
{
    /// <summary>The Resampler's head size: h94's dim_head, which diffusers' conversion assumes too.</summary>
    public const int HeadDim = 64;

    /// <summary>Whether it takes the encoder's penultimate hidden states [N, positions, hidden_size] rather than its image_embeds [N, projection_dim].</summary>
    public bool TakesHiddenStates => Kind != ImageProjectionKind.Linear;

    public static ImageProjectionShape Linear(int imageEmbedDim, int crossAttentionDim, int tokens) =>
        new(ImageProjectionKind.Linear, imageEmbedDim, crossAttentionDim, tokens);

    public static ImageProjectionShape Resampler(int hiddenSize, int crossAttentionDim, int width, int queries, int depth, int heads, int feedForward) =>
        new(ImageProjectionKind.Resampler, hiddenSize, crossAttentionDim, queries, width, depth, heads, feedForward);

    public static ImageProjectionShape Mlp(int hiddenSize, int crossAttentionDim, int width) =>
        new(ImageProjectionKind.Mlp, hiddenSize, crossAttentionDim, 0, width);
}
