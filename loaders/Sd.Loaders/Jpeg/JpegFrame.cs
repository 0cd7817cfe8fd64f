namespace Sd.Loaders.Jpeg;

/// <summary>One color component of a frame (SOF): its sampling factors, quantization table and coefficients.</summary>
internal sealed class JpegComponent
{
    public required int Id { get; init; }

    /// <summary>Horizontal and vertical sampling factors, 1 to 4.</summary>
    public required int H { get; init; }
    public required int V { get; init; }

    /// <summary>Quantization table slot (0-3); the table itself is read when the first scan starts.</summary>
    public required int QuantSlot { get; init; }

    /// <summary>The quantization table in natural (row-major) order, bound at the component's first scan.</summary>
    public ushort[]? Quant { get; set; }

    /// <summary>Samples per row and rows of this component: the picture's size scaled by H/Hmax and V/Vmax, rounded up.</summary>
    public int SampledWidth { get; set; }
    public int SampledHeight { get; set; }

    /// <summary>Blocks per row and rows of blocks holding samples (what a non-interleaved scan codes).</summary>
    public int BlocksWide { get; set; }
    public int BlocksHigh { get; set; }

    /// <summary>Blocks per row and block rows stored: whole MCUs, which interleaved scans code in full.</summary>
    public int StoredBlocksWide { get; set; }
    public int StoredBlocksHigh { get; set; }

    /// <summary>64 coefficients per block, in natural order, blocks row-major over the stored grid.</summary>
    public short[] Coefficients { get; set; } = [];

    /// <summary>
    /// For each of the 64 coefficients (zigzag order), the lowest bit position a progressive scan has coded so far:
    /// -1 before any scan, 0 when complete. Scans must refine in order, as the standard requires.
    /// </summary>
    public int[] CodedFromBit { get; } = CreateUncoded();

    public Span<short> Block(int blockRow, int blockColumn) =>
        Coefficients.AsSpan((blockRow * StoredBlocksWide + blockColumn) * 64, 64);

    private static int[] CreateUncoded()
    {
        var bits = new int[64];
        Array.Fill(bits, -1);
        return bits;
    }
}

/// <summary>The frame header (SOF0/1/2): picture size and components, with the MCU grid derived from them.</summary>
internal sealed class JpegFrame
{
    public required int Width { get; init; }
    public required int Height { get; init; }
    public required bool Progressive { get; init; }
    public required JpegComponent[] Components { get; init; }

    /// <summary>The largest sampling factors, which the picture's full resolution corresponds to.</summary>
    public int MaxH => MaxOf(horizontal: true);
    public int MaxV => MaxOf(horizontal: false);

    /// <summary>MCUs per row and MCU rows of an interleaved scan.</summary>
    public int McusWide { get; private set; }
    public int McusHigh { get; private set; }

    /// <summary>Derives each component's sizes and allocates its coefficients (zero, as progressive scans expect).</summary>
    public void Layout()
    {
        McusWide = CeilDiv(Width, 8 * MaxH);
        McusHigh = CeilDiv(Height, 8 * MaxV);
        foreach (JpegComponent c in Components)
        {
            c.SampledWidth = CeilDiv(Width * c.H, MaxH);
            c.SampledHeight = CeilDiv(Height * c.V, MaxV);
            c.BlocksWide = CeilDiv(c.SampledWidth, 8);
            c.BlocksHigh = CeilDiv(c.SampledHeight, 8);
            c.StoredBlocksWide = McusWide * c.H;
            c.StoredBlocksHigh = McusHigh * c.V;
            c.Coefficients = new short[(long)c.StoredBlocksWide * c.StoredBlocksHigh * 64];
        }
    }

    private int MaxOf(bool horizontal)
    {
        int max = 1;
        foreach (JpegComponent c in Components)
            max = Math.Max(max, horizontal ? c.H : c.V);
        return max;
    }

    private static int CeilDiv(int a, int b) => (int)(((long)a + b - 1) / b);
}
