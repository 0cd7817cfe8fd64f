using Sd.Loaders;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;

namespace Sd.Cli.Tests;

/// <summary>
/// h94's models folder in miniature: an IP-Adapter file with random weights (F16) and a tiny random CLIP image encoder
/// (width 32, 2 layers, 28x28 pictures of 14x14 patches: 5 positions, projection 24) in image_encoder/ beside it.
/// </summary>
internal static class SmallIpAdapter
{
    /// <summary>The adapter's image projection for that encoder: Linear (4 tokens), Resampler (6 queries) or MLP.</summary>
    public static ImageProjectionShape Projection(ImageProjectionKind kind, int crossAttentionDim) => kind switch
    {
        ImageProjectionKind.Resampler => ImageProjectionShape.Resampler(32, crossAttentionDim, 64, 6, 2, 1, 128),
        ImageProjectionKind.Mlp => ImageProjectionShape.Mlp(32, crossAttentionDim, 48),
        _ => ImageProjectionShape.Linear(24, crossAttentionDim, 4),
    };

    /// <summary>Writes models/ip-adapter.safetensors (for UNet cross-attention layers of <paramref name="layerWidths"/>) and models/image_encoder/; returns the file.</summary>
    public static string Write(string models, ImageProjectionKind kind, int crossAttentionDim, IReadOnlyList<int> layerWidths)
    {
        string encoder = Path.Combine(models, "image_encoder");
        Directory.CreateDirectory(encoder);
        File.WriteAllText(Path.Combine(encoder, "config.json"), """
            {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "image_size": 28, "patch_size": 14, "projection_dim": 24, "hidden_act": "gelu"}
            """);
        RandomModelWriter.Weights(DiffusersLayout.ClipVision(ClipVisionConfig.Load(Path.Combine(encoder, "config.json"))), TensorDType.F32, 3)
            .Save(Path.Combine(encoder, "model.safetensors"));
        string file = Path.Combine(models, "ip-adapter.safetensors");
        RandomModelWriter.Weights(DiffusersLayout.IpAdapter(Projection(kind, crossAttentionDim), layerWidths), TensorDType.F16, 4).Save(file);
        return file;
    }
}
