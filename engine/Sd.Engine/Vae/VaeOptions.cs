namespace Sd.Engine.Vae;

/// <summary>When the VAE runs tiled (diffusers' enable_vae_tiling).</summary>
public enum VaeTiling
{
    /// <summary>Tiled when the image is larger than one tile and an untiled run would plan more than the budget.</summary>
    Auto,
    /// <summary>Tiled whenever the image is larger than one tile, as diffusers with tiling enabled.</summary>
    Always,
    /// <summary>Never tiled.</summary>
    Never,
}

public sealed record VaeOptions
{
    public VaeTiling Tiling { get; init; } = VaeTiling.Auto;

    /// <summary>Activation memory an untiled run may plan before Auto switches to tiles (default 3 GiB).</summary>
    public long MemoryBudgetBytes { get; init; } = 3L << 30;
}
