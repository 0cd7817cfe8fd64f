using Sd.Kernels.Threading;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// How the memory-bound kernels split work over <see cref="WorkerPool.Shared"/>: below 64K elements a pool call costs
/// more than it saves, so they run on the caller; above, 8 contiguous tiles per thread absorb uneven thread speed.
/// </summary>
internal static class Tiling
{
    public const long SerialElements = 1 << 16;
    public const int TilesPerThread = 8;

    /// <summary>
    /// Tiles for <paramref name="units"/> independent units (rows, blocks) holding <paramref name="elements"/> floats.
    /// </summary>
    public static int Count(long elements, long units)
    {
        if (elements < SerialElements || units <= 1)
        {
            return 1;
        }
        return (int)Math.Min(units, (long)WorkerPool.Shared.ThreadCount * TilesPerThread);
    }

    /// <summary>First unit of <paramref name="tile"/> when <paramref name="units"/> are split into <paramref name="tiles"/>.</summary>
    public static nint Start(int tile, int tiles, nint units) => (nint)((long)units * tile / tiles);
}
