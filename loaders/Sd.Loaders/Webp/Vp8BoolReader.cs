using System.Numerics;

namespace Sd.Loaders.Webp;

/// <summary>
/// VP8's boolean entropy decoder (RFC 6386 section 7) over one partition, with libwebp's arithmetic: the range kept
/// minus one, bytes taken as the value needs them. Reading past the partition's end shifts in one byte of zeros and
/// sets <see cref="PastEnd"/>, as libwebp does; the decoder then reports the data truncated.
/// </summary>
internal sealed class Vp8BoolReader
{
    private readonly byte[] _data;
    private readonly int _end;
    private int _position;
    private uint _range = 255 - 1;
    private ulong _value;
    private int _bits = -8;

    public Vp8BoolReader(byte[] data, int start, int length)
    {
        _data = data;
        _position = start;
        _end = start + length;
        Load();
    }

    /// <summary>Whether more bits were read than the partition holds.</summary>
    public bool PastEnd { get; private set; }

    /// <summary>One bit whose probability of being 0 is <paramref name="probability"/>/256.</summary>
    public bool Bit(int probability)
    {
        uint range = _range;
        if (_bits < 0)
            Load();
        int position = _bits;
        uint split = (range * (uint)probability) >> 8;
        bool bit = (uint)(_value >> position) > split;
        if (bit)
        {
            range -= split;
            _value -= (ulong)(split + 1) << position;
        }
        else
        {
            range = split + 1;
        }
        int shift = 7 ^ BitOperations.Log2(range);
        range <<= shift;
        _bits -= shift;
        _range = range - 1;
        return bit;
    }

    /// <summary><paramref name="magnitude"/> with a sign read at probability 1/2.</summary>
    public int Signed(int magnitude)
    {
        if (_bits < 0)
            Load();
        int position = _bits;
        uint split = _range >> 1;
        uint value = (uint)(_value >> position);
        int mask = (int)(split - value) >> 31; // -1 when the bit is 1
        _bits--;
        _range = (_range + (uint)mask) | 1;
        _value -= (ulong)((split + 1) & (uint)mask) << position;
        return (magnitude ^ mask) - mask;
    }

    /// <summary>An unsigned <paramref name="count"/>-bit literal, most significant bit first.</summary>
    public int Literal(int count)
    {
        int value = 0;
        while (count-- > 0)
            value |= (Bit(0x80) ? 1 : 0) << count;
        return value;
    }

    /// <summary>A <paramref name="count"/>-bit magnitude and then its sign.</summary>
    public int SignedLiteral(int count)
    {
        int value = Literal(count);
        return Bit(0x80) ? -value : value;
    }

    /// <summary>A flag, then the signed literal when it is set (0 otherwise).</summary>
    public int OptionalSigned(int count) => Bit(0x80) ? SignedLiteral(count) : 0;

    private void Load()
    {
        if (_position < _end)
        {
            _bits += 8;
            _value = _data[_position++] | (_value << 8);
        }
        else if (!PastEnd)
        {
            _value <<= 8;
            _bits += 8;
            PastEnd = true;
        }
        else
        {
            _bits = 0;
        }
    }
}
