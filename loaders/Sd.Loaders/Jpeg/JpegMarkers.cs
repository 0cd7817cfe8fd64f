namespace Sd.Loaders.Jpeg;

/// <summary>Finding and naming JPEG markers (0xFF followed by a code).</summary>
internal static class JpegMarkers
{
    public const int Soi = 0xD8, Eoi = 0xD9, Sos = 0xDA, Dqt = 0xDB, Dnl = 0xDC, Dri = 0xDD, Dht = 0xC4, Dac = 0xCC;

    /// <summary>
    /// The next marker at or after <paramref name="position"/>: returns the position after its code. Bytes before it
    /// that are not a marker (padding, or garbage in a damaged file) are skipped, as libjpeg skips them, and so are
    /// fill bytes (0xFF) and stuffed zeros.
    /// </summary>
    /// <exception cref="EndOfStreamException">No marker before the end of the file.</exception>
    public static int Next(ReadOnlySpan<byte> data, int position, out int marker)
    {
        for (int i = position; i + 1 < data.Length; i++)
        {
            if (data[i] == 0xFF && data[i + 1] is not (0x00 or 0xFF))
            {
                marker = data[i + 1];
                return i + 2;
            }
        }
        throw new EndOfStreamException("the file ends before its EOI marker");
    }

    public static bool IsRestart(int marker) => marker is >= 0xD0 and <= 0xD7;

    /// <summary>Whether a marker stands alone, without a length and a segment (SOI, EOI, RSTn, TEM).</summary>
    public static bool StandsAlone(int marker) => marker is Soi or Eoi or 0x01 || IsRestart(marker);

    public static string Name(int marker) => marker switch
    {
        Soi => "SOI",
        Eoi => "EOI",
        Sos => "SOS",
        Dqt => "DQT",
        Dht => "DHT",
        Dri => "DRI",
        Dnl => "DNL",
        Dac => "DAC",
        >= 0xD0 and <= 0xD7 => $"RST{marker - 0xD0}",
        >= 0xC0 and <= 0xCF => $"SOF{marker - 0xC0}",
        >= 0xE0 and <= 0xEF => $"APP{marker - 0xE0}",
        0xFE => "COM",
        _ => $"0xFF{marker:X2}",
    };

    /// <summary>What a start-of-frame marker other than SOF0-2 codes, with its article, for the message refusing it.</summary>
    public static string UnsupportedFrame(int marker) => marker switch
    {
        0xC3 => "a lossless",
        0xC5 or 0xC6 or 0xC7 => "a hierarchical (differential)",
        0xC8 => "a JPEG-extension (JPG)",
        0xC9 or 0xCA or 0xCB => "an arithmetic-coded",
        _ => "a hierarchical arithmetic-coded",
    };
}
