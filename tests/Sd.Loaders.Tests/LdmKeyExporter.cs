using System.Globalization;
using System.Text.RegularExpressions;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// Test helper, the inverse of <see cref="SingleFileKeyMapper"/>: names diffusers tensors the way an original
/// (CompVis/ldm) single-file checkpoint does, and writes a diffusers model as one such file. It is written from the
/// ldm module structure (as diffusers' convert_diffusers_to_original_stable_diffusion.py is), not from the mapper's
/// tables, so checking one against the other tests both.
/// Reference: ldm openaimodel.UNetModel, ldm autoencoder.AutoencoderKL (Encoder/Decoder), FrozenCLIPEmbedder.
/// </summary>
internal static partial class LdmKeyExporter
{
    public const string UNetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    public const string TextPrefix = "cond_stage_model.transformer.";

    // ldm's ResBlock keeps its layers in Sequentials; the numbers skip the SiLU and Dropout layers, which have no weights.
    private static readonly (string Diffusers, string Ldm)[] UNetResnet =
    [
        ("norm1.", "in_layers.0."),
        ("conv1.", "in_layers.2."),
        ("time_emb_proj.", "emb_layers.1."),
        ("norm2.", "out_layers.0."),
        ("conv2.", "out_layers.3."),
        ("conv_shortcut.", "skip_connection."),
    ];

    private static readonly (string Diffusers, string Ldm)[] UNetOutside =
    [
        ("conv_in.", "input_blocks.0.0."),
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
    ];

    private static readonly (string Diffusers, string Ldm)[] VaeResnet =
    [
        ("norm1.", "norm1."),
        ("conv1.", "conv1."),
        ("norm2.", "norm2."),
        ("conv2.", "conv2."),
        ("conv_shortcut.", "nin_shortcut."),
    ];

    private static readonly (string Diffusers, string Ldm)[] VaeAttention =
    [
        ("group_norm.", "norm."),
        ("to_q.", "q."),
        ("to_k.", "k."),
        ("to_v.", "v."),
        ("to_out.0.", "proj_out."),
    ];

    private static readonly (string Diffusers, string Ldm)[] VaeSide =
    [
        ("conv_in.", "conv_in."),
        ("conv_out.", "conv_out."),
        ("conv_norm_out.", "norm_out."),
    ];

    [GeneratedRegex(@"^(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$")]
    private static partial Regex UNetBlock();

    [GeneratedRegex(@"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")]
    private static partial Regex MidBlock();

    [GeneratedRegex(@"^(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)$")]
    private static partial Regex VaeLevel();

    /// <summary>
    /// The single-file key of a diffusers UNet key. ldm lists the blocks flat: input_blocks.0 is conv_in, then each
    /// down block has one entry per resnet (layer 0 the resnet, layer 1 its attention) and, except the last, one for
    /// its downsampler; output_blocks has layers_per_block + 1 entries per up block, the upsampler in the last one
    /// after the attention; the mid block is resnet, attention, resnet.
    /// </summary>
    public static string UNet(string key, UNetConfig config)
    {
        int layers = config.LayersPerBlock[0];
        // ldm's UNetModel takes one num_res_blocks for all blocks; the flat numbering depends on it.
        Assert.All(config.LayersPerBlock, l => Assert.Equal(layers, l));
        int stride = layers + 1;
        if (Rename(key, UNetOutside) is { } outside)
            return UNetPrefix + outside;
        if (MidBlock().Match(key) is { Success: true } mid)
        {
            int k = Index(mid.Groups[2]);
            string rest = mid.Groups[3].Value;
            return mid.Groups[1].Value == "resnets"
                ? $"{UNetPrefix}middle_block.{2 * k}.{Required(Rename(rest, UNetResnet), key)}"
                : $"{UNetPrefix}middle_block.{2 * k + 1}.{rest}";
        }
        Match m = UNetBlock().Match(key);
        Assert.True(m.Success, $"not a UNet key: {key}");
        bool down = m.Groups[1].Value == "down";
        int block = Index(m.Groups[2]);
        int slot = Index(m.Groups[4]);
        string module = m.Groups[3].Value, tail = m.Groups[5].Value;
        string list = down ? "input_blocks" : "output_blocks";
        int entry = down ? 1 + block * stride + slot : block * stride + slot;
        return module switch
        {
            "resnets" => $"{UNetPrefix}{list}.{entry}.0.{Required(Rename(tail, UNetResnet), key)}",
            "attentions" => $"{UNetPrefix}{list}.{entry}.1.{tail}",
            // The downsampler has an entry of its own, after the block's resnets; its conv is called "op".
            "downsamplers" => $"{UNetPrefix}input_blocks.{(block + 1) * stride}.0.{Required(Rename(tail, [("conv.", "op.")]), key)}",
            // The upsampler is the last layer of the block's last entry: after the resnet and any attention.
            _ => $"{UNetPrefix}output_blocks.{block * stride + layers}.{(HasAttention(config.UpBlockTypes[block]) ? 2 : 1)}.{tail}",
        };
    }

    /// <summary>
    /// The single-file key of a diffusers VAE key. ldm stores the decoder levels by resolution, so diffusers
    /// up_blocks.i is decoder.up.(n-1-i); the mid-block attention projections are 1x1 convolutions there
    /// (<paramref name="addTrailing1x1"/>).
    /// </summary>
    public static string Vae(string key, VaeConfig config, out bool addTrailing1x1)
    {
        addTrailing1x1 = false;
        if (key.StartsWith("quant_conv.", StringComparison.Ordinal) || key.StartsWith("post_quant_conv.", StringComparison.Ordinal))
            return VaePrefix + key;
        if (VaeLevel().Match(key) is { Success: true } level)
        {
            string side = level.Groups[1].Value;
            int index = Index(level.Groups[3]);
            string module = level.Groups[4].Value, tail = level.Groups[6].Value;
            string ldmLevel = side == "encoder" ? $"down.{index}" : $"up.{config.BlockOutChannels.Length - 1 - index}";
            return module == "resnets"
                ? $"{VaePrefix}{side}.{ldmLevel}.block.{level.Groups[5].Value}.{Required(Rename(tail, VaeResnet), key)}"
                : $"{VaePrefix}{side}.{ldmLevel}.{(side == "encoder" ? "downsample" : "upsample")}.{tail}";
        }
        int dot = key.IndexOf('.');
        Assert.True(dot > 0, $"not a VAE key: {key}");
        string prefix = $"{VaePrefix}{key[..dot]}.";
        string rest = key[(dot + 1)..];
        if (Rename(rest, VaeSide) is { } outside)
            return prefix + outside;
        Match mid = MidBlock().Match(rest);
        Assert.True(mid.Success, $"not a VAE key: {key}");
        // ldm counts the mid block's modules from 1: block_1, attn_1, block_2.
        int number = Index(mid.Groups[2]) + 1;
        string midTail = mid.Groups[3].Value;
        if (mid.Groups[1].Value == "resnets")
            return $"{prefix}mid.block_{number}.{Required(Rename(midTail, VaeResnet), key)}";
        addTrailing1x1 = !midTail.StartsWith("group_norm.", StringComparison.Ordinal) && midTail.EndsWith(".weight", StringComparison.Ordinal);
        return $"{prefix}mid.attn_{number}.{Required(Rename(midTail, VaeAttention), key)}";
    }

    /// <summary>
    /// FrozenCLIPEmbedder wraps transformers' CLIPTextModel as "transformer", so the keys are unchanged; with
    /// <paramref name="withoutTextModelLevel"/>, as NovelAI's checkpoint and the models merged from it store them
    /// (<c>embeddings.*</c> for <c>text_model.embeddings.*</c>).
    /// </summary>
    public static string Text(string key, bool withoutTextModelLevel = false) =>
        TextPrefix + (withoutTextModelLevel ? key["text_model.".Length..] : key);

    /// <summary>
    /// Writes every component of <paramref name="model"/> into one .safetensors file under single-file keys, each
    /// tensor with its stored dtype and bytes (VAE attention projections reshaped to [C,C,1,1], same bytes); the
    /// text encoder's keys optionally without their <c>text_model.</c> level (see <see cref="Text"/>).
    /// </summary>
    public static void Write(ModelSource model, string path, bool withoutTextModelLevel = false)
    {
        var writer = new SafetensorsWriter();
        foreach (ModelComponent component in model.Components)
        {
            foreach (TensorEntry entry in model.Weights(component).Entries)
            {
                bool addTrailing1x1 = false;
                string key = component switch
                {
                    ModelComponent.Unet => UNet(entry.Name, model.UNet!),
                    ModelComponent.Vae => Vae(entry.Name, model.Vae!, out addTrailing1x1),
                    _ => Text(entry.Name, withoutTextModelLevel),
                };
                Assert.True(!addTrailing1x1 || entry.Shape.Length == 2, $"{entry} is not a Linear weight");
                long[] shape = addTrailing1x1 ? [.. entry.Shape, 1, 1] : entry.Shape;
                writer.AddGenerated(key, entry.DType, shape, bytes => entry.File.GetBytes(entry.Stored).CopyTo(bytes));
            }
        }
        writer.Save(path);
    }

    private static bool HasAttention(string blockType) => blockType.StartsWith("CrossAttn", StringComparison.Ordinal);

    private static int Index(Group group) => int.Parse(group.Value, CultureInfo.InvariantCulture);

    private static string? Rename(string key, ReadOnlySpan<(string Diffusers, string Ldm)> renames)
    {
        foreach (var (diffusers, ldm) in renames)
        {
            if (key.StartsWith(diffusers, StringComparison.Ordinal))
                return ldm + key[diffusers.Length..];
        }
        return null;
    }

    private static string Required(string? renamed, string key) => renamed ?? throw new ArgumentException($"no single-file name for '{key}'", nameof(key));
}
