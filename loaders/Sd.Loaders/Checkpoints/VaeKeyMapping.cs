namespace Sd.Loaders.Checkpoints;

/// <summary>The VAE block structure read from the key names of a single-file checkpoint.</summary>
/// <param name="BlockCount">Resolution levels (len(block_out_channels)): encoder down blocks = decoder up blocks.</param>
/// <param name="LayersPerBlock">Resnets per encoder down block; every decoder up block has one more.</param>
public sealed record SingleFileVaeLayout(int BlockCount, int LayersPerBlock);

// Reference: diffusers single_file_utils.py convert_ldm_vae_checkpoint
/// <summary>
/// Maps ldm AutoencoderKL keys (without "first_stage_model.") to diffusers AutoencoderKL keys.
/// ldm's Decoder builds its levels from the lowest resolution up but stores them by resolution
/// (<c>self.up.insert(0, ...)</c>), so decoder.up.i is diffusers up_blocks.(n-1-i), which is in execution order.
/// </summary>
internal sealed class VaeKeyMapping
{
    public const string Prefix = "first_stage_model.";

    private static readonly (string From, string To)[] ResnetRenames =
    [
        ("norm1.", "norm1."),
        ("conv1.", "conv1."),
        ("norm2.", "norm2."),
        ("conv2.", "conv2."),
        ("nin_shortcut.", "conv_shortcut."),
    ];

    // diffusers' Attention has Linear projections where ldm's AttnBlock has 1x1 convolutions holding the same data.
    private static readonly (string From, string To)[] AttentionRenames =
    [
        ("norm.", "group_norm."),
        ("q.", "to_q."),
        ("k.", "to_k."),
        ("v.", "to_v."),
        ("proj_out.", "to_out.0."),
    ];

    private static readonly (string From, string To)[] OutsideLevelRenames =
    [
        ("conv_in.", "conv_in."),
        ("conv_out.", "conv_out."),
        ("norm_out.", "conv_norm_out."),
    ];

    private static readonly (string From, string To)[] TopLevelRenames =
    [
        ("quant_conv.", "quant_conv."),
        ("post_quant_conv.", "post_quant_conv."),
    ];

    private VaeKeyMapping(SingleFileVaeLayout layout) => Layout = layout;

    public SingleFileVaeLayout Layout { get; }

    /// <summary>Infers the layout from the keys under <see cref="Prefix"/>; null when there are none.</summary>
    public static VaeKeyMapping? Create(IEnumerable<string> keys, string filePath)
    {
        var encoder = new LevelIndices("encoder.down.", "downsample.");
        var decoder = new LevelIndices("decoder.up.", "upsample.");
        bool any = false;
        foreach (string fullKey in keys)
        {
            ReadOnlySpan<char> key = fullKey;
            if (!KeyPath.TryTakePrefix(ref key, Prefix))
                continue;
            any = true;
            if (!encoder.TryObserve(key))
                decoder.TryObserve(key);
        }
        if (!any)
            return null;

        int levels = encoder.CountLevels(filePath);
        int decoderLevels = decoder.CountLevels(filePath);
        if (levels == 0 || decoderLevels != levels)
            throw KeyPath.Inconsistent(filePath,
                $"the VAE encoder has {levels} resolution levels and the decoder {decoderLevels}");
        int layersPerBlock = encoder.CountResnetsPerLevel(levels, filePath);
        int decoderResnets = decoder.CountResnetsPerLevel(levels, filePath);
        if (decoderResnets != layersPerBlock + 1)
            throw KeyPath.Inconsistent(filePath,
                $"the VAE decoder levels have {decoderResnets} resnets, expected one more than the encoder's {layersPerBlock}");
        // The encoder downsamples after every level but the last; the decoder upsamples in every level but level 0,
        // the full-resolution one.
        for (int i = 0; i < levels; i++)
        {
            encoder.RequireResampler(i, i < levels - 1, filePath);
            decoder.RequireResampler(i, i > 0, filePath);
        }
        return new VaeKeyMapping(new SingleFileVaeLayout(levels, layersPerBlock));
    }

    /// <summary>
    /// Maps a key without <see cref="Prefix"/>; null when it has no diffusers counterpart.
    /// <paramref name="squeezeTrailing1x1"/> is set for the attention projection weights stored as 1x1 kernels.
    /// </summary>
    public string? Map(ReadOnlySpan<char> key, out bool squeezeTrailing1x1)
    {
        squeezeTrailing1x1 = false;
        string? topLevel = KeyPath.RenameModule(key, "", TopLevelRenames);
        if (topLevel != null)
            return topLevel;
        if (KeyPath.TryTakePrefix(ref key, "encoder."))
            return MapSide(key, encoder: true, out squeezeTrailing1x1);
        if (KeyPath.TryTakePrefix(ref key, "decoder."))
            return MapSide(key, encoder: false, out squeezeTrailing1x1);
        return null;
    }

    private string? MapSide(ReadOnlySpan<char> rest, bool encoder, out bool squeezeTrailing1x1)
    {
        squeezeTrailing1x1 = false;
        string side = encoder ? "encoder." : "decoder.";
        string? outside = KeyPath.RenameModule(rest, side, OutsideLevelRenames);
        if (outside != null)
            return outside;
        if (KeyPath.TryTakePrefix(ref rest, "mid."))
            return MapMid(rest, side, out squeezeTrailing1x1);
        if (!KeyPath.TryTakePrefix(ref rest, encoder ? "down." : "up.")
            || !KeyPath.TryTakeIndex(ref rest, out int level)
            || level >= Layout.BlockCount)
            return null;
        string block = encoder
            ? $"encoder.down_blocks.{level}."
            : $"decoder.up_blocks.{Layout.BlockCount - 1 - level}.";
        if (KeyPath.TryTakePrefix(ref rest, "block.") && KeyPath.TryTakeIndex(ref rest, out int resnet))
            return KeyPath.RenameModule(rest, $"{block}resnets.{resnet}.", ResnetRenames);
        if (KeyPath.TryTakePrefix(ref rest, encoder ? "downsample." : "upsample."))
            return $"{block}{(encoder ? "downsamplers" : "upsamplers")}.0.{rest}";
        return null;
    }

    /// <summary>ldm counts the mid block's modules from 1 (block_1, attn_1, block_2); diffusers from 0.</summary>
    private static string? MapMid(ReadOnlySpan<char> rest, string side, out bool squeezeTrailing1x1)
    {
        squeezeTrailing1x1 = false;
        if (KeyPath.TryTakePrefix(ref rest, "block_") && KeyPath.TryTakeIndex(ref rest, out int resnet) && resnet >= 1)
            return KeyPath.RenameModule(rest, $"{side}mid_block.resnets.{resnet - 1}.", ResnetRenames);
        if (KeyPath.TryTakePrefix(ref rest, "attn_") && KeyPath.TryTakeIndex(ref rest, out int attention) && attention >= 1)
        {
            string? mapped = KeyPath.RenameModule(rest, $"{side}mid_block.attentions.{attention - 1}.", AttentionRenames);
            squeezeTrailing1x1 = mapped != null
                && !rest.StartsWith("norm.", StringComparison.Ordinal)
                && rest.EndsWith(".weight", StringComparison.Ordinal);
            return mapped;
        }
        return null;
    }

    /// <summary>The level, resnet and resampler indices of one side (encoder or decoder), for layout checks.</summary>
    private sealed class LevelIndices(string levelsPrefix, string resamplerPrefix)
    {
        private readonly HashSet<int> _levels = [];
        private readonly Dictionary<int, HashSet<int>> _resnets = [];
        private readonly HashSet<int> _resamplers = [];

        private string Name => Prefix + levelsPrefix.TrimEnd('.');

        public bool TryObserve(ReadOnlySpan<char> key)
        {
            if (!KeyPath.TryTakePrefix(ref key, levelsPrefix) || !KeyPath.TryTakeIndex(ref key, out int level))
                return false;
            _levels.Add(level);
            if (KeyPath.TryTakePrefix(ref key, "block.") && KeyPath.TryTakeIndex(ref key, out int resnet))
            {
                if (!_resnets.TryGetValue(level, out var resnets))
                    _resnets[level] = resnets = [];
                resnets.Add(resnet);
            }
            else if (key.StartsWith(resamplerPrefix, StringComparison.Ordinal))
            {
                _resamplers.Add(level);
            }
            return true;
        }

        public int CountLevels(string filePath) => KeyPath.CountContiguous(_levels, Name, filePath);

        /// <summary>Resnets per level, which every level must share.</summary>
        public int CountResnetsPerLevel(int levels, string filePath)
        {
            int count = 0;
            for (int i = 0; i < levels; i++)
            {
                int here = _resnets.TryGetValue(i, out var resnets)
                    ? KeyPath.CountContiguous(resnets, $"{Name}.{i}.block", filePath)
                    : 0;
                if (here == 0)
                    throw KeyPath.Inconsistent(filePath, $"{Name}.{i} has no resnets");
                if (i > 0 && here != count)
                    throw KeyPath.Inconsistent(filePath, $"{Name}.{i} has {here} resnets but {Name}.0 has {count}");
                count = here;
            }
            return count;
        }

        public void RequireResampler(int level, bool expected, string filePath)
        {
            if (_resamplers.Contains(level) != expected)
            {
                throw KeyPath.Inconsistent(filePath, expected
                    ? $"{Name}.{level} has no {resamplerPrefix.TrimEnd('.')}"
                    : $"{Name}.{level} has a {resamplerPrefix.TrimEnd('.')} where none belongs");
            }
        }
    }
}
