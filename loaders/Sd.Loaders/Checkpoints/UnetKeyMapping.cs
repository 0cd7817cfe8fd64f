namespace Sd.Loaders.Checkpoints;

/// <summary>The UNet block structure read from the key names of a single-file checkpoint.</summary>
/// <param name="DownBlockCount">Number of diffusers down blocks, which equals the number of up blocks.</param>
/// <param name="LayersPerBlock">Resnets per down block; every up block has one more.</param>
/// <param name="DownBlockHasAttention">Per down block: whether it is a cross-attention block.</param>
/// <param name="UpBlockHasAttention">Per up block, in diffusers order: whether it is a cross-attention block.</param>
/// <param name="MidBlockHasAttention">Whether the mid block has attention between its resnets.</param>
public sealed record SingleFileUnetLayout(
    int DownBlockCount,
    int LayersPerBlock,
    IReadOnlyList<bool> DownBlockHasAttention,
    IReadOnlyList<bool> UpBlockHasAttention,
    bool MidBlockHasAttention);

// Reference: diffusers single_file_utils.py convert_ldm_unet_checkpoint
/// <summary>
/// Maps ldm UNet keys (without their prefix, "model.diffusion_model." in a checkpoint) to diffusers
/// UNet2DConditionModel keys. An original-format ControlNet (cldm's ControlNet) has the same input_blocks,
/// middle_block and time_embed under its own prefix, and no output_blocks: the encoder-only form.
/// ldm numbers its blocks as flat lists: input_blocks.0 is conv_in, then every down block contributes one entry
/// per resnet plus one for its downsampler (except the last block, which has none); output_blocks has
/// layers_per_block + 1 entries per up block. Inside an entry, layer 0 is the resnet (or the downsampler), layer 1
/// the attention, and the upsampler comes last.
/// </summary>
internal sealed class UnetKeyMapping
{
    public const string Prefix = "model.diffusion_model.";

    // ldm's ResBlock is built from Sequentials; the numbers are the positions of the layers that have weights.
    internal static readonly (string From, string To)[] ResnetRenames =
    [
        ("in_layers.0.", "norm1."),
        ("in_layers.2.", "conv1."),
        ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."),
        ("out_layers.3.", "conv2."),
        ("skip_connection.", "conv_shortcut."),
    ];

    internal static readonly (string From, string To)[] OutsideBlockRenames =
    [
        ("time_embed.0.", "time_embedding.linear_1."),
        ("time_embed.2.", "time_embedding.linear_2."),
        ("input_blocks.0.0.", "conv_in."),
        ("out.0.", "conv_norm_out."),
        ("out.2.", "conv_out."),
    ];

    // Flat ldm entries per diffusers block: the resnets plus the down/upsampler slot (layers_per_block + 1).
    private readonly int _stride;
    private readonly int _middleCount;
    private readonly bool _encoderOnly;

    private UnetKeyMapping(SingleFileUnetLayout layout, int middleCount, bool encoderOnly)
    {
        Layout = layout;
        _stride = layout.LayersPerBlock + 1;
        _middleCount = middleCount;
        _encoderOnly = encoderOnly;
    }

    public SingleFileUnetLayout Layout { get; }

    /// <summary>Infers the layout from the keys under <see cref="Prefix"/>; null when there are none.</summary>
    public static UnetKeyMapping? Create(IEnumerable<string> keys, string filePath) => Create(keys, filePath, Prefix, encoderOnly: false);

    /// <summary>
    /// Infers the layout from the keys under <paramref name="prefix"/>; null when there are none. With
    /// <paramref name="encoderOnly"/> there are no output_blocks (a ControlNet): the up blocks mirror the down blocks,
    /// as diffusers' ControlNet config does, and output_blocks keys map to nothing.
    /// </summary>
    public static UnetKeyMapping? Create(IEnumerable<string> keys, string filePath, string prefix, bool encoderOnly)
    {
        var input = new HashSet<int>();
        var inputAttention = new HashSet<int>();
        var downsamplers = new HashSet<int>();
        var output = new HashSet<int>();
        var outputAttention = new HashSet<int>();
        var upsamplers = new HashSet<int>();
        var middle = new HashSet<int>();
        bool any = false;
        foreach (string fullKey in keys)
        {
            ReadOnlySpan<char> key = fullKey;
            if (!KeyPath.TryTakePrefix(ref key, prefix))
                continue;
            any = true;
            if (TryTakeBlockLayer(ref key, "input_blocks.", out int block, out int layer))
            {
                input.Add(block);
                if (layer == 0 && key.StartsWith("op.", StringComparison.Ordinal))
                    downsamplers.Add(block);
                else if (layer == 1)
                    inputAttention.Add(block);
            }
            else if (TryTakeBlockLayer(ref key, "output_blocks.", out block, out layer))
            {
                output.Add(block);
                if (layer > 0 && key.StartsWith("conv.", StringComparison.Ordinal))
                    upsamplers.Add(block);
                else if (layer == 1)
                    outputAttention.Add(block);
            }
            else if (KeyPath.TryTakePrefix(ref key, "middle_block.") && KeyPath.TryTakeIndex(ref key, out int midLayer))
            {
                middle.Add(midLayer);
            }
        }
        if (!any)
            return null;

        int inputCount = KeyPath.CountContiguous(input, prefix + "input_blocks", filePath);
        int stride = DownBlockStride(downsamplers, inputCount, prefix, filePath);
        int downCount = inputCount / stride;
        for (int k = 1; k < inputCount; k++)
        {
            if (downsamplers.Contains(k) != (k % stride == 0))
                throw KeyPath.Inconsistent(filePath, downsamplers.Contains(k)
                    ? $"{prefix}input_blocks.{k} is a downsampler, but blocks of {stride - 1} resnets put them at multiples of {stride}"
                    : $"{prefix}input_blocks.{k} should be a downsampler (an 'op' convolution)");
        }

        if (!encoderOnly)
            CheckOutputBlocks(output, upsamplers, downCount, stride, prefix, filePath);

        // The mid block alternates resnet, attention, resnet, ..., so it has an odd number of layers.
        int middleCount = KeyPath.CountContiguous(middle, prefix + "middle_block", filePath);
        if (middleCount % 2 == 0)
            throw KeyPath.Inconsistent(filePath, $"{prefix}middle_block has {middleCount} layers, expected resnet (attention resnet)*");

        bool[] downAttention = AttentionPerBlock(inputAttention, downCount, stride, firstEntry: 1, stride - 1, "input_blocks", prefix, filePath);
        bool[] upAttention = encoderOnly
            ? Mirrored(downAttention)
            : AttentionPerBlock(outputAttention, downCount, stride, firstEntry: 0, stride, "output_blocks", prefix, filePath);
        var layout = new SingleFileUnetLayout(downCount, stride - 1, downAttention, upAttention, middleCount > 1);
        return new UnetKeyMapping(layout, middleCount, encoderOnly);
    }

    /// <summary>output_blocks has layers_per_block + 1 entries per block, and every up block but the last ends with an upsampler.</summary>
    private static void CheckOutputBlocks(HashSet<int> output, HashSet<int> upsamplers, int downCount, int stride, string prefix, string filePath)
    {
        int outputCount = KeyPath.CountContiguous(output, prefix + "output_blocks", filePath);
        if (outputCount != downCount * stride)
            throw KeyPath.Inconsistent(filePath,
                $"{prefix}output_blocks has {outputCount} entries, but {downCount} down blocks of {stride - 1} resnets need {downCount * stride}");
        for (int k = 0; k < outputCount; k++)
        {
            bool upsamplerSlot = k % stride == stride - 1 && k / stride < downCount - 1;
            if (upsamplers.Contains(k) != upsamplerSlot)
                throw KeyPath.Inconsistent(filePath, upsamplers.Contains(k)
                    ? $"{prefix}output_blocks.{k} has an upsampler where none belongs"
                    : $"{prefix}output_blocks.{k} should end with an upsampler ('conv')");
        }
    }

    private static bool[] Mirrored(bool[] down)
    {
        var up = (bool[])down.Clone();
        Array.Reverse(up);
        return up;
    }

    /// <summary>Maps a key without its prefix; null when it has no diffusers counterpart.</summary>
    public string? Map(ReadOnlySpan<char> key)
    {
        string? outside = KeyPath.RenameModule(key, "", OutsideBlockRenames);
        if (outside != null)
            return outside;
        if (TryTakeBlockLayer(ref key, "input_blocks.", out int block, out int layer))
            return MapInputEntry(block, layer, key);
        if (TryTakeBlockLayer(ref key, "output_blocks.", out block, out layer))
            return _encoderOnly ? null : MapOutputEntry(block, layer, key);
        if (KeyPath.TryTakePrefix(ref key, "middle_block.") && KeyPath.TryTakeIndex(ref key, out layer) && layer < _middleCount)
        {
            return layer % 2 == 0
                ? KeyPath.RenameModule(key, $"mid_block.resnets.{layer / 2}.", ResnetRenames)
                : $"mid_block.attentions.{layer / 2}.{key}";
        }
        return null;
    }

    private string? MapInputEntry(int entry, int layer, ReadOnlySpan<char> rest)
    {
        // Entry 0 (conv_in) is handled with the modules outside the blocks.
        if (entry == 0 || entry >= Layout.DownBlockCount * _stride)
            return null;
        int downBlock = (entry - 1) / _stride;
        int slot = (entry - 1) % _stride;
        if (slot == Layout.LayersPerBlock)
        {
            return layer == 0 && KeyPath.TryTakePrefix(ref rest, "op.")
                ? $"down_blocks.{downBlock}.downsamplers.0.conv.{rest}"
                : null;
        }
        if (layer == 0)
            return KeyPath.RenameModule(rest, $"down_blocks.{downBlock}.resnets.{slot}.", ResnetRenames);
        return layer == 1 && Layout.DownBlockHasAttention[downBlock]
            ? $"down_blocks.{downBlock}.attentions.{slot}.{rest}"
            : null;
    }

    private string? MapOutputEntry(int entry, int layer, ReadOnlySpan<char> rest)
    {
        if (entry >= Layout.DownBlockCount * _stride)
            return null;
        int upBlock = entry / _stride;
        int slot = entry % _stride;
        if (layer == 0)
            return KeyPath.RenameModule(rest, $"up_blocks.{upBlock}.resnets.{slot}.", ResnetRenames);
        // The upsampler follows the block's last resnet and, in a cross-attention block, its attention.
        bool hasAttention = Layout.UpBlockHasAttention[upBlock];
        if (layer == (hasAttention ? 2 : 1) && slot == _stride - 1 && upBlock < Layout.DownBlockCount - 1
            && rest.StartsWith("conv.", StringComparison.Ordinal))
        {
            return $"up_blocks.{upBlock}.upsamplers.0.{rest}";
        }
        return layer == 1 && hasAttention ? $"up_blocks.{upBlock}.attentions.{slot}.{rest}" : null;
    }

    /// <summary>
    /// layers_per_block + 1, from where the first downsampler sits: input_blocks.0 is conv_in, so the first
    /// downsampler is entry layers_per_block + 1. Without any downsampler there is a single down block.
    /// </summary>
    private static int DownBlockStride(HashSet<int> downsamplers, int inputCount, string prefix, string filePath)
    {
        if (inputCount < 2)
            throw KeyPath.Inconsistent(filePath, $"{prefix}input_blocks has {inputCount} entries, too few for a UNet");
        int first = inputCount;
        foreach (int k in downsamplers)
            first = Math.Min(first, k);
        if (first < 2)
            throw KeyPath.Inconsistent(filePath, $"{prefix}input_blocks.{first} is a downsampler before any resnet");
        if (inputCount % first != 0)
            throw KeyPath.Inconsistent(filePath,
                $"{prefix}input_blocks has {inputCount} entries, which do not split into down blocks of {first - 1} resnets and a downsampler");
        return first;
    }

    /// <summary>
    /// Whether each block has attention. A diffusers block type either pairs every resnet with an attention or
    /// none, so a block where only some have one cannot be built.
    /// </summary>
    private static bool[] AttentionPerBlock(
        HashSet<int> withAttention, int blockCount, int stride, int firstEntry, int resnets, string blocksName, string prefix, string filePath)
    {
        var result = new bool[blockCount];
        for (int b = 0; b < blockCount; b++)
        {
            int first = firstEntry + b * stride;
            result[b] = withAttention.Contains(first);
            for (int j = 1; j < resnets; j++)
            {
                if (withAttention.Contains(first + j) != result[b])
                    throw KeyPath.Inconsistent(filePath,
                        $"{prefix}{blocksName}.{first} and {prefix}{blocksName}.{first + j} are in the same block, but only one of them has attention");
            }
        }
        return result;
    }

    /// <summary>Takes "input_blocks.K.L." (or another flat list name) and its two indices.</summary>
    private static bool TryTakeBlockLayer(ref ReadOnlySpan<char> key, string blocks, out int block, out int layer)
    {
        ReadOnlySpan<char> rest = key;
        layer = -1;
        if (!KeyPath.TryTakePrefix(ref rest, blocks)
            || !KeyPath.TryTakeIndex(ref rest, out block)
            || !KeyPath.TryTakeIndex(ref rest, out layer))
        {
            block = -1;
            return false;
        }
        key = rest;
        return true;
    }
}
