namespace Sd.Loaders.Jpeg;

/// <summary>A scan header (SOS): its components with their Huffman tables, and the spectral band and bit range coded.</summary>
internal sealed class JpegScan
{
    public required JpegComponent[] Components { get; init; }
    public required HuffmanTable?[] Dc { get; init; }
    public required HuffmanTable?[] Ac { get; init; }

    /// <summary>First and last coefficient (zigzag order) of the band, and the successive approximation bits: Ah is
    /// the bit position coded before (0 in a first scan), Al the one this scan codes down to.</summary>
    public required int Ss { get; init; }
    public required int Se { get; init; }
    public required int Ah { get; init; }
    public required int Al { get; init; }
}

/// <summary>
/// Decodes a scan's entropy-coded data into the components' coefficients: sequential (baseline and extended) scans
/// and the four kinds of progressive scan (DC or AC band, first or refining), interleaved or not, with restart
/// intervals. Reference: ITU T.81 annexes F and G; libjpeg's jdhuff.c and jdphuff.c for what damaged data does.
/// </summary>
internal static class ScanDecoder
{
    /// <summary>Zigzag position to natural (row-major) position; 16 extra entries map a run past the end to the
    /// last coefficient, as libjpeg's table does, so damaged data cannot index outside the block.</summary>
    private static ReadOnlySpan<byte> NaturalOrder =>
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
        63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    ];

    /// <summary>Zigzag position to natural position (the 64 real entries).</summary>
    public static int Natural(int zigzag) => NaturalOrder[zigzag];

    /// <summary>Decodes the scan whose data starts at <paramref name="position"/>; returns where reading stopped
    /// (at or before the marker that follows).</summary>
    /// <exception cref="FormatException">Damaged data: a code no table has, or a restart marker out of place.</exception>
    /// <exception cref="EndOfStreamException">The file ends where a restart marker is due.</exception>
    public static int Decode(ReadOnlySpan<byte> data, int position, JpegFrame frame, JpegScan scan, int restartInterval)
    {
        var bits = new EntropyReader(data, position);
        Span<int> predictions = stackalloc int[4];
        int endOfBandRun = 0;
        bool single = scan.Components.Length == 1;
        int mcusWide = single ? scan.Components[0].BlocksWide : frame.McusWide;
        int mcusHigh = single ? scan.Components[0].BlocksHigh : frame.McusHigh;
        long mcus = (long)mcusWide * mcusHigh;
        int restarts = 0;
        for (long mcu = 0; mcu < mcus; mcu++)
        {
            if (restartInterval > 0 && mcu > 0 && mcu % restartInterval == 0)
            {
                bits.Reset();
                int next = JpegMarkers.Next(data, bits.Position, out int marker);
                if (marker != 0xD0 + (restarts & 7))
                    throw new FormatException($"after {mcu} MCUs the marker RST{restarts & 7} was expected, found {JpegMarkers.Name(marker)}");
                restarts++;
                bits = new EntropyReader(data, next);
                predictions.Clear();
                endOfBandRun = 0;
            }
            int row = (int)(mcu / mcusWide), column = (int)(mcu % mcusWide);
            for (int k = 0; k < scan.Components.Length; k++)
            {
                JpegComponent c = scan.Components[k];
                int h = single ? 1 : c.H, v = single ? 1 : c.V;
                for (int y = 0; y < v; y++)
                {
                    for (int x = 0; x < h; x++)
                    {
                        Span<short> block = c.Block(row * v + y, column * h + x);
                        DecodeBlock(ref bits, block, frame.Progressive, scan, k, ref predictions[k], ref endOfBandRun);
                    }
                }
            }
        }
        bits.Reset();
        return bits.Position;
    }

    private static void DecodeBlock(ref EntropyReader bits, Span<short> block, bool progressive, JpegScan scan, int k,
        ref int prediction, ref int endOfBandRun)
    {
        if (!progressive)
        {
            DecodeDc(ref bits, block, scan.Dc[k]!, ref prediction, 0);
            DecodeAcFirst(ref bits, block, scan.Ac[k]!, 1, 63, 0, ref endOfBandRun, runsOfBlocks: false);
        }
        else if (scan.Ss == 0)
        {
            if (scan.Ah == 0)
                DecodeDc(ref bits, block, scan.Dc[k]!, ref prediction, scan.Al);
            else if (bits.Bit())
                block[0] |= (short)(1 << scan.Al);
        }
        else if (scan.Ah == 0)
        {
            DecodeAcFirst(ref bits, block, scan.Ac[k]!, scan.Ss, scan.Se, scan.Al, ref endOfBandRun, runsOfBlocks: true);
        }
        else
        {
            DecodeAcRefine(ref bits, block, scan.Ac[k]!, scan.Ss, scan.Se, scan.Al, ref endOfBandRun);
        }
    }

    /// <summary>A DC difference added to the component's running prediction, scaled up by <paramref name="al"/>.</summary>
    private static void DecodeDc(ref EntropyReader bits, Span<short> block, HuffmanTable table, ref int prediction, int al)
    {
        int size = table.Decode(ref bits);
        prediction += size == 0 ? 0 : bits.Receive(size);
        block[0] = (short)(prediction << al);
    }

    /// <summary>
    /// AC coefficients Ss..Se: run/size symbols, ZRL for 16 zeros, and the end of the band: in a progressive scan
    /// (<paramref name="runsOfBlocks"/>) EOBn ends it in this and the next blocks; in a sequential one any zero-size
    /// symbol but ZRL is EOB, as libjpeg reads it.
    /// </summary>
    private static void DecodeAcFirst(ref EntropyReader bits, Span<short> block, HuffmanTable table, int ss, int se, int al,
        ref int endOfBandRun, bool runsOfBlocks)
    {
        if (endOfBandRun > 0)
        {
            endOfBandRun--;
            return;
        }
        ReadOnlySpan<byte> natural = NaturalOrder;
        for (int k = ss; k <= se; k++)
        {
            int symbol = table.Decode(ref bits);
            int run = symbol >> 4, size = symbol & 15;
            if (size != 0)
            {
                k += run;
                block[natural[k]] = (short)(bits.Receive(size) << al);
            }
            else if (run == 15)
            {
                k += 15;
            }
            else
            {
                if (runsOfBlocks)
                    endOfBandRun = (1 << run) + bits.Bits(run) - 1; // this block and 2^run + extra - 1 more
                return;
            }
        }
    }

    /// <summary>
    /// A refining AC scan (T.81 G.1.2.3): one correction bit for each coefficient already nonzero, and newly nonzero
    /// coefficients of magnitude 2^Al placed after their run of zero-history coefficients.
    /// </summary>
    private static void DecodeAcRefine(ref EntropyReader bits, Span<short> block, HuffmanTable table, int ss, int se, int al,
        ref int endOfBandRun)
    {
        ReadOnlySpan<byte> natural = NaturalOrder;
        int plus = 1 << al, minus = -1 << al;
        int k = ss;
        if (endOfBandRun == 0)
        {
            for (; k <= se; k++)
            {
                int symbol = table.Decode(ref bits);
                int run = symbol >> 4, size = symbol & 15;
                int value = 0;
                if (size != 0)
                {
                    value = bits.Bit() ? plus : minus; // size is 1 in valid data
                }
                else if (run != 15)
                {
                    endOfBandRun = (1 << run) + bits.Bits(run);
                    break;
                }
                for (; k <= se; k++)
                {
                    int at = natural[k];
                    if (block[at] != 0)
                        Correct(ref bits, ref block[at], plus, minus);
                    else if (--run < 0)
                        break;
                }
                if (value != 0)
                    block[natural[k]] = (short)value;
            }
        }
        if (endOfBandRun > 0)
        {
            for (; k <= se; k++)
            {
                int at = natural[k];
                if (block[at] != 0)
                    Correct(ref bits, ref block[at], plus, minus);
            }
            endOfBandRun--;
        }
    }

    /// <summary>The correction bit of a coefficient already nonzero: when set, its magnitude gains 2^Al.</summary>
    private static void Correct(ref EntropyReader bits, ref short coefficient, int plus, int minus)
    {
        if (bits.Bit() && (coefficient & plus) == 0)
            coefficient += (short)(coefficient >= 0 ? plus : minus);
    }
}
