using Sd.Loaders.IO;
using Sd.Loaders.Pictures;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Sd.Loaders.Png;

/// <summary>
/// Reads and writes 8-bit gray, RGB and RGBA non-interlaced PNGs with text metadata (tEXt for Latin-1 text, iTXt for
/// any other Unicode, as PIL writes them) — what Sd generates and what reference images use. Reading also takes the
/// other formats (palette, gray+alpha, 1- to 16-bit samples, Adam7 interlacing), decoded to 8-bit gray, RGB or RGBA
/// as Pillow reads them (<see cref="PngPixels"/>), upright by their EXIF orientation when asked (<see cref="PngExif"/>).
/// Reading is strict: every chunk's CRC is checked, sizes are validated before anything is allocated, and any problem
/// is an <see cref="InvalidFileException"/> naming the file and what was wrong.
/// </summary>
public static class PngFile
{
    /// <summary>Largest width or height read; larger is almost certainly a corrupt or hostile file.</summary>
    public const int MaxDimension = 65535;

    /// <summary>Largest width * height read (256 Mpixel, at most 1 GiB of RGBA).</summary>
    public const long MaxPixels = 1L << 28;

    private static readonly byte[] Signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Writers conventionally split image data into chunks of a few KiB to 1 MiB; any size is valid.</summary>
    private const int IdatChunkSize = 1 << 16;

    public static PngImage Read(string path) => ReadFile(path, null, upright: false);

    /// <summary>Whether a file's first bytes (see <see cref="InputFile.ReadHead"/>) are PNG's signature.</summary>
    public static bool HasSignature(ReadOnlySpan<byte> head) => head.StartsWith(Signature);

    /// <summary>
    /// Reads a picture that must be <paramref name="width"/> x <paramref name="height"/> (an init image or mask of a
    /// requested size): a picture of another size is refused from its header, before anything is decoded, since a
    /// file of a megabyte can declare gigabytes of pixels.
    /// </summary>
    public static PngImage Read(string path, int width, int height) => ReadFile(path, (width, height), upright: false);

    /// <summary>
    /// Reads the picture turned upright by its EXIF orientation (<see cref="ExifOrientation"/>; found as
    /// <see cref="PngExif"/> says); a required <paramref name="size"/> is the upright size.
    /// </summary>
    public static PngImage ReadUpright(string path, (int Width, int Height)? size = null) => ReadFile(path, size, upright: true);

    /// <summary>The picture, of <paramref name="size"/> when given (upright when <paramref name="upright"/>).</summary>
    internal static PngImage ReadFile(string path, (int Width, int Height)? size, bool upright)
    {
        InputFile.Check(path, "PNG file");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        return Read(stream, path, size, upright);
    }

    /// <param name="nameForErrors">The file name put in error messages.</param>
    public static PngImage Read(Stream stream, string nameForErrors) => Read(stream, nameForErrors, null, upright: false);

    private static PngImage Read(Stream stream, string nameForErrors, (int Width, int Height)? size, bool upright)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(nameForErrors);
        string name = nameForErrors;

        Span<byte> signature = stackalloc byte[Signature.Length];
        int got = stream.ReadAtLeast(signature, signature.Length, throwOnEndOfStream: false);
        if (got == 0)
            throw Invalid(name, "not a PNG file (the file is empty)");
        if (!HasSignature(signature[..got]))
            throw Invalid(name, "not a PNG file (bad signature)");

        Header header = default;
        MemoryStream? idat = null;
        byte[]? palette = null, paletteAlpha = null, exif = null;
        bool idatFinished = false;
        var text = new Dictionary<string, string>(StringComparer.Ordinal);
        int inflateBudget = PngText.MaxInflatedText;
        Span<byte> chunkHeader = stackalloc byte[8];
        for (int index = 0; ; index++)
        {
            got = stream.ReadAtLeast(chunkHeader, chunkHeader.Length, throwOnEndOfStream: false);
            if (got == 0 && index == 0)
                throw Invalid(name, "truncated: the file ends right after the PNG signature, before IHDR");
            if (got == 0)
                throw Invalid(name, $"missing IEND chunk: the file ends after {index} chunks");
            if (got < chunkHeader.Length)
                throw Invalid(name, "truncated chunk header at the end of the file");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(chunkHeader);
            ReadOnlySpan<byte> typeBytes = chunkHeader[4..];
            foreach (byte b in typeBytes)
            {
                if (!char.IsAsciiLetter((char)b))
                    throw Invalid(name, $"chunk {index} has an invalid type 0x{BinaryPrimitives.ReadUInt32BigEndian(typeBytes):X8}");
            }
            string type = Encoding.ASCII.GetString(typeBytes);
            if (length > int.MaxValue)
                throw Invalid(name, $"chunk '{type}' declares {length} bytes, more than the PNG limit of 2^31-1");
            if (stream.CanSeek && length + 4L > stream.Length - stream.Position)
            {
                throw Invalid(name, $"truncated chunk '{type}': it declares {length} data bytes and a 4-byte CRC, " +
                                    $"but only {stream.Length - stream.Position} bytes remain");
            }
            if (index == 0 && type != "IHDR")
                throw Invalid(name, $"the first chunk is '{type}', but a PNG must start with IHDR");
            if (idat != null && type != "IDAT")
                idatFinished = true;

            switch (type)
            {
                case "IHDR":
                    if (index != 0)
                        throw Invalid(name, "duplicate IHDR chunk");
                    if (length != 13)
                        throw Invalid(name, $"IHDR chunk is {length} bytes, expected 13");
                    header = ParseHeader(ReadChunkData(stream, name, type, typeBytes, 13), name);
                    // The orientation may come after the image data, so an upright read refuses here only a size
                    // that neither way up fits, and checks it exactly at IEND.
                    if (size is { } needed && (header.Width, header.Height) != needed && !(upright && (header.Height, header.Width) == needed))
                        ExifOrientation.CheckSize(name, header.Width, header.Height, 1, upright: false, needed);
                    break;
                case "IDAT":
                    if (idatFinished)
                        throw Invalid(name, "IDAT chunks are not consecutive");
                    idat ??= new MemoryStream();
                    // Even incompressible data stored by a poor encoder stays well under twice the raw size; the
                    // cap bounds memory for a stream that keeps sending image data.
                    if (idat.Length + length > header.RawLength * 2L + (1 << 20))
                    {
                        throw Invalid(name, $"IDAT data exceeds {header.RawLength * 2L + (1 << 20)} bytes, far more " +
                                            $"than a {header.Describe()} image can need");
                    }
                    idat.Write(ReadChunkData(stream, name, type, typeBytes, (int)length));
                    break;
                case "eXIf":
                    exif = ReadChunkData(stream, name, type, typeBytes, (int)length); // the last one counts, as in Pillow
                    break;
                case "tEXt":
                    PngText.AddText(ReadChunkData(stream, name, type, typeBytes, (int)length), text, name);
                    break;
                case "iTXt":
                    PngText.AddInternationalText(ReadChunkData(stream, name, type, typeBytes, (int)length), text, ref inflateBudget, name);
                    break;
                case "zTXt":
                    PngText.AddCompressedText(ReadChunkData(stream, name, type, typeBytes, (int)length), text, ref inflateBudget, name);
                    break;
                case "PLTE" when header.ColorType == 3:
                    if (palette != null || idat != null)
                        throw Invalid(name, palette != null ? "duplicate PLTE chunk" : "the PLTE chunk comes after the image data");
                    if (length == 0 || length % 3 != 0 || length > 256 * 3)
                        throw Invalid(name, $"PLTE chunk is {length} bytes; a palette is 1 to 256 RGB triples");
                    palette = ReadChunkData(stream, name, type, typeBytes, (int)length);
                    break;
                case "tRNS" when header.ColorType == 3:
                    if (palette == null || idat != null || paletteAlpha != null)
                        throw Invalid(name, "the tRNS chunk must come once, after PLTE and before the image data");
                    if (length > palette.Length / 3)
                        throw Invalid(name, $"tRNS chunk has {length} alpha values for a palette of {palette.Length / 3}");
                    paletteAlpha = ReadChunkData(stream, name, type, typeBytes, (int)length);
                    break;
                case "IEND":
                    if (length != 0)
                        throw Invalid(name, $"IEND chunk has {length} data bytes, expected 0");
                    ReadChunkData(stream, name, type, typeBytes, 0);
                    // Bytes after IEND are not part of the image; like other decoders, ignore them.
                    int orientation = PngExif.Orientation(exif, text);
                    if (upright && size is { } required) // a plain read's size was checked exactly at IHDR
                        ExifOrientation.CheckSize(name, header.Width, header.Height, orientation, upright: true, required);
                    PngImage image = Decode(header, idat, palette, paletteAlpha, text, name);
                    return upright ? ExifOrientation.Apply(image, orientation) : image;
                default:
                    // Bit 5 of the first letter (lowercase) marks a chunk as ancillary: safe to skip (tRNS of gray
                    // and RGB pictures too: Pillow's convert("RGB") drops it). Critical chunks other than PLTE (a
                    // palette suggestion for RGB) change how pixels decode.
                    if (char.IsAsciiLetterUpper(type[0]) && type != "PLTE")
                        throw Invalid(name, $"unsupported critical chunk '{type}'");
                    ReadChunkData(stream, name, type, typeBytes, (int)length); // still CRC-checked
                    break;
            }
        }
    }

    /// <summary>
    /// Writes atomically: the bytes go to a temporary file in the same directory that then replaces
    /// <paramref name="path"/>, so a crash or error never leaves a half-written image behind.
    /// </summary>
    /// <exception cref="ArgumentException">A text keyword or value cannot be stored in a PNG text chunk.</exception>
    public static void Write(string path, PngImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        AtomicFile.Write(path, stream => Write(stream, image));
    }

    /// <summary>
    /// Writes IHDR, one text chunk per text entry (in the dictionary's order: tEXt when the value is Latin-1, else
    /// uncompressed iTXt in UTF-8), IDAT and IEND.
    /// </summary>
    /// <exception cref="ArgumentException">A text keyword or value cannot be stored in a PNG text chunk.</exception>
    public static void Write(Stream stream, PngImage image)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(image);
        PngText.Validate(image);
        if ((long)image.Height * (1 + (long)image.Width * image.Channels) > Array.MaxLength)
            throw new ArgumentException($"a {image.Width}x{image.Height} image is too large to encode", nameof(image));

        stream.Write(Signature);

        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, image.Width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], image.Height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = ColorType(image.Channels);
        // ihdr[10..13] stay 0: deflate compression, adaptive filtering, no interlace.
        WriteChunk(stream, "IHDR"u8, ihdr);

        foreach (var (keyword, value) in image.Text)
        {
            (byte[] type, byte[] chunk) = PngText.Chunk(keyword, value);
            WriteChunk(stream, type, chunk);
        }

        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(PngFilters.Filter(image.Pixels, image.Width, image.Height, image.Channels));
        ReadOnlySpan<byte> data = compressed.GetBuffer().AsSpan(0, (int)compressed.Length);
        for (int offset = 0; offset < data.Length; offset += IdatChunkSize)
            WriteChunk(stream, "IDAT"u8, data.Slice(offset, Math.Min(IdatChunkSize, data.Length - offset)));

        WriteChunk(stream, "IEND"u8, []);
    }

    private static void WriteChunk(Stream stream, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(buffer, data.Length);
        stream.Write(buffer);
        stream.Write(type);
        stream.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(buffer, Crc32.Update(Crc32.Compute(type), data));
        stream.Write(buffer);
    }

    private static byte ColorType(int channels) => channels switch
    {
        1 => 0,
        3 => 2,
        _ => 6,
    };

    /// <summary>
    /// Reads a chunk's data and CRC (the chunk length and type were already read) and verifies the CRC over type and
    /// data. The buffer grows as data arrives, so a lying length on a non-seekable stream allocates nothing extra.
    /// </summary>
    private static byte[] ReadChunkData(Stream stream, string name, string type, ReadOnlySpan<byte> typeBytes, int length)
    {
        var data = new byte[Math.Min(length, stream.CanSeek ? length : 1 << 20)];
        int filled = 0;
        while (filled < length)
        {
            if (filled == data.Length)
                Array.Resize(ref data, (int)Math.Min(length, data.Length * 2L));
            int n = stream.Read(data, filled, data.Length - filled);
            if (n == 0)
                throw Invalid(name, $"truncated chunk '{type}': expected {length} data bytes, the file has {filled}");
            filled += n;
        }
        Span<byte> crcBytes = stackalloc byte[4];
        if (stream.ReadAtLeast(crcBytes, crcBytes.Length, throwOnEndOfStream: false) < crcBytes.Length)
            throw Invalid(name, $"truncated chunk '{type}': the file ends before its CRC");
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(crcBytes);
        uint computed = Crc32.Update(Crc32.Compute(typeBytes), data);
        if (stored != computed)
        {
            throw Invalid(name,
                $"CRC mismatch in chunk '{type}' (stored 0x{stored:X8}, computed 0x{computed:X8}): the file is corrupt");
        }
        return data;
    }

    private static Header ParseHeader(ReadOnlySpan<byte> ihdr, string name)
    {
        uint width = BinaryPrimitives.ReadUInt32BigEndian(ihdr);
        uint height = BinaryPrimitives.ReadUInt32BigEndian(ihdr[4..]);
        byte bitDepth = ihdr[8], colorType = ihdr[9], compression = ihdr[10], filter = ihdr[11], interlace = ihdr[12];

        if (width == 0 || height == 0)
            throw Invalid(name, $"invalid IHDR: image size {width}x{height} has a zero dimension");
        if (width > MaxDimension || height > MaxDimension)
        {
            throw Invalid(name,
                $"image size {width}x{height} is too large: each dimension may be at most {MaxDimension}");
        }
        CheckPixelCount(name, width, height);
        if (compression != 0)
            throw Invalid(name, $"invalid IHDR: unknown compression method {compression}");
        if (filter != 0)
            throw Invalid(name, $"invalid IHDR: unknown filter method {filter}");
        if (interlace > 1)
            throw Invalid(name, $"invalid IHDR: unknown interlace method {interlace}");
        if (!PngPixels.IsValid(colorType, bitDepth))
        {
            throw Invalid(name,
                $"invalid IHDR: bit depth {bitDepth} with color type {colorType} ({ColorTypeName(colorType)}) is not a PNG format");
        }
        var header = new Header((int)width, (int)height, colorType, bitDepth, interlace == 1);
        if (header.RawLength > Array.MaxLength)
            throw Invalid(name, $"a {header.Describe()} image is too large: {header.RawLength} bytes of rows");
        return header;
    }

    /// <summary>Refuses a picture of more than <see cref="MaxPixels"/> pixels (the PNG and WebP readers' check on a
    /// header's size, before any pixel memory is taken).</summary>
    internal static void CheckPixelCount(string name, long width, long height)
    {
        if (width * height > MaxPixels)
            throw Invalid(name, $"image size {width}x{height} is too large: {width * height} pixels, at most {MaxPixels} supported");
    }

    private static string ColorTypeName(byte colorType) => colorType switch
    {
        0 => "gray",
        2 => "RGB",
        3 => "palette",
        4 => "gray+alpha",
        6 => "RGBA",
        _ => "unknown",
    };

    /// <summary>
    /// Inflates the concatenated IDAT data into exactly the expected size and reverses the row filters. The buffer
    /// grows with the data (from <see cref="InitialInflateBytes"/>, doubling), so a small file whose header claims a
    /// huge image fails on its data before it costs the image's memory.
    /// </summary>
    private static PngImage Decode(Header header, MemoryStream? idat, byte[]? palette, byte[]? paletteAlpha, Dictionary<string, string> text,
        string name)
    {
        if (idat == null)
            throw Invalid(name, "no IDAT chunk: the file has no image data");
        if (header.ColorType == 3 && palette == null)
            throw Invalid(name, "a palette image without a PLTE chunk");

        var raw = new byte[(int)Math.Min(header.RawLength, InitialInflateBytes)];
        int inflated = 0;
        bool extra = false;
        idat.Position = 0;
        try
        {
            using var zlib = new ZLibStream(idat, CompressionMode.Decompress);
            while (true)
            {
                inflated += zlib.ReadAtLeast(raw.AsSpan(inflated), raw.Length - inflated, throwOnEndOfStream: false);
                if (inflated < raw.Length || raw.Length == header.RawLength)
                    break;
                Array.Resize(ref raw, (int)Math.Min(2L * raw.Length, header.RawLength));
            }
            // One byte more is all it takes to know the data is too long, so a decompression bomb costs nothing.
            extra = inflated == header.RawLength && zlib.ReadByte() != -1;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            // InvalidDataException for bad deflate data, ZLibException (an IOException) for a bad zlib header.
            throw new InvalidFileException(name, $"image data (IDAT) is corrupt or truncated: {e.Message}", e);
        }
        if (inflated < header.RawLength)
        {
            throw Invalid(name, $"image data (IDAT) is truncated: it inflates to {inflated} bytes, " +
                                $"a {header.Describe()} image needs {header.RawLength}");
        }
        if (extra)
            throw Invalid(name, $"image data (IDAT) inflates to more than the {header.RawLength} bytes a {header.Describe()} image needs");

        int channels = PngPixels.Channels(header.ColorType, paletteAlpha != null);
        if (!header.Interlaced)
        {
            byte[] pixels = DecodeRows(raw, header, header.Width, header.Height, channels, palette, paletteAlpha, name);
            return new PngImage(header.Width, header.Height, channels, pixels, text);
        }
        var picture = new byte[(long)header.Width * header.Height * channels];
        int offset = 0;
        foreach (Adam7.Pass pass in Adam7.Passes)
        {
            (int width, int height) = pass.Size(header.Width, header.Height);
            if (width == 0 || height == 0)
                continue; // an empty pass stores no rows, not even filter bytes
            byte[] pixels = DecodeRows(raw.AsSpan(offset), header, width, height, channels, palette, paletteAlpha, name);
            Adam7.Scatter(pixels, pass, width, height, picture, header.Width, channels);
            offset += (int)header.ScanlineBytes(width, height);
        }
        return new PngImage(header.Width, header.Height, channels, picture, text);
    }

    /// <summary>
    /// Unfilters a (reduced) picture's rows from <paramref name="raw"/> and makes them <paramref name="channels"/>-channel
    /// 8-bit pixels: straight into them for 8-bit gray, RGB and RGBA, through <see cref="PngPixels.Expand"/> otherwise.
    /// </summary>
    private static byte[] DecodeRows(ReadOnlySpan<byte> raw, Header header, int width, int height, int channels, byte[]? palette,
        byte[]? paletteAlpha, string name)
    {
        int rowBytes = header.RowBytes(width);
        if (PngPixels.IsDirect(header.ColorType, header.BitDepth))
        {
            var pixels = new byte[(long)width * height * channels];
            PngFilters.Unfilter(raw, pixels, rowBytes, height, header.FilterBpp, name);
            return pixels;
        }
        var rows = new byte[(long)rowBytes * height];
        PngFilters.Unfilter(raw, rows, rowBytes, height, header.FilterBpp, name);
        return PngPixels.Expand(rows, rowBytes, width, height, header.ColorType, header.BitDepth, channels, palette, paletteAlpha ?? []);
    }

    private static InvalidFileException Invalid(string name, string problem) => new(name, problem);

    /// <summary>The inflate buffer's first size, 1 MiB: a 512x512 RGB image's filtered rows fit without growing it.</summary>
    private const int InitialInflateBytes = 1 << 20;

    private readonly record struct Header(int Width, int Height, byte ColorType, byte BitDepth, bool Interlaced)
    {
        /// <summary>Bytes of one stored row of <paramref name="width"/> pixels: samples packed at the bit depth, whole bytes.</summary>
        public int RowBytes(int width) => (int)(((long)width * PngPixels.StoredSamples(ColorType) * BitDepth + 7) / 8);

        /// <summary>The filters' byte distance to the left neighbour: a pixel's bytes, at least 1.</summary>
        public int FilterBpp => Math.Max(1, PngPixels.StoredSamples(ColorType) * BitDepth / 8);

        /// <summary>Filtered scanlines of a (reduced) picture, a filter-type byte then the row each; none when it is empty.</summary>
        public long ScanlineBytes(int width, int height) => width == 0 ? 0 : height * (1L + RowBytes(width));

        /// <summary>The filtered scanlines of the picture, or of its seven passes.</summary>
        public long RawLength
        {
            get
            {
                if (!Interlaced)
                {
                    return ScanlineBytes(Width, Height);
                }
                long length = 0;
                foreach (Adam7.Pass pass in Adam7.Passes)
                {
                    (int width, int height) = pass.Size(Width, Height);
                    length += ScanlineBytes(width, height);
                }
                return length;
            }
        }

        public string Describe() =>
            $"{Width}x{Height} {ColorTypeName(ColorType)}{(BitDepth == 8 ? "" : $" {BitDepth}-bit")}{(Interlaced ? " interlaced" : "")}";
    }
}

/// <summary>
/// The five PNG row filters (PNG spec section 9). Each predicts a byte from the reconstructed bytes to its left (a),
/// above (b) and above-left (c); the stored byte is the difference. Rows outside the image count as zeros.
/// </summary>
file static class PngFilters
{
    private const int FilterTypes = 5;

    /// <summary>
    /// Filters every row with the type that minimizes the sum of absolute (signed) differences — the heuristic the
    /// PNG spec and libpng recommend, since small values deflate well.
    /// </summary>
    public static byte[] Filter(byte[] pixels, int width, int height, int bpp)
    {
        int stride = width * bpp;
        var output = new byte[height * (stride + 1)];
        var zeros = new byte[stride];
        var trial = new byte[stride];
        var best = new byte[stride];
        for (int y = 0; y < height; y++)
        {
            ReadOnlySpan<byte> row = pixels.AsSpan(y * stride, stride);
            ReadOnlySpan<byte> prior = y == 0 ? zeros : pixels.AsSpan((y - 1) * stride, stride);
            long bestScore = long.MaxValue;
            int bestType = 0;
            for (int type = 0; type < FilterTypes; type++)
            {
                long score = 0;
                for (int i = 0; i < stride; i++)
                {
                    int a = i >= bpp ? row[i - bpp] : 0;
                    int c = i >= bpp ? prior[i - bpp] : 0;
                    byte filtered = (byte)(row[i] - Predict(type, a, prior[i], c));
                    trial[i] = filtered;
                    int signed = (sbyte)filtered;
                    score += signed < 0 ? -signed : signed;
                }
                if (score < bestScore)
                {
                    bestScore = score;
                    bestType = type;
                    (best, trial) = (trial, best);
                }
            }
            int start = y * (stride + 1);
            output[start] = (byte)bestType;
            best.CopyTo(output, start + 1);
        }
        return output;
    }

    /// <summary>
    /// Reverses the filters of <paramref name="raw"/> (type byte + row of <paramref name="stride"/> bytes, per row) into
    /// <paramref name="pixels"/>; <paramref name="bpp"/> is the byte distance to the left neighbour.
    /// </summary>
    public static void Unfilter(ReadOnlySpan<byte> raw, byte[] pixels, int stride, int height, int bpp, string name)
    {
        var zeros = new byte[stride];
        for (int y = 0; y < height; y++)
        {
            int start = y * (stride + 1);
            int type = raw[start];
            if (type >= FilterTypes)
                throw new InvalidFileException(name, $"row {y} has unknown filter type {type} (expected 0 to 4)");
            ReadOnlySpan<byte> source = raw.Slice(start + 1, stride);
            Span<byte> row = pixels.AsSpan(y * stride, stride);
            ReadOnlySpan<byte> prior = y == 0 ? zeros : pixels.AsSpan((y - 1) * stride, stride);
            for (int i = 0; i < stride; i++)
            {
                int a = i >= bpp ? row[i - bpp] : 0;
                int c = i >= bpp ? prior[i - bpp] : 0;
                row[i] = (byte)(source[i] + Predict(type, a, prior[i], c));
            }
        }
    }

    private static int Predict(int type, int a, int b, int c) => type switch
    {
        0 => 0,
        1 => a,
        2 => b,
        3 => (a + b) >> 1,
        _ => Paeth(a, b, c),
    };

    /// <summary>Picks whichever neighbour is closest to a + b - c, ties broken a, b, c as the spec requires.</summary>
    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
}
