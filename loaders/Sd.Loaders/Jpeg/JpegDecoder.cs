using System.Buffers.Binary;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Loaders.Jpeg;

/// <summary>
/// Reads a whole JPEG file held in memory: markers and segments (tables, frame, scans, JFIF/Adobe color hints),
/// each scan's coefficients, then the pixels. Baseline and extended sequential (SOF0/SOF1) and progressive (SOF2)
/// Huffman-coded frames of 8-bit samples: gray, three components (YCbCr or RGB) or four (CMYK or YCCK); everything
/// else is refused by name.
/// Reference: ITU T.81; libjpeg's jdmarker.c and jdapimin.c for what it accepts and how it picks the color space.
/// </summary>
internal sealed class JpegDecoder
{
    private readonly byte[] _data;
    private readonly string _name;
    private readonly ushort[]?[] _quant = new ushort[4][];
    private readonly HuffmanTable?[] _dc = new HuffmanTable[4];
    private readonly HuffmanTable?[] _ac = new HuffmanTable[4];
    private readonly Dictionary<string, string> _text = new(StringComparer.Ordinal);
    private JpegFrame? _frame;
    private int _restartInterval;
    private bool _jfif;
    private int _adobeTransform = -1;
    private int _scans;
    private bool _exifRead;

    /// <summary>
    /// Most scans read. Each scan decodes every block of its components even from no data (past a marker the bits
    /// are zeros), so a small file of many empty scans could keep the decoder busy for hours; real files have at most
    /// a few dozen (libjpeg-turbo's fuzzing limit is 500).
    /// </summary>
    public const int MaxScans = 1000;

    public JpegDecoder(byte[] data, string name)
    {
        _data = data;
        _name = name;
    }

    /// <summary>The EXIF orientation (1-8, 1 when there is none): how the stored picture turns to stand upright.</summary>
    public int Orientation { get; private set; } = 1;

    /// <summary>Whether the size required of the picture is its upright size (EXIF orientation applied).</summary>
    public bool SizeUpright { get; init; }

    /// <param name="size">The size the picture must have, checked from the frame header before anything is decoded.</param>
    public PngImage Decode((int Width, int Height)? size)
    {
        if (_data.Length < 3 || _data[0] != 0xFF || _data[1] != JpegMarkers.Soi)
            throw Invalid("not a JPEG file (it does not start with the SOI marker)");
        int position = 2;
        while (true)
        {
            position = JpegMarkers.Next(_data, position, out int marker);
            if (marker == JpegMarkers.Eoi)
                return Finish();
            if (marker == JpegMarkers.Soi)
                throw Invalid("a second SOI marker inside the file");
            if (JpegMarkers.StandsAlone(marker))
                continue; // a stray RSTn or TEM: libjpeg skips it too
            if (position + 2 > _data.Length)
                throw Invalid($"truncated: the file ends inside the {JpegMarkers.Name(marker)} segment's length");
            int length = BinaryPrimitives.ReadUInt16BigEndian(_data.AsSpan(position));
            if (length < 2 || position + length > _data.Length)
            {
                throw Invalid($"the {JpegMarkers.Name(marker)} segment declares {length} bytes, but " +
                              $"{(length < 2 ? "a length counts its own 2 bytes" : $"only {_data.Length - position} remain")}");
            }
            ReadOnlySpan<byte> segment = _data.AsSpan(position + 2, length - 2);
            position += length;
            switch (marker)
            {
                case 0xC0 or 0xC1 or 0xC2:
                    ReadFrame(segment, progressive: marker == 0xC2, size);
                    break;
                case >= 0xC3 and <= 0xCF and not JpegMarkers.Dht and not JpegMarkers.Dac:
                    throw Invalid($"{JpegMarkers.UnsupportedFrame(marker)} JPEG ({JpegMarkers.Name(marker)}); only baseline, " +
                                  "extended sequential and progressive Huffman-coded JPEGs are read");
                case JpegMarkers.Dac:
                    throw Invalid("an arithmetic-coded JPEG (DAC); only Huffman-coded JPEGs are read");
                case JpegMarkers.Dht:
                    ReadHuffmanTables(segment);
                    break;
                case JpegMarkers.Dqt:
                    ReadQuantizationTables(segment);
                    break;
                case JpegMarkers.Dri:
                    if (segment.Length != 2)
                        throw Invalid($"the DRI segment has {segment.Length} bytes, expected 2");
                    _restartInterval = BinaryPrimitives.ReadUInt16BigEndian(segment);
                    break;
                case JpegMarkers.Dnl:
                    throw Invalid("a DNL marker (the height given after the image data) is not supported");
                case JpegMarkers.Sos:
                    position = ReadScan(segment, position);
                    break;
                case 0xE0 when segment.StartsWith("JFIF\0"u8):
                    _jfif = true;
                    break;
                case 0xEE when segment.Length >= 12 && segment.StartsWith("Adobe"u8):
                    _adobeTransform = segment[11];
                    break;
                case 0xE1 when segment.StartsWith("Exif\0\0"u8) && !_exifRead:
                    // Only the first Exif segment counts, as in Pillow.
                    Orientation = ExifReader.Read(segment, _text) ?? 1;
                    _exifRead = true;
                    break;
            }
        }
    }

    private void ReadFrame(ReadOnlySpan<byte> segment, bool progressive, (int Width, int Height)? size)
    {
        if (_frame != null)
            throw Invalid("a second frame header (SOF); only single-frame JPEGs are read");
        if (segment.Length < 6)
            throw Invalid($"the frame header (SOF) has {segment.Length} bytes, at least 6 are needed");
        int precision = segment[0], height = BinaryPrimitives.ReadUInt16BigEndian(segment[1..]);
        int width = BinaryPrimitives.ReadUInt16BigEndian(segment[3..]), count = segment[5];
        if (precision != 8)
            throw Invalid($"a {precision}-bit JPEG; only 8-bit samples are read");
        if (height == 0)
            throw Invalid("the frame header gives height 0 (a height in a DNL marker is not supported)");
        if (width == 0)
            throw Invalid("the frame header gives width 0");
        if (count is not (1 or 3 or 4))
            throw Invalid($"the frame has {count} components; gray (1), color (3) and CMYK or YCCK (4) JPEGs are read");
        if (segment.Length != 6 + 3 * count)
            throw Invalid($"the frame header (SOF) has {segment.Length} bytes; {count} components need {6 + 3 * count}");
        PngFile.CheckPixelCount(_name, width, height);
        if (size is { } needed)
            ExifOrientation.CheckSize(_name, width, height, Orientation, SizeUpright, needed);

        var components = new JpegComponent[count];
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> c = segment.Slice(6 + 3 * i, 3);
            int h = c[1] >> 4, v = c[1] & 15;
            if (h is < 1 or > 4 || v is < 1 or > 4 || c[2] > 3)
                throw Invalid($"frame component {i} has sampling {h}x{v} and quantization table {c[2]}; 1-4 and 0-3 are valid");
            for (int j = 0; j < i; j++)
            {
                if (components[j].Id == c[0])
                    throw Invalid($"two frame components have the id {c[0]}");
            }
            components[i] = new JpegComponent { Id = c[0], H = h, V = v, QuantSlot = c[2] };
        }
        var frame = new JpegFrame { Width = width, Height = height, Progressive = progressive, Components = components };
        foreach (JpegComponent c in components)
        {
            if (frame.MaxH % c.H != 0 || frame.MaxV % c.V != 0)
            {
                throw Invalid($"component {c.Id} is sampled {c.H}x{c.V} in a frame of {frame.MaxH}x{frame.MaxV}: " +
                              "fractional sampling (not dividing the largest factor) is not supported, as in libjpeg");
            }
        }
        frame.Layout(); // allocates the coefficients, so only once the frame is known to be readable
        _frame = frame;
    }

    private void ReadQuantizationTables(ReadOnlySpan<byte> segment)
    {
        while (segment.Length > 0)
        {
            int precision = segment[0] >> 4, slot = segment[0] & 15;
            int bytes = 1 + 64 * (precision + 1);
            if (precision > 1 || slot > 3)
                throw Invalid($"a quantization table (DQT) with precision {precision} and slot {slot}; 0-1 and 0-3 are valid");
            if (segment.Length < bytes)
                throw Invalid($"quantization table {slot} needs {bytes} bytes, the DQT segment has {segment.Length} left");
            var table = new ushort[64];
            for (int k = 0; k < 64; k++)
            {
                table[ScanDecoder.Natural(k)] = precision == 0
                    ? segment[1 + k]
                    : BinaryPrimitives.ReadUInt16BigEndian(segment[(1 + 2 * k)..]);
            }
            _quant[slot] = table;
            segment = segment[bytes..];
        }
    }

    private void ReadHuffmanTables(ReadOnlySpan<byte> segment)
    {
        while (segment.Length > 0)
        {
            int kind = segment[0] >> 4, slot = segment[0] & 15;
            if (kind > 1 || slot > 3)
                throw Invalid($"a Huffman table (DHT) of class {kind} in slot {slot}; 0-1 and 0-3 are valid");
            if (segment.Length < 17)
                throw Invalid("a Huffman table (DHT) is cut short inside its 16 code counts");
            ReadOnlySpan<byte> counts = segment.Slice(1, 16);
            int total = 0;
            foreach (byte n in counts)
                total += n;
            if (total > 256 || segment.Length < 17 + total)
                throw Invalid($"Huffman table {slot} has {total} symbols: more than 256, or more than the DHT segment holds");
            ReadOnlySpan<byte> symbols = segment.Slice(17, total);
            if (kind == 0)
            {
                foreach (byte s in symbols)
                {
                    if (s > 15)
                        throw Invalid($"DC Huffman table {slot} has the symbol {s}; DC difference sizes are 0-15");
                }
            }
            try
            {
                (kind == 0 ? _dc : _ac)[slot] = new HuffmanTable(counts, symbols);
            }
            catch (FormatException e)
            {
                throw Invalid($"{(kind == 0 ? "DC" : "AC")} Huffman table {slot} is invalid: {e.Message}");
            }
            segment = segment[(17 + total)..];
        }
    }

    /// <summary>Reads a scan header and decodes the scan's data; returns where its data stopped.</summary>
    private int ReadScan(ReadOnlySpan<byte> segment, int position)
    {
        JpegFrame frame = _frame ?? throw Invalid("a scan (SOS) before the frame header (SOF)");
        if (_scans == MaxScans)
            throw Invalid($"more than {MaxScans} scans; real JPEGs have a few dozen at most");
        int count = segment.Length > 0 ? segment[0] : 0;
        if (count is < 1 or > 4 || segment.Length != 4 + 2 * count)
            throw Invalid($"the scan header (SOS) has {segment.Length} bytes for {count} components; 1-4 components in {4 + 2 * count} bytes are valid");
        int ss = segment[1 + 2 * count], se = segment[2 + 2 * count];
        int ah = segment[3 + 2 * count] >> 4, al = segment[3 + 2 * count] & 15;
        var components = new JpegComponent[count];
        var dc = new HuffmanTable?[count];
        var ac = new HuffmanTable?[count];
        int blocksInMcu = 0;
        bool needsDc = !frame.Progressive || (ss == 0 && ah == 0), needsAc = !frame.Progressive || ss > 0;
        for (int i = 0; i < count; i++)
        {
            int id = segment[1 + 2 * i];
            JpegComponent c = Array.Find(frame.Components, f => f.Id == id)
                ?? throw Invalid($"scan {_scans} names component {id}, which the frame does not have");
            if (Array.IndexOf(components, c) >= 0)
                throw Invalid($"scan {_scans} names component {id} twice");
            components[i] = c;
            blocksInMcu += c.H * c.V;
            BindQuantization(c);
            int tables = segment[2 + 2 * i];
            if (tables >> 4 > 3 || (tables & 15) > 3)
                throw Invalid($"scan {_scans} gives component {id} Huffman tables {tables >> 4}/{tables & 15}; 0-3 are valid");
            dc[i] = _dc[tables >> 4];
            ac[i] = _ac[tables & 15];
            if ((needsDc && dc[i] == null) || (needsAc && ac[i] == null))
                throw Invalid($"scan {_scans} uses a Huffman table that no DHT defined");
        }
        if (count > 1 && blocksInMcu > 10)
            throw Invalid($"scan {_scans} interleaves {blocksInMcu} blocks per MCU; the limit is 10");
        var scan = new JpegScan { Components = components, Dc = dc, Ac = ac, Ss = ss, Se = se, Ah = ah, Al = al };
        CheckProgression(frame, scan);
        try
        {
            position = ScanDecoder.Decode(_data, position, frame, scan, _restartInterval);
        }
        catch (Exception e) when (e is FormatException or EndOfStreamException)
        {
            throw new InvalidFileException(_name, $"scan {_scans} is corrupt or truncated: {e.Message}", e);
        }
        _scans++;
        return position;
    }

    /// <summary>
    /// Scan parameters the frame type allows; each component of a sequential frame in one scan; for progressive
    /// frames each coefficient's bits coded in order: a first scan before refinements, each refinement one bit below
    /// the last (T.81 G.1.1.1.1). libjpeg only warns on the order; a file breaking it has no well-defined picture, so
    /// it is refused (and a scan coding nothing new cannot make a small file decode the picture again and again).
    /// </summary>
    private void CheckProgression(JpegFrame frame, JpegScan scan)
    {
        if (!frame.Progressive)
        {
            if (scan.Ss != 0 || scan.Se != 63 || scan.Ah != 0 || scan.Al != 0)
                throw Invalid($"sequential scan {_scans} codes coefficients {scan.Ss}-{scan.Se}, bits {scan.Ah}/{scan.Al}; it must code 0-63 whole");
            foreach (JpegComponent c in scan.Components)
            {
                if (c.CodedFromBit[0] == 0)
                    throw Invalid($"sequential scan {_scans} codes component {c.Id} again; each is coded in one scan");
                c.CodedFromBit.AsSpan().Clear(); // all bits of every coefficient
            }
            return;
        }
        bool bad = scan.Ss == 0 ? scan.Se != 0 : scan.Ss > scan.Se || scan.Se > 63 || scan.Components.Length != 1;
        if (bad || (scan.Ah != 0 && scan.Al != scan.Ah - 1) || scan.Al > 13)
            throw Invalid($"progressive scan {_scans} has coefficients {scan.Ss}-{scan.Se}, bits {scan.Ah}/{scan.Al} over {scan.Components.Length} components, which T.81 does not allow");
        foreach (JpegComponent c in scan.Components)
        {
            if (scan.Ss > 0 && c.CodedFromBit[0] < 0)
                throw Invalid($"progressive scan {_scans} codes AC coefficients of component {c.Id} before its DC");
            for (int k = scan.Ss; k <= scan.Se; k++)
            {
                // Never coded: a first scan (Ah 0). Coded down to bit b: a refinement of it (Ah = b, so b > 0).
                int coded = c.CodedFromBit[k];
                if (coded < 0 ? scan.Ah != 0 : scan.Ah != coded || coded == 0)
                    throw Invalid($"progressive scan {_scans} refines coefficient {k} of component {c.Id} out of order");
                c.CodedFromBit[k] = scan.Al;
            }
        }
    }

    private PngImage Finish()
    {
        JpegFrame frame = _frame ?? throw Invalid("the file has no frame header (SOF) before EOI");
        if (_scans == 0)
            throw Invalid("the file has no image data (no scan before EOI)");
        foreach (JpegComponent c in frame.Components)
            BindQuantization(c); // a component no scan coded still needs its table for the IDCT
        return JpegPixels.ToImage(frame, ColorSpace(frame), _text);
    }

    /// <summary>Binds the component's quantization table as it stands when the component is first used (libjpeg's
    /// latch_quant_tables: a later DQT for the slot does not change it).</summary>
    private void BindQuantization(JpegComponent c) =>
        c.Quant ??= _quant[c.QuantSlot] ?? throw Invalid($"component {c.Id} uses quantization table {c.QuantSlot}, which no DQT defined");

    /// <summary>
    /// What the components hold, decided as libjpeg decides it (jdapimin.c). Three: JFIF means YCbCr, an Adobe
    /// marker's transform 0 means RGB (any other YCbCr), else component ids 'R', 'G', 'B' mean RGB. Four: an Adobe
    /// marker's transform 0 means CMYK and any other YCCK; without the marker, CMYK.
    /// </summary>
    private JpegColor ColorSpace(JpegFrame frame)
    {
        JpegComponent[] c = frame.Components;
        if (c.Length == 1)
            return JpegColor.Gray;
        if (c.Length == 4)
            return _adobeTransform is < 0 or 0 ? JpegColor.Cmyk : JpegColor.Ycck;
        if (_jfif)
            return JpegColor.YCbCr;
        if (_adobeTransform >= 0)
            return _adobeTransform == 0 ? JpegColor.Rgb : JpegColor.YCbCr;
        return c[0].Id == 'R' && c[1].Id == 'G' && c[2].Id == 'B' ? JpegColor.Rgb : JpegColor.YCbCr;
    }

    private InvalidFileException Invalid(string problem) => new(_name, problem);
}
