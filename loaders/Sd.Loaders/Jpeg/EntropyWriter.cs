using System.Numerics;

namespace Sd.Loaders.Jpeg;

/// <summary>
/// Huffman-codes baseline blocks into entropy-coded bytes: each block's DC difference, then its AC terms in zigzag
/// order as (zero run, size) symbols with ZRL for runs past 15 and EOB after the last non-zero term; a 0xFF byte is
/// followed by a stuffed zero, and the last byte is filled with one bits.
/// Reference: libjpeg's jchuff.c (encode_one_block, flush_bits); ITU T.81 F.1.2.
/// </summary>
internal sealed class EntropyWriter
{
    private readonly Stream _output;
    private readonly byte[] _buffer = new byte[4096];
    private int _length;
    private ulong _bits;
    private int _bitCount;

    public EntropyWriter(Stream output) => _output = output;

    /// <summary>
    /// A table's codes by symbol: code in the low 16 bits, its length above (0 when the symbol has no code), from a
    /// DHT payload (16 counts, then the symbols), as canonical codes are assigned (T.81 C.2). The standard tables
    /// code every symbol 8-bit samples make (DC sizes to 11, AC sizes to 10, ZRL, EOB).
    /// </summary>
    public static uint[] Codes(ReadOnlySpan<byte> table)
    {
        var codes = new uint[256];
        int code = 0, index = 16;
        for (int length = 1; length <= 16; length++, code <<= 1)
        {
            for (int i = 0; i < table[length - 1]; i++, code++)
                codes[table[index++]] = (uint)(length << 16 | code);
        }
        return codes;
    }

    /// <summary>Codes one block of quantized coefficients (natural order), <paramref name="lastDc"/> being the previous
    /// block's DC term in the same component, which it updates.</summary>
    public void Block(ReadOnlySpan<short> block, ref int lastDc, uint[] dc, uint[] ac)
    {
        int difference = block[0] - lastDc;
        lastDc = block[0];
        int size = Size(difference);
        Code(dc[size]);
        Put(Magnitude(difference, size), size);

        int run = 0;
        for (int k = 1; k < 64; k++)
        {
            int value = block[ScanDecoder.Natural(k)];
            if (value == 0)
            {
                run++;
                continue;
            }
            for (; run > 15; run -= 16)
                Code(ac[0xF0]);
            size = Size(value);
            Code(ac[run << 4 | size]);
            Put(Magnitude(value, size), size);
            run = 0;
        }
        if (run > 0)
            Code(ac[0x00]);
    }

    /// <summary>Fills the last byte with one bits and writes out what is buffered.</summary>
    public void Finish()
    {
        Put(0x7F, 7);
        _bitCount = 0;
        _output.Write(_buffer, 0, _length);
        _length = 0;
    }

    /// <summary>Bits needed for a term's magnitude (its category).</summary>
    private static int Size(int value) => 32 - BitOperations.LeadingZeroCount((uint)Math.Abs(value));

    /// <summary>A term's extra bits: the value itself when positive, its ones' complement when negative.</summary>
    private static int Magnitude(int value, int size) => (value < 0 ? value - 1 : value) & ((1 << size) - 1);

    private void Code(uint code) => Put((int)(code & 0xFFFF), (int)(code >> 16));

    /// <summary>Appends <paramref name="count"/> bits; bits above the <c>_bitCount</c> pending ones are stale and never read.</summary>
    private void Put(int value, int count)
    {
        _bits = _bits << count | (uint)value;
        _bitCount += count;
        while (_bitCount >= 8)
        {
            _bitCount -= 8;
            byte b = (byte)(_bits >> _bitCount);
            Byte(b);
            if (b == 0xFF)
                Byte(0);
        }
    }

    private void Byte(byte b)
    {
        if (_length == _buffer.Length)
        {
            _output.Write(_buffer, 0, _length);
            _length = 0;
        }
        _buffer[_length++] = b;
    }
}
