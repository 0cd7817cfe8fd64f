using Sd.Engine.Adapters;
using Sd.Engine.Vision;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Png;

namespace Sd.Engine.Pipelines;

/// <summary>
/// One IP-Adapter of a request: the loaded adapter, the CLIP image encoder it was trained with (h94's
/// models/image_encoder for ip-adapter_sd15), the pictures that act as a prompt, and how strongly. Several pictures
/// are attended to together: their image tokens side by side, as diffusers runs a list of pictures for one adapter.
/// The pictures are encoded once per generation, not per pass or step.
/// Reference: diffusers 0.27 StableDiffusionPipeline's ip_adapter_image with load_ip_adapter and set_ip_adapter_scale
/// (several adapters: pictures and a scale each).
/// </summary>
public sealed record IpAdapterUnit(IpAdapterModel Model, ClipVisionModel ImageEncoder, IReadOnlyList<PngImage> Images)
{
    /// <summary>
    /// The most pictures a unit takes (diffusers sets none): each adds T image tokens to every cross-attention and a
    /// picture to the encoder's batch, so a bound keeps a request's cost in reach.
    /// </summary>
    public const int MaxImages = 16;

    /// <summary>A unit of one picture.</summary>
    public IpAdapterUnit(IpAdapterModel model, ClipVisionModel imageEncoder, PngImage image)
        : this(model, imageEncoder, [image])
    {
    }

    /// <summary>The image attention's weight (set_ip_adapter_scale; 0 turns the adapter off, 1 is diffusers' default).</summary>
    public float Scale { get; init; } = 1f;

    /// <summary>
    /// A mask per picture (diffusers' ip_adapter_masks; any channels, read as gray): each picture steers only where
    /// its mask is white, its image attention weighted per query by the mask made binary at each pass's size and
    /// resized to each layer's grid (<see cref="IpAdapterMasks"/>). Null: every picture everywhere, attended together.
    /// </summary>
    public IReadOnlyList<PngImage>? Masks { get; init; }

    /// <summary>
    /// A scale per attention block (set_ip_adapter_scale with a dict, InstantStyle), multiplied by <see cref="Scale"/>;
    /// null: <see cref="Scale"/> everywhere.
    /// </summary>
    public IpAdapterBlockScales? BlockScales { get; init; }

    /// <summary>The scale of each cross-attention layer of a UNet of <paramref name="config"/>, in diffusers' processor order.</summary>
    internal float[] LayerScales(UNetConfig config)
    {
        if (BlockScales is null)
        {
            var scales = new float[DiffusersLayout.CrossAttentionWidths(config).Length];
            Array.Fill(scales, Scale);
            return scales;
        }
        float[] blocks = BlockScales.Expand(config);
        for (int i = 0; i < blocks.Length; i++) blocks[i] *= Scale;
        return blocks;
    }
}
