namespace Sd.Loaders.Config;

/// <summary>
/// The checks every component config passes, read from config.json or inferred from weight shapes. The layout and
/// the module tree are built from a config's repeat counts before any weight is compared, so a lying count would
/// otherwise allocate without bound (or, at int.MaxValue, never finish) instead of failing. Every Stable Diffusion
/// model is far inside the bounds: UNets and VAEs have 3-4 blocks, 1-3 layers per block and at most 10 transformer
/// layers per block (SDXL); CLIP text encoders have 12-32 layers. Widths are bounded too, so that sums and products
/// of them (a time embedding's 4x, an up block's concatenated channels) stay far from int overflow.
/// </summary>
public static class ConfigLimits
{
    /// <summary>The most down (and up) blocks of a UNet or VAE.</summary>
    public const int MaxBlocks = 8;

    /// <summary>The most layers a repeat count (per block, or a text encoder's) may ask for.</summary>
    public const int MaxLayers = 128;

    /// <summary>
    /// The widest channel or feature count (block channels, latent channels, hidden and cross-attention widths): SD
    /// models use at most 5120 (OpenCLIP bigG's MLP).
    /// </summary>
    public const int MaxWidth = 1 << 16;

    /// <summary>The largest vocabulary a text encoder may declare (CLIP's has 49408 tokens).</summary>
    public const int MaxVocabulary = 1 << 20;

    /// <summary>The largest convolution kernel side a config may ask for (SD uses 1 and 3).</summary>
    public const int MaxKernel = 15;

    /// <summary>Throws unless <paramref name="value"/> is in [1, <paramref name="max"/>].</summary>
    public static void CheckCount(string source, string key, int value, int max)
    {
        if (value < 1 || value > max)
        {
            throw new InvalidFileException(source, $"'{key}' must be in [1, {max}], found {value}");
        }
    }

    /// <summary>Throws unless every value is a width in [1, <see cref="MaxWidth"/>].</summary>
    public static void CheckWidths(string source, string key, ReadOnlySpan<int> values)
    {
        foreach (int value in values)
        {
            CheckCount(source, key, value, MaxWidth);
        }
    }

    /// <summary>Throws unless <paramref name="groups"/> divides every channel count (a GroupNorm over each).</summary>
    public static void CheckGroups(string source, int groups, ReadOnlySpan<int> channels)
    {
        CheckCount(source, "norm_num_groups", groups, MaxWidth);
        for (int i = 0; i < channels.Length; i++)
        {
            if (channels[i] % groups != 0)
            {
                throw new InvalidFileException(source, $"norm_num_groups {groups} does not divide block {i}'s {channels[i]} channels (block_out_channels)");
            }
        }
    }

    /// <summary>Throws unless a convolution kernel side is odd (the padding keeps the size) and at most <see cref="MaxKernel"/>.</summary>
    public static void CheckKernel(string source, string key, int kernel)
    {
        if (kernel < 1 || kernel > MaxKernel || kernel % 2 == 0)
        {
            throw new InvalidFileException(source, $"'{key}' must be an odd kernel size in [1, {MaxKernel}], found {kernel}");
        }
    }

    /// <summary>Throws unless a normalization epsilon is finite and not negative (it is added to a variance).</summary>
    public static void CheckEpsilon(string source, string key, double eps)
    {
        if (!(eps >= 0 && double.IsFinite(eps)))
        {
            throw new InvalidFileException(source, $"'{key}' must be a finite epsilon >= 0, found {eps}");
        }
    }

    /// <summary>Throws unless a per-block list has one value per block.</summary>
    public static void CheckPerBlock(string source, string key, int length, int blocks)
    {
        if (length != blocks)
        {
            throw new InvalidFileException(source, $"'{key}' lists {length} values but the model has {blocks} blocks");
        }
    }
}
