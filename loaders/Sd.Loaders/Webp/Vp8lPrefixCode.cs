namespace Sd.Loaders.Webp;

/// <summary>
/// A canonical prefix (Huffman) code of a lossless WebP stream, built from code lengths as libwebp accepts them:
/// lengths up to 15, a complete code, or a single used symbol, which then takes no bits at all. Symbols are read with
/// an 8-bit lookup table, longer codes bit by bit.
/// </summary>
internal sealed class Vp8lPrefixCode
{
    private const int MaxLength = 15, TableBits = 8;

    private readonly int _single = -1;
    private readonly int[] _counts = new int[MaxLength + 1];
    private readonly int[] _sorted = [];
    private readonly int[] _table = []; // symbol << 4 | length, 0 for codes longer than TableBits

    private Vp8lPrefixCode(int single) => _single = single;

    private Vp8lPrefixCode(int[] counts, int[] sorted, int[] table)
    {
        _counts = counts;
        _sorted = sorted;
        _table = table;
    }

    /// <summary>The code, or null when the lengths make none (all zero, over-subscribed or incomplete).</summary>
    public static Vp8lPrefixCode? Build(ReadOnlySpan<int> lengths)
    {
        var counts = new int[MaxLength + 1];
        int used = 0, last = 0;
        for (int s = 0; s < lengths.Length; s++)
        {
            if (lengths[s] == 0)
                continue;
            counts[lengths[s]]++;
            used++;
            last = s;
        }
        if (used == 0)
            return null;
        if (used == 1)
            return new Vp8lPrefixCode(last);
        long open = 1; // unassigned codes at the current length
        for (int len = 1; len <= MaxLength; len++)
        {
            open = 2 * open - counts[len];
            if (open < 0)
                return null;
        }
        if (open != 0)
            return null;

        var offsets = new int[MaxLength + 2];
        for (int len = 1; len <= MaxLength; len++)
            offsets[len + 1] = offsets[len] + counts[len];
        var sorted = new int[used];
        for (int s = 0; s < lengths.Length; s++)
        {
            if (lengths[s] != 0)
                sorted[offsets[lengths[s]]++] = s;
        }
        var table = new int[1 << TableBits];
        int code = 0, index = 0;
        for (int len = 1; len <= TableBits; len++, code <<= 1)
        {
            for (int k = 0; k < counts[len]; k++, code++, index++)
            {
                // The code's first bit is its most significant; the stream gives it first, into the lowest bit.
                int reversed = Reverse(code, len);
                for (int fill = reversed; fill < table.Length; fill += 1 << len)
                    table[fill] = sorted[index] << 4 | len;
            }
        }
        return new Vp8lPrefixCode(counts, sorted, table);
    }

    public int Read(Vp8lBitReader br)
    {
        if (_single >= 0)
            return _single;
        uint bits = br.Peek();
        int entry = _table[bits & ((1 << TableBits) - 1)];
        if (entry != 0)
        {
            br.Skip(entry & 15);
            return entry >> 4;
        }
        // Canonical decoding, one bit at a time (RFC 1951's, as zlib's puff does it).
        int code = 0, first = 0, index = 0;
        for (int len = 1; len <= MaxLength; len++)
        {
            code |= (int)(bits >> (len - 1)) & 1;
            int count = _counts[len];
            if (code - first < count)
            {
                br.Skip(len);
                return _sorted[index + code - first];
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        throw new InvalidOperationException("a complete prefix code decodes every bit pattern");
    }

    private static int Reverse(int code, int length)
    {
        int reversed = 0;
        for (int i = 0; i < length; i++)
            reversed |= ((code >> i) & 1) << (length - 1 - i);
        return reversed;
    }
}
