namespace Sd.Loaders.Checkpoints;

// Reference: diffusers single_file_utils.py convert_controlnet_checkpoint; lllyasviel's cldm.py ControlNet
/// <summary>
/// Maps an original-format ControlNet's keys (lllyasviel's cldm ControlNet, as in control_v11p_sd15_canny.safetensors)
/// to diffusers ControlNetModel keys. The keys stand under "control_model." in files saved with the whole ControlLDM
/// (ControlNet 1.0: the SD model's own tensors beside them are skipped), or bare in ControlNet 1.1's files.
/// The encoder (time_embed, input_blocks, middle_block) is named as in an SD checkpoint's UNet
/// (<see cref="UnetKeyMapping"/>, encoder only); besides it:
/// <list type="bullet">
/// <item>input_hint_block is a Sequential of 3x3 convolutions at the even positions (SiLUs between): the first is
/// controlnet_cond_embedding.conv_in, the last its conv_out, those between its blocks.0, 1, ...</item>
/// <item>zero_convs.i.0 is controlnet_down_blocks.i, middle_block_out.0 controlnet_mid_block.</item>
/// </list>
/// </summary>
internal sealed class ControlNetKeyMapping
{
    public const string Prefix = "control_model.";

    private const string HintBlock = "input_hint_block.";
    private const string ZeroConvs = "zero_convs.";
    private const string MiddleOut = "middle_block_out.0.";

    /// <summary>Whether its names are a whole ControlLDM's (under <see cref="Prefix"/>, beside an SD model) rather than bare.</summary>
    public bool Prefixed => _prefix.Length > 0;

    private readonly string _prefix;
    private readonly UnetKeyMapping _encoder;
    private readonly int _lastHintConv;

    private ControlNetKeyMapping(string prefix, UnetKeyMapping encoder, int lastHintConv)
    {
        _prefix = prefix;
        _encoder = encoder;
        _lastHintConv = lastHintConv;
    }

    /// <summary>Whether the keys are an original-format ControlNet's: prefixed, or a bare input_hint_block.</summary>
    public static bool IsOriginalFormat(IEnumerable<string> keys)
    {
        foreach (string key in keys)
        {
            if (key.StartsWith(Prefix, StringComparison.Ordinal) || key.StartsWith(HintBlock, StringComparison.Ordinal))
                return true;
        }
        return false;
    }

    /// <summary>Reads the layout from all keys of one file.</summary>
    /// <exception cref="InvalidFileException">The blocks or the hint convolutions are inconsistent.</exception>
    public static ControlNetKeyMapping Create(IReadOnlyCollection<string> keys, string filePath)
    {
        string prefix = "";
        foreach (string key in keys)
        {
            if (key.StartsWith(Prefix, StringComparison.Ordinal))
            {
                prefix = Prefix;
                break;
            }
        }
        var hintConvs = new HashSet<int>();
        int last = -1;
        foreach (string fullKey in keys)
        {
            ReadOnlySpan<char> key = fullKey;
            if (KeyPath.TryTakePrefix(ref key, prefix) && KeyPath.TryTakePrefix(ref key, HintBlock) && KeyPath.TryTakeIndex(ref key, out int index))
            {
                // The SiLUs between the convolutions have no weights, so only even positions can hold one.
                if (index % 2 != 0)
                    throw KeyPath.Inconsistent(filePath, $"{prefix}{HintBlock}{index} has weights, but only the even positions are convolutions");
                hintConvs.Add(index);
                last = Math.Max(last, index);
            }
        }
        for (int index = 0; index < last; index += 2)
        {
            if (!hintConvs.Contains(index))
                throw KeyPath.Inconsistent(filePath, $"{prefix}{HintBlock}{index} is missing although {prefix}{HintBlock}{last} exists");
        }
        if (last < 2)
            throw KeyPath.Inconsistent(filePath, $"{prefix}{HintBlock} has {hintConvs.Count} convolutions, expected at least 2 (the conditioning embedding's first and last)");
        UnetKeyMapping encoder = UnetKeyMapping.Create(keys, filePath, prefix, encoderOnly: true)!;
        return new ControlNetKeyMapping(prefix, encoder, last);
    }

    /// <summary>
    /// The diffusers key of one key; <see cref="SingleFileKeyKind.Ignored"/> for the rest of a whole ControlLDM
    /// checkpoint (its SD model), <see cref="SingleFileKeyKind.Unknown"/> where no rule applies.
    /// </summary>
    public SingleFileKeyResult Map(string fullKey)
    {
        ReadOnlySpan<char> key = fullKey;
        if (!KeyPath.TryTakePrefix(ref key, _prefix))
            return SingleFileKeyMapper.Ignored(ModelComponent.Unet, fullKey, "not under control_model.: the rest of a whole ControlLDM checkpoint, which a ControlNet does not use");
        string? mapped = MapOwn(key) ?? _encoder.Map(key);
        return mapped is null
            ? SingleFileKeyMapper.Unknown(ModelComponent.Unet, fullKey)
            : new SingleFileKeyResult(SingleFileKeyKind.Mapped, ModelComponent.Unet, mapped, false, null);
    }

    private string? MapOwn(ReadOnlySpan<char> key)
    {
        if (KeyPath.TryTakePrefix(ref key, HintBlock))
        {
            if (!KeyPath.TryTakeIndex(ref key, out int index))
                return null;
            return index == 0 ? $"controlnet_cond_embedding.conv_in.{key}"
                : index == _lastHintConv ? $"controlnet_cond_embedding.conv_out.{key}"
                : $"controlnet_cond_embedding.blocks.{index / 2 - 1}.{key}";
        }
        if (KeyPath.TryTakePrefix(ref key, ZeroConvs))
        {
            return KeyPath.TryTakeIndex(ref key, out int index) && KeyPath.TryTakePrefix(ref key, "0.")
                ? $"controlnet_down_blocks.{index}.{key}"
                : null;
        }
        return KeyPath.TryTakePrefix(ref key, MiddleOut) ? $"controlnet_mid_block.{key}" : null;
    }
}
