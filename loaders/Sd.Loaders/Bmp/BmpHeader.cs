using System.Buffers.Binary;
using Sd.Loaders.Png;

namespace Sd.Loaders.Bmp;

/// <summary>How Pillow unpacks a BMP's pixels (its raw mode), which sets the bits a pixel takes and what it gives.</summary>
internal enum BmpRawMode { Bilevel, Gray, Index1, Index4, Index8, Bgr15, Bgr16, Bgr, Bgrx, Xbgr, Abgr, Rgba, Bgra }

/// <summary>
/// A BMP's headers as Pillow 9.4's BmpImagePlugin reads them: the size, row order, depth, compression, the raw mode
/// its pixels unpack by, the palette (for palette pictures that are not gray) and where the pixels start.
/// Reference: Pillow's BmpImagePlugin.BmpImageFile._bitmap.
/// </summary>
internal sealed class BmpHeader
{
    /// <summary>Compression values Pillow reads: none, RLE8, RLE4, bitfields.</summary>
    public const int Raw = 0, Rle8 = 1, Rle4 = 2, Bitfields = 3;

    private BmpHeader(int width, int height, bool topDown, int bits, int compression, BmpRawMode rawMode, byte[]? palette, long offset)
    {
        (Width, Height, TopDown, Bits, Compression, RawMode, Palette, Offset) = (width, height, topDown, bits, compression, rawMode, palette, offset);
    }

    public int Width { get; }
    public int Height { get; }

    /// <summary>Rows stored top row first (a negative height); bottom row first otherwise.</summary>
    public bool TopDown { get; }

    /// <summary>The file's bits per pixel, which set its row stride.</summary>
    public int Bits { get; }
    public int Compression { get; }
    public BmpRawMode RawMode { get; }

    /// <summary>256 RGB entries: the file's colors, then Pillow's default gray ramp; null unless a palette picture.</summary>
    public byte[]? Palette { get; }

    /// <summary>Where the pixel data starts.</summary>
    public long Offset { get; }

    /// <summary>Pillow's image mode: 1 and L gray (1 channel), P and RGB RGB (3), RGBA (4).</summary>
    public int Channels => RawMode switch
    {
        BmpRawMode.Bilevel or BmpRawMode.Gray => 1,
        BmpRawMode.Abgr or BmpRawMode.Rgba or BmpRawMode.Bgra => 4,
        _ => 3,
    };

    public static BmpHeader Parse(byte[] data, string name)
    {
        if (data.Length < 18)
            throw Invalid(name, $"the file is {data.Length} bytes, shorter than a BMP's headers");
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(10));
        uint headerSize = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(14));
        if (headerSize is not (12 or 40 or 64 or 108 or 124))
            throw Invalid(name, $"unsupported BMP header size {headerSize} (Pillow reads 12, 40, 64, 108 and 124)");
        if (data.Length < 14 + headerSize)
            throw Invalid(name, $"the {headerSize}-byte BMP header runs past the end of the {data.Length}-byte file");
        ReadOnlySpan<byte> h = data.AsSpan(18, (int)headerSize - 4);
        long position = 14 + headerSize;
        long width, height;
        int bits, compression = Raw, paletteEntry = 4;
        bool topDown = false;
        long colors = 0;
        uint[]? masks = null;
        if (headerSize == 12)
        {
            (width, height, bits, paletteEntry) = (U16(h, 0), U16(h, 2), (int)U16(h, 6), 3);
        }
        else
        {
            // Pillow takes a height whose top byte is 0xFF as negative (rows top-down), any other as unsigned.
            topDown = h[7] == 0xFF;
            width = U32(h, 0);
            height = topDown ? (1L << 32) - U32(h, 4) : U32(h, 4);
            bits = (int)U16(h, 10);
            compression = (int)Math.Min(U32(h, 12), int.MaxValue);
            colors = U32(h, 28);
            if (compression == Bitfields)
            {
                // From a 64-byte header on, the masks are in it (Pillow reads them there whatever the header's kind);
                // a 40-byte header is followed by three (red, green, blue), and its alpha mask is 0.
                masks = new uint[4];
                if (h.Length >= 52)
                {
                    for (int i = 0; i < 4; i++)
                        masks[i] = (uint)U32(h, 36 + 4 * i);
                }
                else
                {
                    if (data.Length < position + 12)
                        throw Invalid(name, "the bitfield masks after the BMP header run past the end of the file");
                    for (int i = 0; i < 3; i++)
                        masks[i] = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan((int)position + 4 * i));
                    position += 12;
                }
            }
        }
        if (width == 0 || height == 0)
            throw Invalid(name, $"the BMP is {width}x{height}: a picture has pixels");
        PngFile.CheckPixelCount(name, width, height);
        if (colors == 0)
            colors = 1L << Math.Min(bits, 32);
        if (offset == 14 + headerSize && bits <= 8)
            offset += 4 * colors; // Pillow's: a data offset with no room for the palette is taken to leave it out
        BmpRawMode rawMode = bits switch
        {
            1 => BmpRawMode.Index1,
            4 => BmpRawMode.Index4,
            8 => BmpRawMode.Index8,
            16 => BmpRawMode.Bgr15,
            24 => BmpRawMode.Bgr,
            32 => BmpRawMode.Bgrx,
            _ => throw Invalid(name, $"unsupported BMP pixel depth {bits} (Pillow reads 1, 4, 8, 16, 24 and 32 bits)"),
        };
        switch (compression)
        {
            case Bitfields:
                rawMode = MaskedMode(bits, masks!) ?? throw Invalid(name,
                    $"unsupported BMP bitfields layout: {bits} bits with masks {string.Join(", ", Array.ConvertAll(masks!, m => $"0x{m:X}"))} (Pillow reads 32-bit BGRX, XBGR, ABGR, RGBA, BGRA, 24-bit BGR and 16-bit 5-6-5 and 5-5-5)");
                break;
            case Raw:
                break;
            case Rle8 or Rle4:
                if (bits > 8)
                    throw Invalid(name, $"RLE{(compression == Rle8 ? 8 : 4)} compression at {bits} bits a pixel: run-length BMPs are palette pictures (Pillow has no raw mode for it)");
                break;
            default:
                throw Invalid(name, $"unsupported BMP compression {compression} (Pillow reads none, RLE8, RLE4 and bitfields; JPEG and PNG inside a BMP are not read)");
        }
        byte[]? palette = null;
        if (bits <= 8)
        {
            if (colors > 256)
                throw Invalid(name, $"the BMP's palette has {colors} colors; a palette holds at most 256");
            // Pillow reads what the file holds of the palette: a table cut short (by the file's end) gives its whole
            // entries, and the rest of the 256 are its gray ramp.
            long paletteBytes = Math.Min(paletteEntry * colors, Math.Max(0, data.Length - position));
            ReadOnlySpan<byte> table = data.AsSpan((int)position, (int)paletteBytes);
            position += paletteBytes;
            if (paletteBytes == paletteEntry * colors && IsGrayRamp(table, (int)colors, paletteEntry))
                rawMode = colors == 2 ? BmpRawMode.Bilevel : BmpRawMode.Gray; // Pillow's modes 1 and L, read by bits too
            else
                palette = RgbPalette(table, table.Length / paletteEntry, paletteEntry);
        }
        if (offset == 0)
            offset = position; // Pillow's: no data offset, the data follows the palette
        return new BmpHeader((int)width, (int)height, topDown, bits, compression, rawMode, palette, offset);
    }

    /// <summary>Pillow's bitfields layouts (its MASK_MODES), by depth and masks; null for any other.</summary>
    private static BmpRawMode? MaskedMode(int bits, uint[] masks) => (bits, masks[0], masks[1], masks[2], masks[3]) switch
    {
        (32, 0xFF0000, 0xFF00, 0xFF, 0) => BmpRawMode.Bgrx,
        (32, 0xFF000000, 0xFF0000, 0xFF00, 0) => BmpRawMode.Xbgr,
        (32, 0xFF000000, 0xFF0000, 0xFF00, 0xFF) => BmpRawMode.Abgr,
        (32, 0xFF, 0xFF00, 0xFF0000, 0xFF000000) => BmpRawMode.Rgba,
        (32, 0xFF0000, 0xFF00, 0xFF, 0xFF000000) or (32, 0, 0, 0, 0) => BmpRawMode.Bgra,
        (24, 0xFF0000, 0xFF00, 0xFF, _) => BmpRawMode.Bgr,
        (16, 0xF800, 0x7E0, 0x1F, _) => BmpRawMode.Bgr16,
        (16, 0x7C00, 0x3E0, 0x1F, _) => BmpRawMode.Bgr15,
        _ => null,
    };

    /// <summary>
    /// Whether the palette is Pillow's gray one: entry i is (i, i, i), or for 2 colors black then white (its byte
    /// value wraps past 255, as Pillow's o8 does).
    /// </summary>
    private static bool IsGrayRamp(ReadOnlySpan<byte> table, int colors, int entry)
    {
        for (int i = 0; i < colors; i++)
        {
            byte value = (byte)(colors == 2 ? i * 255 : i);
            ReadOnlySpan<byte> bgr = table.Slice(i * entry, 3);
            if (bgr[0] != value || bgr[1] != value || bgr[2] != value)
                return false;
        }
        return true;
    }

    /// <summary>The palette as Pillow's P image holds it: 256 RGB entries, the file's <paramref name="colors"/> first,
    /// the rest its gray ramp.</summary>
    private static byte[] RgbPalette(ReadOnlySpan<byte> table, int colors, int entry)
    {
        var rgb = new byte[3 * 256];
        for (int i = 0; i < 256; i++)
        {
            bool stored = i < colors;
            rgb[3 * i] = stored ? table[i * entry + 2] : (byte)i;
            rgb[3 * i + 1] = stored ? table[i * entry + 1] : (byte)i;
            rgb[3 * i + 2] = stored ? table[i * entry] : (byte)i;
        }
        return rgb;
    }

    private static long U16(ReadOnlySpan<byte> h, int at) => BinaryPrimitives.ReadUInt16LittleEndian(h[at..]);

    private static long U32(ReadOnlySpan<byte> h, int at) => BinaryPrimitives.ReadUInt32LittleEndian(h[at..]);

    internal static InvalidFileException Invalid(string name, string problem) => new(name, problem);
}
