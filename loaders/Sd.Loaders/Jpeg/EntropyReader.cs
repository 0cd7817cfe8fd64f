namespace Sd.Loaders.Jpeg;

/// <summary>
/// Bits of a scan's entropy-coded data, most significant first, with the 0xFF00 stuffing removed. A marker ends the
/// data: past it the reader gives zero bits (as libjpeg does) and stays before the marker, so the caller reads it.
/// The end of the file ends it the same way; the caller then finds no EOI marker and reports the file truncated.
/// </summary>
internal ref struct EntropyReader
{
    private readonly ReadOnlySpan<byte> _data;
    private ulong _buffer; // bits left-aligned
    private int _count;

    public EntropyReader(ReadOnlySpan<byte> data, int position)
    {
        _data = data;
        Position = position;
    }

    /// <summary>The next byte not yet taken into the bit buffer.</summary>
    public int Position { get; private set; }

    /// <summary>Whether a marker was reached (so any further bits are zeros).</summary>
    public bool AtMarker { get; private set; }

    public int Peek(int n)
    {
        if (_count < n)
            Fill();
        return (int)(_buffer >> (64 - n));
    }

    public void Skip(int n)
    {
        _buffer <<= n;
        _count -= n;
    }

    public int Bits(int n)
    {
        if (n == 0)
            return 0;
        int value = Peek(n);
        Skip(n);
        return value;
    }

    public bool Bit() => Bits(1) != 0;

    /// <summary>The n-bit magnitude category's value (T.81 F.2.2.1 EXTEND): n bits, negative when the top bit is 0.</summary>
    public int Receive(int n)
    {
        int value = Bits(n);
        return value < 1 << (n - 1) ? value - (1 << n) + 1 : value;
    }

    /// <summary>
    /// Drops the buffered bits, as at a restart marker or the end of a scan: what is left before the marker is
    /// padding (or, in a damaged file, bytes libjpeg skips too), so <see cref="Position"/> stays where reading stopped.
    /// </summary>
    public void Reset()
    {
        _buffer = 0;
        _count = 0;
        AtMarker = false;
    }

    private void Fill()
    {
        while (_count <= 56)
        {
            int b = 0;
            if (!AtMarker)
            {
                b = Position < _data.Length ? _data[Position] : 0xFF; // the file's end reads as a marker
                if (b == 0xFF)
                {
                    if (Position + 1 < _data.Length && _data[Position + 1] == 0x00)
                    {
                        Position += 2;
                    }
                    else
                    {
                        AtMarker = true;
                        b = 0;
                    }
                }
                else
                {
                    Position++;
                }
            }
            _buffer |= (ulong)b << (56 - _count);
            _count += 8;
            if (AtMarker)
                _count = 64; // zeros from here on: any amount
        }
    }
}
