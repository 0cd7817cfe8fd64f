using System.Text.RegularExpressions;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// Test helper, the inverse of the single-file mapper's OpenCLIP rules: writes a CLIPTextModel as the text encoder of
/// an SD 2.x single-file checkpoint (cond_stage_model.model.*), written from open_clip's TextTransformer layout: q, k
/// and v fused into one in_proj per layer, plus the text_projection SD ignores. Like a file written back from
/// diffusers, it has only the model's layers (the fixtures have far fewer than ViT-H's 24, whose last SD skips).
/// Reference: open_clip transformer.py (TextTransformer, ResidualAttentionBlock, nn.MultiheadAttention).
/// </summary>
internal static partial class OpenClipKeyExporter
{
    public const string Prefix = "cond_stage_model.model.";

    private static readonly (string Diffusers, string OpenClip)[] Renames =
    [
        ("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
        ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
        ("text_model.final_layer_norm.", "ln_final."),
    ];

    private static readonly (string Diffusers, string OpenClip)[] LayerRenames =
    [
        ("layer_norm1.", "ln_1."),
        ("layer_norm2.", "ln_2."),
        ("self_attn.out_proj.", "attn.out_proj."),
        ("mlp.fc1.", "mlp.c_fc."),
        ("mlp.fc2.", "mlp.c_proj."),
    ];

    private static readonly string[] Projections = ["q_proj", "k_proj", "v_proj"];

    [GeneratedRegex(@"^text_model\.encoder\.layers\.(\d+)\.(.+)$")]
    private static partial Regex Layer();

    /// <summary>Writes <paramref name="model"/>'s text encoder to <paramref name="path"/> in the OpenCLIP layout.</summary>
    public static void Write(ModelSource model, string path)
    {
        WeightSet text = model.Weights(ModelComponent.TextEncoder);
        var writer = new SafetensorsWriter();
        foreach (TensorEntry entry in text.Entries)
        {
            Match layer = Layer().Match(entry.Name);
            if (!layer.Success)
            {
                Add(writer, Prefix + Rename(entry.Name, Renames), entry);
                continue;
            }
            AddLayerTensor(writer, text, entry, layer.Groups[1].Value, layer.Groups[2].Value);
        }
        int width = model.TextEncoder!.HiddenSize;
        writer.AddFloat32(Prefix + "text_projection", [width, width], new float[width * width]);
        writer.Save(path);
    }

    /// <summary>
    /// One tensor of diffusers layer <paramref name="layer"/> as a tensor of its resblock: q_proj brings k_proj and
    /// v_proj along into the fused in_proj (so those two add nothing themselves).
    /// </summary>
    private static void AddLayerTensor(SafetensorsWriter writer, WeightSet text, TensorEntry entry, string layer, string tail)
    {
        string target = $"{Prefix}transformer.resblocks.{layer}.";
        if (tail.StartsWith("self_attn.q_proj.", StringComparison.Ordinal))
        {
            string parameter = tail["self_attn.q_proj.".Length..];
            var parts = new TensorEntry[Projections.Length];
            for (int i = 0; i < parts.Length; i++)
            {
                Assert.True(text.TryGet($"text_model.encoder.layers.{layer}.self_attn.{Projections[i]}.{parameter}", out parts[i]!));
            }
            // in_proj_weight [3C, C] / in_proj_bias [3C]: q, k and v stacked along the first axis.
            long[] shape = [3 * parts[0].Shape[0], .. parts[0].Shape.AsSpan(1)];
            writer.AddGenerated($"{target}attn.in_proj_{parameter}", parts[0].DType, shape, bytes =>
            {
                int offset = 0;
                foreach (TensorEntry part in parts)
                {
                    ReadOnlySpan<byte> stored = part.File.GetBytes(part.Stored);
                    stored.CopyTo(bytes[offset..]);
                    offset += stored.Length;
                }
            });
        }
        else if (!tail.StartsWith("self_attn.k_proj.", StringComparison.Ordinal) && !tail.StartsWith("self_attn.v_proj.", StringComparison.Ordinal))
        {
            Add(writer, target + Rename(tail, LayerRenames), entry);
        }
    }

    private static void Add(SafetensorsWriter writer, string key, TensorEntry entry) =>
        writer.AddGenerated(key, entry.DType, entry.Shape, bytes => entry.File.GetBytes(entry.Stored).CopyTo(bytes));

    private static string Rename(string key, ReadOnlySpan<(string Diffusers, string OpenClip)> renames)
    {
        foreach (var (diffusers, openClip) in renames)
        {
            if (key.StartsWith(diffusers, StringComparison.Ordinal))
                return openClip + key[diffusers.Length..];
        }
        throw new ArgumentException($"no OpenCLIP name for '{key}'", nameof(key));
    }
}
