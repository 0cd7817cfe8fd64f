namespace Sd.Loaders.Checkpoints;

// Reference: diffusers scripts/convert_diffusers_to_original_stable_diffusion.py (unet_conversion_map)
/// <summary>
/// The original (CompVis/LDM) names of a diffusers UNet's weights, the inverse of <see cref="UnetKeyMapping"/>: what
/// a single-file checkpoint calls them without its "model.diffusion_model." prefix ("input_blocks.1.1.proj_in.weight"
/// for "down_blocks.0.attentions.0.proj_in.weight"). LoRAs that name the UNet's LDM modules (kohya's
/// "lora_unet_input_blocks_1_1_proj_in", ComfyUI's "diffusion_model.input_blocks.1.1.proj_in") are matched by them.
/// The layout is read from the names themselves: the resnets per down block and which up blocks have attention.
/// </summary>
public static class UnetLdmNames
{
    /// <summary>
    /// Each diffusers weight name of a UNet by its LDM name; empty when the UNet has no LDM form (LDM's UNet has one
    /// number of resnets for every block, and every up block one more).
    /// </summary>
    public static Dictionary<string, string> Of(IEnumerable<string> diffusersNames)
    {
        var names = new List<string>(diffusersNames);
        var downResnets = new Dictionary<int, int>();
        var upResnets = new Dictionary<int, int>();
        var upAttention = new HashSet<int>();
        foreach (string name in names)
        {
            ReadOnlySpan<char> key = name;
            if (TakeBlock(ref key, "down_blocks.", out int block, out string list, out int slot) && list == "resnets")
                downResnets[block] = Math.Max(downResnets.GetValueOrDefault(block), slot + 1);
            else if (TakeBlock(ref key, "up_blocks.", out block, out list, out slot))
            {
                if (list == "resnets")
                    upResnets[block] = Math.Max(upResnets.GetValueOrDefault(block), slot + 1);
                else if (list == "attentions")
                    upAttention.Add(block);
            }
        }
        var ldm = new Dictionary<string, string>(StringComparer.Ordinal);
        int layers = downResnets.GetValueOrDefault(0);
        if (layers == 0 || downResnets.Count != upResnets.Count)
            return ldm;
        foreach ((int block, int count) in downResnets)
        {
            if (count != layers || upResnets.GetValueOrDefault(block) != layers + 1)
                return ldm;
        }
        foreach (string name in names)
        {
            // Two weights under one LDM name would be a UNet LDM cannot hold.
            if (Name(name, layers, upAttention) is { } original && !ldm.TryAdd(original, name))
                return [];
        }
        return ldm;
    }

    /// <summary>
    /// LDM lists the blocks flat: input_blocks.0 is conv_in, then each down block has one entry per resnet (layer 0
    /// the resnet, layer 1 its attention) and, but for the last, one for its downsampler ("op"); output_blocks has
    /// layers + 1 entries per up block, the upsampler the last layer of the last entry; the mid block is resnet,
    /// attention, resnet.
    /// </summary>
    private static string? Name(string name, int layers, HashSet<int> upAttention)
    {
        int stride = layers + 1;
        ReadOnlySpan<char> key = name;
        foreach ((string ldm, string diffusers) in UnetKeyMapping.OutsideBlockRenames)
        {
            if (key.StartsWith(diffusers, StringComparison.Ordinal))
                return string.Concat(ldm, key[diffusers.Length..]);
        }
        if (KeyPath.TryTakePrefix(ref key, "mid_block."))
        {
            bool resnet = KeyPath.TryTakePrefix(ref key, "resnets.");
            if ((!resnet && !KeyPath.TryTakePrefix(ref key, "attentions.")) || !KeyPath.TryTakeIndex(ref key, out int k))
                return null;
            return resnet ? Resnet($"middle_block.{2 * k}.", key) : $"middle_block.{2 * k + 1}.{key}";
        }
        bool down = name.StartsWith("down_blocks.", StringComparison.Ordinal);
        if (!TakeBlock(ref key, down ? "down_blocks." : "up_blocks.", out int block, out string list, out int slot))
            return null;
        int entry = down ? 1 + block * stride + slot : block * stride + slot;
        string blocks = down ? "input_blocks" : "output_blocks";
        return list switch
        {
            "resnets" => Resnet($"{blocks}.{entry}.0.", key),
            "attentions" => $"{blocks}.{entry}.1.{key}",
            "downsamplers" when down && slot == 0 && KeyPath.TryTakePrefix(ref key, "conv.") => $"input_blocks.{(block + 1) * stride}.0.op.{key}",
            "upsamplers" when !down && slot == 0 => $"output_blocks.{block * stride + layers}.{(upAttention.Contains(block) ? 2 : 1)}.{key}",
            _ => null,
        };
    }

    /// <summary>A resnet's layer under <paramref name="parent"/>, named as LDM's ResBlock Sequentials name it.</summary>
    private static string? Resnet(string parent, ReadOnlySpan<char> layer)
    {
        foreach ((string ldm, string diffusers) in UnetKeyMapping.ResnetRenames)
        {
            if (layer.StartsWith(diffusers, StringComparison.Ordinal))
                return string.Concat(parent, ldm, layer[diffusers.Length..]);
        }
        return null;
    }

    /// <summary>Takes "down_blocks.B.LIST.S." and its parts.</summary>
    private static bool TakeBlock(ref ReadOnlySpan<char> key, string blocks, out int block, out string list, out int slot)
    {
        ReadOnlySpan<char> rest = key;
        list = "";
        block = slot = -1;
        if (!KeyPath.TryTakePrefix(ref rest, blocks) || !KeyPath.TryTakeIndex(ref rest, out block))
            return false;
        int dot = rest.IndexOf('.');
        if (dot <= 0)
            return false;
        list = rest[..dot].ToString();
        rest = rest[(dot + 1)..];
        if (!KeyPath.TryTakeIndex(ref rest, out slot))
            return false;
        key = rest;
        return true;
    }
}
