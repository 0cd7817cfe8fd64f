namespace Sd.Loaders.Webp;

/// <summary>
/// Decodes a VP8 key frame (a lossy WebP's "VP8 " chunk, RFC 6386) to Y, U and V planes, as libwebp 1.2.4 decodes it
/// for Pillow: macroblock modes from the first partition, coefficients from the token partitions, intra prediction
/// from unfiltered neighbours, inverse transforms, then the loop filter. Reference: libwebp's src/dec (vp8_dec.c,
/// tree_dec.c, frame_dec.c).
/// </summary>
internal sealed class Vp8Decoder
{
    private const int Stride = Vp8Intra.Stride;
    private const int YAt = Stride + 8, UAt = YAt + Stride * 16 + Stride, VAt = UAt + 16; // in the work buffer

    private static ReadOnlySpan<byte> Zigzag => [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15];

    // The extra bits of the four largest token categories, each bit's probability.
    private static ReadOnlySpan<byte> Category3 => [173, 148, 140];
    private static ReadOnlySpan<byte> Category4 => [176, 155, 140, 135];
    private static ReadOnlySpan<byte> Category5 => [180, 157, 141, 134, 130];
    private static ReadOnlySpan<byte> Category6 => [254, 254, 243, 230, 196, 177, 153, 140, 133, 130, 129];

    private readonly Vp8Header _header;
    private readonly Vp8Planes _planes;
    private readonly Vp8BoolReader _first;
    private readonly Vp8BoolReader[] _partitions;
    private readonly Vp8FilterStrength[] _filter;

    // Context from the macroblocks above (per column) and to the left.
    private readonly byte[] _modesAbove, _nonZeroAbove, _dcNonZeroAbove;
    private readonly byte[] _yAbove, _uAbove, _vAbove;
    private readonly byte[] _modesLeft = new byte[4];
    private int _nonZeroLeft, _dcNonZeroLeft;

    // The macroblock being decoded.
    private readonly byte[] _work = new byte[Stride * 17 + Stride * 9];
    private readonly short[] _coefficients = new short[384];
    private readonly byte[] _modes = new byte[16];
    private int _segment, _chromaMode;
    private bool _is4x4;

    private Vp8Decoder(Vp8Header header, Vp8Planes planes, Vp8BoolReader first, Vp8BoolReader[] partitions)
    {
        _header = header;
        _planes = planes;
        _first = first;
        _partitions = partitions;
        int wide = planes.MacroblocksWide;
        _filter = new Vp8FilterStrength[wide * planes.MacroblocksHigh];
        _modesAbove = new byte[4 * wide];
        _nonZeroAbove = new byte[wide];
        _dcNonZeroAbove = new byte[wide];
        _yAbove = new byte[16 * wide];
        _uAbove = new byte[8 * wide];
        _vAbove = new byte[8 * wide];
    }

    /// <summary>The frame in <paramref name="length"/> bytes of <paramref name="data"/> from
    /// <paramref name="start"/>; the caller has checked its size against the pixel limit.</summary>
    /// <exception cref="InvalidFileException">The frame is damaged, truncated or not a displayable key frame.</exception>
    public static Vp8Planes Decode(byte[] data, int start, int length, string name)
    {
        if (length < 10)
            throw new InvalidFileException(name, "truncated VP8 frame header");
        int bits = data[start] | data[start + 1] << 8 | data[start + 2] << 16;
        if ((bits & 1) != 0)
            throw new InvalidFileException(name, "the VP8 frame is not a key frame");
        if (((bits >> 1) & 7) > 3)
            throw new InvalidFileException(name, $"unknown VP8 profile {(bits >> 1) & 7}");
        if (((bits >> 4) & 1) == 0)
            throw new InvalidFileException(name, "the VP8 frame is marked not to be shown");
        if (data[start + 3] != 0x9d || data[start + 4] != 0x01 || data[start + 5] != 0x2a)
            throw new InvalidFileException(name, "bad VP8 start code");
        // 14 bits of size, 2 of a scale the decoder leaves to the application (libwebp ignores it too).
        int width = (data[start + 6] | data[start + 7] << 8) & 0x3fff, height = (data[start + 8] | data[start + 9] << 8) & 0x3fff;
        if (width == 0 || height == 0)
            throw new InvalidFileException(name, $"VP8 frame size {width}x{height} has a zero side");
        int firstLength = bits >> 5, at = start + 10, end = start + length;
        if (firstLength > end - at)
            throw new InvalidFileException(name, $"truncated: the first VP8 partition needs {firstLength} bytes, {end - at} are left");
        var first = new Vp8BoolReader(data, at, firstLength);
        var header = new Vp8Header(first);
        at += firstLength;
        var partitions = new Vp8BoolReader[header.PartitionCount];
        int sizes = at;
        at += 3 * (partitions.Length - 1);
        if (at >= end)
            throw new InvalidFileException(name, "truncated: the VP8 token partitions are missing");
        for (int p = 0; p < partitions.Length - 1; p++, sizes += 3)
        {
            int size = Math.Min(data[sizes] | data[sizes + 1] << 8 | data[sizes + 2] << 16, end - at);
            partitions[p] = new Vp8BoolReader(data, at, size);
            at += size;
        }
        if (at >= end)
            throw new InvalidFileException(name, "truncated: the last VP8 token partition is empty");
        partitions[^1] = new Vp8BoolReader(data, at, end - at);

        var planes = new Vp8Planes(width, height);
        var decoder = new Vp8Decoder(header, planes, first, partitions);
        decoder.DecodeMacroblocks(name);
        if (header.FilterType > 0)
            Vp8LoopFilter.Apply(planes, decoder._filter, simple: header.FilterType == 1);
        return planes;
    }

    private void DecodeMacroblocks(string name)
    {
        int wide = _planes.MacroblocksWide;
        for (int mby = 0; mby < _planes.MacroblocksHigh; mby++)
        {
            Vp8BoolReader tokens = _partitions[mby & (_partitions.Length - 1)];
            _modesLeft.AsSpan().Fill(Vp8Modes.Dc);
            _nonZeroLeft = _dcNonZeroLeft = 0;
            for (int mbx = 0; mbx < wide; mbx++)
            {
                bool skip = ReadModes(mbx);
                bool noCoefficients = skip ? SkipResiduals(mbx) : ReadResiduals(mbx, tokens);
                if (_header.FilterType > 0)
                {
                    Vp8FilterStrength s = _header.FilterStrengths[2 * _segment + (_is4x4 ? 1 : 0)];
                    _filter[mby * wide + mbx] = s with { Inner = s.Inner || !noCoefficients };
                }
                Reconstruct(mbx, mby);
                if (tokens.PastEnd)
                    throw new InvalidFileException(name, $"truncated: the VP8 coefficients end inside macroblock row {mby}");
            }
            if (_first.PastEnd)
                throw new InvalidFileException(name, $"truncated: the VP8 modes end inside macroblock row {mby}");
        }
    }

    /// <summary>Reads the macroblock's segment, skip flag and prediction modes; returns the skip flag.</summary>
    private bool ReadModes(int mbx)
    {
        Vp8BoolReader br = _first;
        int[] segmentProbabilities = _header.SegmentProbabilities;
        _segment = !_header.UpdateSegmentMap ? 0
            : !br.Bit(segmentProbabilities[0]) ? (br.Bit(segmentProbabilities[1]) ? 1 : 0)
            : 2 + (br.Bit(segmentProbabilities[2]) ? 1 : 0);
        bool skip = _header.SkipProbability >= 0 && br.Bit(_header.SkipProbability);
        Span<byte> above = _modesAbove.AsSpan(4 * mbx, 4);
        _is4x4 = !br.Bit(145);
        if (!_is4x4)
        {
            int mode = br.Bit(156)
                ? (br.Bit(128) ? Vp8Modes.TrueMotion : Vp8Modes.Horizontal)
                : (br.Bit(163) ? Vp8Modes.Vertical : Vp8Modes.Dc);
            _modes[0] = (byte)mode;
            above.Fill((byte)mode);
            _modesLeft.AsSpan().Fill((byte)mode);
        }
        else
        {
            ReadOnlySpan<byte> probabilities = Vp8Probabilities.SubblockModes;
            for (int y = 0; y < 4; y++)
            {
                int left = _modesLeft[y];
                for (int x = 0; x < 4; x++)
                {
                    left = SubblockMode(br, probabilities.Slice((above[x] * 10 + left) * 9, 9));
                    above[x] = (byte)left;
                    _modes[4 * y + x] = (byte)left;
                }
                _modesLeft[y] = (byte)left;
            }
        }
        _chromaMode = !br.Bit(142) ? Vp8Modes.Dc : !br.Bit(114) ? Vp8Modes.Vertical
            : br.Bit(183) ? Vp8Modes.TrueMotion : Vp8Modes.Horizontal;
        return skip;
    }

    /// <summary>The 4x4 mode tree of RFC 6386 section 11.2.</summary>
    private static int SubblockMode(Vp8BoolReader br, ReadOnlySpan<byte> p)
    {
        if (!br.Bit(p[0])) return Vp8Modes.Dc;
        if (!br.Bit(p[1])) return Vp8Modes.TrueMotion;
        if (!br.Bit(p[2])) return Vp8Modes.Vertical;
        if (!br.Bit(p[3]))
            return !br.Bit(p[4]) ? Vp8Modes.Horizontal : !br.Bit(p[5]) ? Vp8Modes.DownRight : Vp8Modes.VerticalRight;
        if (!br.Bit(p[6])) return Vp8Modes.DownLeft;
        if (!br.Bit(p[7])) return Vp8Modes.VerticalLeft;
        return !br.Bit(p[8]) ? Vp8Modes.HorizontalDown : Vp8Modes.HorizontalUp;
    }

    /// <summary>A skipped macroblock: no coefficients, and its neighbours see none.</summary>
    private bool SkipResiduals(int mbx)
    {
        Array.Clear(_coefficients);
        _nonZeroAbove[mbx] = 0;
        _nonZeroLeft = 0;
        if (!_is4x4)
            _dcNonZeroAbove[mbx] = (byte)(_dcNonZeroLeft = 0);
        return true;
    }

    /// <summary>Reads the macroblock's coefficients (RFC 6386 section 13), dequantized; returns whether all are
    /// zero. The above/left flags say which neighbouring blocks had any, the context of the next blocks.</summary>
    private bool ReadResiduals(int mbx, Vp8BoolReader br)
    {
        short[] q = _coefficients;
        Array.Clear(q);
        short[,] steps = _header.Steps;
        int s = _segment;
        int first, type;
        bool any = false; // a block with more than a DC coefficient, or a non-zero DC
        if (!_is4x4)
        {
            Span<short> dc = stackalloc short[16];
            int context = _dcNonZeroAbove[mbx] + _dcNonZeroLeft;
            int count = ReadBlock(br, 1, context, steps[s, 2], steps[s, 3], 0, dc);
            _dcNonZeroAbove[mbx] = (byte)(_dcNonZeroLeft = count > 0 ? 1 : 0);
            Vp8Transforms.InverseWalshHadamard(dc, q);
            first = 1;
            type = 0;
        }
        else
        {
            first = 0;
            type = 3;
        }

        int above = _nonZeroAbove[mbx], left = _nonZeroLeft;
        int leftOut = 0;
        for (int y = 0; y < 4; y++)
        {
            int l = (left >> y) & 1;
            for (int x = 0; x < 4; x++)
            {
                int block = 4 * y + x;
                int context = l + ((above >> x) & 1);
                int count = ReadBlock(br, type, context, steps[s, 0], steps[s, 1], first, q.AsSpan(16 * block, 16));
                l = count > first ? 1 : 0;
                above = (above & ~(1 << x)) | (l << x);
                any |= count > 1 || q[16 * block] != 0; // as libwebp flags a block
            }
            leftOut |= l << y;
        }
        int aboveOut = above & 0xf;
        for (int plane = 0; plane < 2; plane++) // U then V: 2x2 blocks each, their flags at bits 4-5 and 6-7
        {
            int shift = 4 + 2 * plane;
            int a = (_nonZeroAbove[mbx] >> shift) & 3, lf = (_nonZeroLeft >> shift) & 3;
            for (int y = 0; y < 2; y++)
            {
                int l = (lf >> y) & 1;
                for (int x = 0; x < 2; x++)
                {
                    int block = 16 + 4 * plane + 2 * y + x;
                    int context = l + ((a >> x) & 1);
                    int count = ReadBlock(br, 2, context, steps[s, 4], steps[s, 5], 0, q.AsSpan(16 * block, 16));
                    l = count > 0 ? 1 : 0;
                    a = (a & ~(1 << x)) | (l << x);
                    any |= count > 1 || q[16 * block] != 0; // as libwebp flags a block
                }
                lf = (lf & ~(1 << y)) | (l << y);
            }
            aboveOut |= a << shift;
            leftOut |= lf << shift;
        }
        _nonZeroAbove[mbx] = (byte)aboveOut;
        _nonZeroLeft = leftOut;
        return !any;
    }

    /// <summary>Reads one 4x4 block's tokens from coefficient <paramref name="n"/> on (RFC 6386 section 13.2),
    /// dequantized into <paramref name="output"/> in row-major order; returns the index after the last one read.</summary>
    private int ReadBlock(Vp8BoolReader br, int type, int context, int dcStep, int acStep, int n, Span<short> output)
    {
        byte[] probabilities = _header.Coefficients;
        int p = Vp8Header.ProbabilityOffset(type, n, context);
        for (; n < 16; n++)
        {
            if (!br.Bit(probabilities[p]))
                return n; // end of block
            while (!br.Bit(probabilities[p + 1])) // a zero
            {
                if (++n == 16)
                    return 16;
                p = Vp8Header.ProbabilityOffset(type, n, 0);
            }
            int value;
            if (!br.Bit(probabilities[p + 2]))
            {
                value = 1;
                p = Vp8Header.ProbabilityOffset(type, n + 1, 1);
            }
            else
            {
                value = LargeValue(br, probabilities.AsSpan(p, 11));
                p = Vp8Header.ProbabilityOffset(type, n + 1, 2);
            }
            // Stored as 16 bits, as libwebp stores it (only damaged data overflows).
            output[Zigzag[n]] = (short)(br.Signed(value) * (n > 0 ? acStep : dcStep));
        }
        return 16;
    }

    /// <summary>A token of 2 or more: the rest of the token tree and a category's extra bits.</summary>
    private static int LargeValue(Vp8BoolReader br, ReadOnlySpan<byte> p)
    {
        if (!br.Bit(p[3]))
            return !br.Bit(p[4]) ? 2 : 3 + (br.Bit(p[5]) ? 1 : 0);
        if (!br.Bit(p[6]))
        {
            if (!br.Bit(p[7]))
                return 5 + (br.Bit(159) ? 1 : 0);
            return 7 + 2 * (br.Bit(165) ? 1 : 0) + (br.Bit(145) ? 1 : 0);
        }
        int bit1 = br.Bit(p[8]) ? 1 : 0;
        int bit0 = br.Bit(p[9 + bit1]) ? 1 : 0;
        int category = 2 * bit1 + bit0;
        ReadOnlySpan<byte> extra = category switch { 0 => Category3, 1 => Category4, 2 => Category5, _ => Category6 };
        int v = 0;
        foreach (byte probability in extra)
            v += v + (br.Bit(probability) ? 1 : 0);
        return v + 3 + (8 << category);
    }

    /// <summary>Predicts the macroblock from its unfiltered neighbours, adds the inverse transforms and stores it.</summary>
    private void Reconstruct(int mbx, int mby)
    {
        Span<byte> b = _work;
        PrepareEdges(mbx, mby);
        if (_is4x4)
        {
            for (int n = 0; n < 16; n++)
            {
                int at = YAt + (n >> 2) * 4 * Stride + (n & 3) * 4;
                Vp8Intra.Subblock(b, at, _modes[n]);
                Vp8Transforms.AddInverseDct(_coefficients.AsSpan(16 * n, 16), b, at);
            }
        }
        else
        {
            Vp8Intra.Block(b, YAt, 16, EdgeMode(_modes[0], mbx, mby));
            for (int n = 0; n < 16; n++)
                Vp8Transforms.AddInverseDct(_coefficients.AsSpan(16 * n, 16), b, YAt + (n >> 2) * 4 * Stride + (n & 3) * 4);
        }
        int chroma = EdgeMode(_chromaMode, mbx, mby);
        for (int plane = 0; plane < 2; plane++)
        {
            int at = plane == 0 ? UAt : VAt;
            Vp8Intra.Block(b, at, 8, chroma);
            for (int n = 0; n < 4; n++)
                Vp8Transforms.AddInverseDct(_coefficients.AsSpan(16 * (16 + 4 * plane + n), 16), b, at + (n >> 1) * 4 * Stride + (n & 1) * 4);
        }
        Store(mbx, mby);
    }

    /// <summary>DC prediction without the neighbours that lie outside the frame.</summary>
    private static int EdgeMode(int mode, int mbx, int mby) => mode != Vp8Modes.Dc ? mode
        : mbx == 0 ? (mby == 0 ? Vp8Modes.DcNoTopLeft : Vp8Modes.DcNoLeft)
        : mby == 0 ? Vp8Modes.DcNoTop : Vp8Modes.Dc;

    /// <summary>Puts the row above and the column to the left (with the corner) around the macroblock in the work
    /// buffer: 127 above the frame, 129 left of it, as RFC 6386 section 12.2 fixes them.</summary>
    private void PrepareEdges(int mbx, int mby)
    {
        Span<byte> b = _work;
        if (mbx == 0)
        {
            for (int j = 0; j < 16; j++)
                b[YAt + j * Stride - 1] = 129;
            for (int j = 0; j < 8; j++)
                b[UAt + j * Stride - 1] = b[VAt + j * Stride - 1] = 129;
            if (mby > 0)
            {
                b[YAt - Stride - 1] = b[UAt - Stride - 1] = b[VAt - Stride - 1] = 129;
            }
            else
            {
                b.Slice(YAt - Stride - 1, 16 + 4 + 1).Fill(127);
                b.Slice(UAt - Stride - 1, 8 + 1).Fill(127);
                b.Slice(VAt - Stride - 1, 8 + 1).Fill(127);
            }
        }
        else
        {
            // The left macroblock's last columns (and the corner from the row above) become this one's left edge.
            for (int j = -1; j < 16; j++)
                b.Slice(YAt + j * Stride + 12, 4).CopyTo(b.Slice(YAt + j * Stride - 4));
            for (int j = -1; j < 8; j++)
            {
                b.Slice(UAt + j * Stride + 4, 4).CopyTo(b.Slice(UAt + j * Stride - 4));
                b.Slice(VAt + j * Stride + 4, 4).CopyTo(b.Slice(VAt + j * Stride - 4));
            }
        }
        if (mby > 0)
        {
            _yAbove.AsSpan(16 * mbx, 16).CopyTo(b.Slice(YAt - Stride));
            _uAbove.AsSpan(8 * mbx, 8).CopyTo(b.Slice(UAt - Stride));
            _vAbove.AsSpan(8 * mbx, 8).CopyTo(b.Slice(VAt - Stride));
        }
        if (!_is4x4)
            return;
        // 4x4 blocks read four samples above-right: from the next macroblock above (the last sample repeated at the
        // right edge), and the right column's lower blocks reuse them (their true neighbours are not decoded yet).
        Span<byte> aboveRight = b.Slice(YAt - Stride + 16, 4);
        if (mby > 0)
        {
            if (mbx == _planes.MacroblocksWide - 1)
                aboveRight.Fill(_yAbove[16 * mbx + 15]);
            else
                _yAbove.AsSpan(16 * (mbx + 1), 4).CopyTo(aboveRight);
        }
        for (int row = 3; row < 12; row += 4)
            aboveRight.CopyTo(b.Slice(YAt + row * Stride + 16));
    }

    /// <summary>Copies the reconstructed macroblock into the planes and keeps its bottom row for the one below.</summary>
    private void Store(int mbx, int mby)
    {
        ReadOnlySpan<byte> b = _work;
        Vp8Planes planes = _planes;
        for (int j = 0; j < 16; j++)
            b.Slice(YAt + j * Stride, 16).CopyTo(planes.Y.AsSpan((mby * 16 + j) * planes.YStride + mbx * 16));
        for (int j = 0; j < 8; j++)
        {
            b.Slice(UAt + j * Stride, 8).CopyTo(planes.U.AsSpan((mby * 8 + j) * planes.CStride + mbx * 8));
            b.Slice(VAt + j * Stride, 8).CopyTo(planes.V.AsSpan((mby * 8 + j) * planes.CStride + mbx * 8));
        }
        b.Slice(YAt + 15 * Stride, 16).CopyTo(_yAbove.AsSpan(16 * mbx));
        b.Slice(UAt + 7 * Stride, 8).CopyTo(_uAbove.AsSpan(8 * mbx));
        b.Slice(VAt + 7 * Stride, 8).CopyTo(_vAbove.AsSpan(8 * mbx));
    }
}
