using Sd.Loaders.Config;
using Sd.Loaders.Layout;

namespace Sd.Engine.UNet;

/// <summary>How a UNet is built.</summary>
public sealed record UNetOptions
{
    /// <summary>
    /// Extra memory allowed for Winograd-transformed 3x3 weights (36 values per 9: 3x the original's size on top).
    /// Resolution levels are switched to Winograd from the finest (where it saves the most work per byte: 4096
    /// pixels per weight at 64x64 latents, 64 at 8x8) while their cost fits; the rest stay on implicit GEMM.
    /// Default 1 GiB: SD 1.5's two finest levels (0.95 GB), keeping the fp32 UNet near 5 GB.
    /// </summary>
    public long WinogradBudgetBytes { get; init; } = 1L << 30;

    /// <summary>Which resolution levels (0 = finest) use Winograd under the budget.</summary>
    public bool[] WinogradLevels(UNetConfig config)
    {
        int levels = config.BlockOutChannels.Length;
        var extra = new long[levels];
        foreach (ParameterSpec p in DiffusersLayout.UNet(config))
        {
            if (p.Shape.Length == 4 && p.Shape[2] == 3 && p.Shape[3] == 3 && LevelOf(p.Name, levels) is int level)
            {
                extra[level] += p.ElementCount * 3 * sizeof(float);
            }
        }
        var chosen = new bool[levels];
        long used = 0;
        for (int level = 0; level < levels && used + extra[level] <= WinogradBudgetBytes; level++)
        {
            used += extra[level];
            chosen[level] = true;
        }
        return chosen;
    }

    /// <summary>The resolution level a stride-1 3x3 convolution runs at; null for downsamplers and conv_in/out.</summary>
    private static int? LevelOf(string name, int levels)
    {
        if (name.Contains(".downsamplers.", StringComparison.Ordinal))
        {
            return null;
        }
        if (name.StartsWith("mid_block.", StringComparison.Ordinal))
        {
            return levels - 1;
        }
        if (name.StartsWith("down_blocks.", StringComparison.Ordinal))
        {
            return BlockIndex(name, "down_blocks.".Length);
        }
        if (name.StartsWith("up_blocks.", StringComparison.Ordinal))
        {
            int level = levels - 1 - BlockIndex(name, "up_blocks.".Length);
            // An up block's up-sampler runs at the next finer level.
            return name.Contains(".upsamplers.", StringComparison.Ordinal) ? level - 1 : level;
        }
        return null;
    }

    private static int BlockIndex(string name, int start) =>
        int.Parse(name.AsSpan(start, name.IndexOf('.', start) - start), System.Globalization.CultureInfo.InvariantCulture);
}
