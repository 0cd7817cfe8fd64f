namespace Sd.Loaders.Png;

/// <summary>
/// The CRC-32 PNG (and zlib, gzip) uses: reflected polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF.
/// Table-driven, one byte at a time: simple, and fast enough next to the deflate work every PNG also needs.
/// </summary>
public static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    /// <summary>The CRC of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Update(0, data);

    /// <summary>
    /// Continues a CRC: <c>Update(Compute(a), b) == Compute(a + b)</c>, and <c>Update(0, x) == Compute(x)</c>, the
    /// same convention as zlib's crc32(), so a chunk's type and data can be fed separately.
    /// </summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        foreach (byte b in data)
            c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
