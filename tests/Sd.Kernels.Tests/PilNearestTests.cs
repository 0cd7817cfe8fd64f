using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>
/// Pillow's nearest-neighbour resize: the pixels Pillow 9.4 picks (its float64 offset accumulated pixel by pixel, read
/// off Image.resize of a ramp), which (int)((x + 0.5) x in / out) misses at some sizes; whole pixels, rows and columns.
/// </summary>
public sealed class PilNearestTests
{
    /// <summary>An L picture of one row 0, 1, ..., width - 1 resized across: each output byte is the pixel it copied.</summary>
    private static byte[] Picks(int width, int outWidth)
    {
        var ramp = new byte[width];
        for (int i = 0; i < width; i++)
        {
            ramp[i] = (byte)i;
        }
        var y = new byte[outWidth];
        PilNearest.Resize(ramp, 1, width, 1, y, 1, outWidth);
        return y;
    }

    [Fact]
    public void The_picks_are_pillows()
    {
        // Pillow's picks; (int)((x + 0.5) x in / out) gives 0, 0, 0, 1, 1, 1, 1 for 2 to 7 pixels and 0, 1, 1, 2, 3, 3
        // for 4 to 6. Halving takes the second of each pair.
        Assert.Equal([0, 0, 0, 0, 1, 1, 1], Picks(2, 7));
        Assert.Equal([0, 1, 1, 2, 2, 3], Picks(4, 6));
        Assert.Equal([0, 0, 1, 1, 2, 2], Picks(3, 6));
        Assert.Equal([1, 3, 5], Picks(6, 3));
    }

    [Fact]
    public void Pixels_move_whole_down_and_across()
    {
        // 2x2 RGB pixels, each a distinct colour, doubled: every output pixel is one input pixel's three bytes.
        byte[] x = [10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42];
        var y = new byte[4 * 4 * 3];
        PilNearest.Resize(x, 2, 2, 3, y, 4, 4);
        for (int row = 0; row < 4; row++)
        {
            for (int col = 0; col < 4; col++)
            {
                int from = (row / 2 * 2 + col / 2) * 3;
                Assert.Equal(x.AsSpan(from, 3).ToArray(), y.AsSpan((row * 4 + col) * 3, 3).ToArray());
            }
        }
        Assert.Throws<ArgumentException>(() => PilNearest.Resize(x, 2, 2, 3, new byte[5], 4, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => PilNearest.Resize(x, 2, 2, 3, y, 0, 4));
    }
}
