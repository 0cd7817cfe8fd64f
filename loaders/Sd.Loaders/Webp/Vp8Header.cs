namespace Sd.Loaders.Webp;

/// <summary>
/// A VP8 key frame's header (RFC 6386 sections 9.2-9.11, 19.2): segments, loop filter, token partitions, quantizers
/// and coefficient probabilities, read from the first partition, whose reader it leaves at the first macroblock's modes.
/// </summary>
internal sealed class Vp8Header
{
    private const int Segments = 4;

    // RFC 6386 section 14.1: quantizer index to step, for DC and AC coefficients.
    private static ReadOnlySpan<byte> DcSteps =>
    [
        4, 5, 6, 7, 8, 9, 10, 10, 11, 12, 13, 14, 15, 16, 17, 17, 18, 19, 20, 20, 21, 21, 22, 22, 23, 23, 24, 25, 25, 26,
        27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 46, 47, 48, 49, 50, 51, 52,
        53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 76, 77, 78, 79,
        80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 93, 95, 96, 98, 100, 101, 102, 104, 106, 108, 110, 112, 114, 116,
        118, 122, 124, 126, 128, 130, 132, 134, 136, 138, 140, 143, 145, 148, 151, 154, 157,
    ];

    private static ReadOnlySpan<short> AcSteps =>
    [
        4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33,
        34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 60, 62, 64,
        66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94, 96, 98, 100, 102, 104, 106, 108, 110, 112, 114, 116,
        119, 122, 125, 128, 131, 134, 137, 140, 143, 146, 149, 152, 155, 158, 161, 164, 167, 170, 173, 177, 181, 185,
        189, 193, 197, 201, 205, 209, 213, 217, 221, 225, 229, 234, 239, 245, 249, 254, 259, 264, 269, 274, 279, 284,
    ];

    private static ReadOnlySpan<byte> Bands => [0, 1, 2, 3, 6, 4, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 0];

    public Vp8Header(Vp8BoolReader first)
    {
        first.Literal(2); // colour space and clamping type: neither changes decoding
        ReadSegments(first);
        ReadFilter(first);
        PartitionCount = 1 << first.Literal(2);
        ReadQuantizers(first);
        first.Bit(0x80); // "refresh entropy probs": meaningless for a single key frame
        ReadCoefficientProbabilities(first);
        if (first.Bit(0x80))
            SkipProbability = first.Literal(8);
    }

    public bool UpdateSegmentMap { get; private set; }

    /// <summary>The segment-map tree's three probabilities.</summary>
    public int[] SegmentProbabilities { get; } = [255, 255, 255];

    public int PartitionCount { get; }

    /// <summary>The probability of a macroblock's skip flag; -1 when the frame codes no skip flags.</summary>
    public int SkipProbability { get; } = -1;

    /// <summary>0 no loop filter, 1 simple, 2 normal.</summary>
    public int FilterType { get; private set; }

    /// <summary>Per segment: luma DC, luma AC, second-order DC, second-order AC, chroma DC, chroma AC steps.</summary>
    public short[,] Steps { get; } = new short[Segments, 6];

    /// <summary>Per segment and 4x4-mode flag (index 2 x segment + flag).</summary>
    public Vp8FilterStrength[] FilterStrengths { get; } = new Vp8FilterStrength[2 * Segments];

    /// <summary>Coefficient probabilities [type 4][band 8][context 3][node 11], flattened.</summary>
    public byte[] Coefficients { get; } = new byte[4 * 8 * 3 * 11];

    /// <summary>Where the probabilities for coefficient <paramref name="index"/> (0-16) of a block of
    /// <paramref name="type"/> in <paramref name="context"/> start in <see cref="Coefficients"/>.</summary>
    public static int ProbabilityOffset(int type, int index, int context) => ((type * 8 + Bands[index]) * 3 + context) * 11;

    private bool _segmentsUsed, _absoluteSegmentValues = true;
    private readonly int[] _segmentQuantizer = new int[Segments], _segmentFilterLevel = new int[Segments];

    private void ReadSegments(Vp8BoolReader br)
    {
        _segmentsUsed = br.Bit(0x80);
        if (!_segmentsUsed)
            return;
        UpdateSegmentMap = br.Bit(0x80);
        if (br.Bit(0x80))
        {
            _absoluteSegmentValues = br.Bit(0x80);
            for (int s = 0; s < Segments; s++)
                _segmentQuantizer[s] = br.OptionalSigned(7);
            for (int s = 0; s < Segments; s++)
                _segmentFilterLevel[s] = br.OptionalSigned(6);
        }
        if (UpdateSegmentMap)
        {
            for (int i = 0; i < 3; i++)
                SegmentProbabilities[i] = br.Bit(0x80) ? br.Literal(8) : 255;
        }
    }

    private void ReadFilter(Vp8BoolReader br)
    {
        bool simple = br.Bit(0x80);
        int level = br.Literal(6), sharpness = br.Literal(3);
        int referenceDelta = 0, modeDelta = 0; // an intra frame uses the first of each of the four deltas
        if (br.Bit(0x80) && br.Bit(0x80))
        {
            for (int i = 0; i < 4; i++)
            {
                int delta = br.OptionalSigned(6);
                if (i == 0)
                    referenceDelta = delta;
            }
            for (int i = 0; i < 4; i++)
            {
                int delta = br.OptionalSigned(6);
                if (i == 0)
                    modeDelta = delta;
            }
        }
        FilterType = level == 0 ? 0 : simple ? 1 : 2;
        if (FilterType == 0)
            return;
        for (int s = 0; s < Segments; s++)
        {
            int baseLevel = !_segmentsUsed ? level : _segmentFilterLevel[s] + (_absoluteSegmentValues ? 0 : level);
            for (int i4x4 = 0; i4x4 <= 1; i4x4++)
                FilterStrengths[2 * s + i4x4] = Strength(baseLevel + referenceDelta + (i4x4 == 1 ? modeDelta : 0), sharpness, i4x4 == 1);
        }
    }

    private static Vp8FilterStrength Strength(int level, int sharpness, bool inner)
    {
        level = Math.Clamp(level, 0, 63);
        if (level == 0)
            return new Vp8FilterStrength(0, 0, 0, inner);
        int innerLevel = level;
        if (sharpness > 0)
        {
            innerLevel >>= sharpness > 4 ? 2 : 1;
            innerLevel = Math.Min(innerLevel, 9 - sharpness);
        }
        innerLevel = Math.Max(innerLevel, 1);
        return new Vp8FilterStrength(2 * level + innerLevel, innerLevel, level >= 40 ? 2 : level >= 15 ? 1 : 0, inner);
    }

    private void ReadQuantizers(Vp8BoolReader br)
    {
        int baseIndex = br.Literal(7);
        int yDc = br.OptionalSigned(4), y2Dc = br.OptionalSigned(4), y2Ac = br.OptionalSigned(4);
        int uvDc = br.OptionalSigned(4), uvAc = br.OptionalSigned(4);
        for (int s = 0; s < Segments; s++)
        {
            int q = !_segmentsUsed ? baseIndex : _segmentQuantizer[s] + (_absoluteSegmentValues ? 0 : baseIndex);
            Steps[s, 0] = DcSteps[Math.Clamp(q + yDc, 0, 127)];
            Steps[s, 1] = AcSteps[Math.Clamp(q, 0, 127)];
            Steps[s, 2] = (short)(DcSteps[Math.Clamp(q + y2Dc, 0, 127)] * 2);
            // x * 155 / 100, as libwebp computes it (equal for every step in the table).
            Steps[s, 3] = (short)Math.Max((AcSteps[Math.Clamp(q + y2Ac, 0, 127)] * 101581) >> 16, 8);
            Steps[s, 4] = DcSteps[Math.Clamp(q + uvDc, 0, 117)];
            Steps[s, 5] = AcSteps[Math.Clamp(q + uvAc, 0, 127)];
        }
    }

    private void ReadCoefficientProbabilities(Vp8BoolReader br)
    {
        ReadOnlySpan<byte> updates = Vp8Probabilities.CoefficientUpdates, defaults = Vp8Probabilities.DefaultCoefficients;
        for (int i = 0; i < Coefficients.Length; i++)
            Coefficients[i] = br.Bit(updates[i]) ? (byte)br.Literal(8) : defaults[i];
    }
}
