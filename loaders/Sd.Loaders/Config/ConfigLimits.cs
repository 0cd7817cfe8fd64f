namespace Sd.Loaders.Config;

/// <summary>
/// The checks every component config passes, read from config.json or inferred from weight shapes. The layout and
/// the module tree are built from a config's repeat counts before any weight is compared, so a lying count would
/// otherwise allocate without bound (or, at int.MaxValue, never finish) instead of failing. Every Stable Diffusion
/// model is far inside the bounds: UNets and VAEs have 3-4 blocks, 1-3 layers per block and at most 10 transformer
/// layers per block (SDXL); CLIP text encoders have 12-32 layers.
/// </summary>
public static class ConfigLimits
{
    /// <summary>The most down (and up) blocks of a UNet or VAE.</summary>
    public const int MaxBlocks = 8;

    /// <summary>The most layers a repeat count (per block, or a text encoder's) may ask for.</summary>
    public const int MaxLayers = 128;

    /// <summary>Throws unless <paramref name="value"/> is in [1, <paramref name="max"/>].</summary>
    public static void CheckCount(string source, string key, int value, int max)
    {
        if (value < 1 || value > max)
        {
            throw new InvalidFileException(source, $"'{key}' must be in [1, {max}], found {value}");
        }
    }

    /// <summary>Throws unless every value is positive.</summary>
    public static void CheckPositive(string source, string key, ReadOnlySpan<int> values)
    {
        foreach (int value in values)
        {
            if (value <= 0)
            {
                throw new InvalidFileException(source, $"'{key}' must be positive, found {value}");
            }
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
