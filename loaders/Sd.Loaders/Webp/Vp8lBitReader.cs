using System.Buffers.Binary;

namespace Sd.Loaders.Webp;

/// <summary>
/// Bits of a lossless (VP8L) stream, least significant first. Past the end it gives zeros and sets
/// <see cref="PastEnd"/>; the decoder then reports the data truncated.
/// </summary>
internal sealed class Vp8lBitReader(byte[] data, int start, int length)
{
    private long _position; // in bits from start

    public bool PastEnd => _position > 8L * length;

    /// <summary>The next 32 bits without taking them (zeros past the end).</summary>
    public uint Peek()
    {
        long byteAt = _position >> 3;
        ulong bits;
        if (byteAt + 8 <= length)
        {
            bits = BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(start + (int)byteAt, 8));
        }
        else
        {
            bits = 0;
            for (long i = Math.Min(byteAt + 7, length - 1L); i >= byteAt; i--)
                bits = (bits << 8) | data[start + i];
        }
        return (uint)(bits >> (int)(_position & 7));
    }

    public void Skip(int count) => _position += count;

    /// <summary>The next <paramref name="count"/> (at most 24) bits as a number, the first bit lowest.</summary>
    public int Read(int count)
    {
        if (count == 0)
            return 0;
        int value = (int)(Peek() & ((1u << count) - 1));
        _position += count;
        return value;
    }
}
