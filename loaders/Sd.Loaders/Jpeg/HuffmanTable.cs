namespace Sd.Loaders.Jpeg;

/// <summary>
/// A Huffman table (DHT) made ready to decode: codes of up to <see cref="FastBits"/> bits in one lookup, longer ones
/// by the canonical code's per-length limits (ITU T.81 F.2.2.3).
/// </summary>
internal sealed class HuffmanTable
{
    public const int FastBits = 9;

    /// <summary>For each FastBits-bit prefix: code length in the high byte and symbol in the low byte, or 0.</summary>
    private readonly ushort[] _fast = new ushort[1 << FastBits];

    /// <summary>Per code length L: the largest code of length L (-1 when none) and the symbol index offset.</summary>
    private readonly int[] _maxCode = new int[17];
    private readonly int[] _offset = new int[17];
    private readonly byte[] _symbols;

    /// <param name="counts">How many codes have each length 1-16 (index 0 is length 1).</param>
    /// <exception cref="FormatException">The counts do not describe a prefix code, or need more symbols than given.</exception>
    public HuffmanTable(ReadOnlySpan<byte> counts, ReadOnlySpan<byte> symbols)
    {
        _symbols = symbols.ToArray();
        int code = 0, index = 0;
        for (int length = 1; length <= 16; length++)
        {
            int count = counts[length - 1];
            _offset[length] = index - code;
            index += count;
            code += count;
            if (code > 1 << length)
                throw new FormatException($"its {length}-bit codes overflow: more codes than a prefix code can have");
            _maxCode[length] = count == 0 ? -1 : code - 1;
            for (int i = code - count; i < code && length <= FastBits; i++)
            {
                int shift = FastBits - length;
                for (int fill = 0; fill < 1 << shift; fill++)
                    _fast[(i << shift) | fill] = (ushort)((length << 8) | _symbols[index - code + i]);
            }
            code <<= 1;
        }
        if (index != symbols.Length)
            throw new FormatException($"its counts add up to {index} symbols, but {symbols.Length} follow them");
    }

    /// <summary>Decodes one symbol; a bit pattern that is no code is corrupt data.</summary>
    public int Decode(ref EntropyReader bits)
    {
        int peek = bits.Peek(FastBits);
        int entry = _fast[peek];
        if (entry != 0)
        {
            bits.Skip(entry >> 8);
            return entry & 0xFF;
        }
        int code = bits.Peek(FastBits + 1);
        int length = FastBits + 1;
        while (code > _maxCode[length])
        {
            length++;
            if (length > 16)
                throw new FormatException("a Huffman code that the table does not have");
            code = bits.Peek(length);
        }
        bits.Skip(length);
        return _symbols[code + _offset[length]];
    }
}
