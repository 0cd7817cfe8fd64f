using Sd.Loaders.Config;
using Sd.Loaders.Layout;

namespace Sd.Engine.UNet;

/// <summary>How a UNet is built.</summary>
public sealed record UNetOptions
{
    /// <summary>
    /// Extra memory allowed for stored Winograd-transformed 3x3 weights (36 float32 values per 9 weights, 16 bytes per
    /// weight: 12 on top of a float32 original, 14 on top of a 16-bit one). Resolution levels get stored weights from
    /// the finest (where they save the most work per byte: 4096 pixels per weight at 64x64 latents, 64 at 8x8) while
    /// their cost fits; the rest transform their weights per call (streamed Winograd, about 20% slower per layer than
    /// stored) or run implicit GEMM on tiny images. Null (the default) is <see cref="DefaultBudgetBytes"/>.
    /// </summary>
    public long? WinogradBudgetBytes { get; init; }

    /// <summary>
    /// The default budget: 256 MiB, SD 1.5's finest level (0.2 GB of float32 U, whatever the weights' format). For
    /// float32 weights the UNet then peaks at 3.9 GB instead of 4.6 GB with both finest levels stored, at the same
    /// speed (3.61/4.00 s vs 3.61/3.98 s per CFG step). For F16 weights it costs 0.22 GB over keeping every layer
    /// 16-bit and streamed (2.33 vs 2.11 GB) and saves 2% of the UNet's time (64x64 latents, alternating runs: 3.31-3.35
    /// vs 3.38-3.43 s per CFG step).
    /// </summary>
    public const long DefaultBudgetBytes = 256L << 20;

    /// <summary>Which resolution levels (0 = finest) store Winograd weights under the budget.</summary>
    public bool[] WinogradLevels(UNetConfig config, bool sixteenBitWeights = false)
    {
        long budget = WinogradBudgetBytes ?? DefaultBudgetBytes;
        int extraBytesPerWeight = Sd.Kernels.Convolution.WinogradWeights.Positions * sizeof(float) / 9 - (sixteenBitWeights ? sizeof(ushort) : sizeof(float));
        int levels = config.BlockOutChannels.Length;
        var extra = new long[levels];
        foreach (ParameterSpec p in DiffusersLayout.UNet(config))
        {
            if (p.Shape.Length == 4 && p.Shape[2] == 3 && p.Shape[3] == 3 && LevelOf(p.Name, levels) is int level)
            {
                extra[level] += p.ElementCount * extraBytesPerWeight;
            }
        }
        var chosen = new bool[levels];
        long used = 0;
        for (int level = 0; level < levels && used + extra[level] <= budget; level++)
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
