using Sd.Loaders.IO;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Loaders.Bmp;

/// <summary>
/// Reads Windows BMP pictures to the pixels Pillow 9.4's Image.open gives, byte for byte: OS/2 (12- and 64-byte) and
/// Windows (40-, 108- and 124-byte) headers; 1-, 4- and 8-bit palettes, 16-bit 5-5-5, 24- and 32-bit pixels,
/// uncompressed, as bitfields (16-bit 5-6-5; 32-bit with an alpha mask gives RGBA) or run-length coded (RLE8, RLE4);
/// rows bottom-up, or top-down for a negative height. A palette of Pillow's gray ramp gives gray pixels (1 channel),
/// any other RGB. Pillow's quirks are kept (a black-and-white palette read at 1 bit a pixel whatever the depth, its
/// RLE4 odd runs). Other layouts are refused as Pillow refuses them, and so is any damage: an
/// <see cref="InvalidFileException"/> naming the file and the problem. BMPs carry no orientation or text.
/// Reference: Pillow's BmpImagePlugin (BmpImageFile, BmpRleDecoder) and its raw unpackers.
/// </summary>
public static class BmpFile
{
    /// <summary>Largest file read: the largest picture read at 32 bits a pixel, and its headers.</summary>
    public const long MaxFileBytes = 4 * PngFile.MaxPixels + (1 << 20);

    public static PngImage Read(string path) => ReadFile(path, null);

    /// <summary>Whether a file's first bytes are a BMP's: "BM".</summary>
    public static bool HasSignature(ReadOnlySpan<byte> head) => head.StartsWith("BM"u8);

    /// <summary>The picture, of <paramref name="size"/> when given, checked from the header before decoding.</summary>
    internal static PngImage ReadFile(string path, (int Width, int Height)? size)
    {
        byte[] data = InputFile.ReadAll(path, "BMP file", MaxFileBytes);
        BmpHeader header = BmpHeader.Parse(data, path);
        if (size is { } required)
            ExifOrientation.CheckSize(path, header.Width, header.Height, 1, false, required);
        return new PngImage(header.Width, header.Height, header.Channels, Decode(data, header, path));
    }

    private static byte[] Decode(byte[] data, BmpHeader header, string name)
    {
        if (header.Compression is BmpHeader.Rle8 or BmpHeader.Rle4)
        {
            if (header.RawMode == BmpRawMode.Bilevel)
                throw BmpHeader.Invalid(name, "a run-length BMP with a black-and-white palette (Pillow's mode 1 has no run-length raw mode)");
            byte[] indices = BmpRle.Decode(data, header.Offset, header.Width, header.Height, header.Compression == BmpHeader.Rle4, name);
            BmpRawMode mode = header.RawMode == BmpRawMode.Gray ? BmpRawMode.Gray : BmpRawMode.Index8;
            return Unpack(indices, 0, header.Width, header.Width, header, mode);
        }
        // Pillow's raw decoder: rows of the file's stride, each unpacked by the raw mode's own bits a pixel (which
        // must fit the stride), the last row's padding not needed.
        long stride = ((long)header.Width * header.Bits + 31) >> 3 & ~3L;
        long rowBytes = ((long)header.Width * BitsOf(header.RawMode) + 7) / 8;
        if (rowBytes > stride)
            throw BmpHeader.Invalid(name, $"a row of {header.Width} pixels takes {rowBytes} bytes as Pillow unpacks this palette, more than the file's {stride}-byte rows (Pillow's codec configuration error)");
        long needed = stride * (header.Height - 1) + rowBytes;
        if (header.Offset > data.Length || data.Length - header.Offset < needed)
            throw BmpHeader.Invalid(name, $"the pixel data ({needed} bytes from byte {header.Offset}) runs past the end of the {data.Length}-byte file");
        return Unpack(data, header.Offset, (int)stride, header.Width, header, header.RawMode);
    }

    private static int BitsOf(BmpRawMode mode) => mode switch
    {
        BmpRawMode.Bilevel or BmpRawMode.Index1 => 1,
        BmpRawMode.Index4 => 4,
        BmpRawMode.Gray or BmpRawMode.Index8 => 8,
        BmpRawMode.Bgr15 or BmpRawMode.Bgr16 => 16,
        BmpRawMode.Bgr => 24,
        _ => 32,
    };

    /// <summary>The rows from <paramref name="start"/>, <paramref name="stride"/> bytes apart, in picture order.</summary>
    private static byte[] Unpack(byte[] source, long start, int stride, int width, BmpHeader header, BmpRawMode mode)
    {
        int channels = header.Channels;
        var pixels = new byte[(long)width * header.Height * channels];
        for (int row = 0; row < header.Height; row++)
        {
            int y = header.TopDown ? row : header.Height - 1 - row;
            ReadOnlySpan<byte> line = source.AsSpan((int)(start + (long)row * stride));
            UnpackRow(line, pixels.AsSpan(y * width * channels, width * channels), width, mode, header.Palette);
        }
        return pixels;
    }

    /// <summary>One row by Pillow's unpacker for the raw mode; palette indices become the palette's RGB.</summary>
    private static void UnpackRow(ReadOnlySpan<byte> line, Span<byte> output, int width, BmpRawMode mode, byte[]? palette)
    {
        for (int x = 0; x < width; x++)
        {
            switch (mode)
            {
                case BmpRawMode.Bilevel:
                    output[x] = (line[x >> 3] & 0x80 >> (x & 7)) != 0 ? (byte)255 : (byte)0;
                    break;
                case BmpRawMode.Gray:
                    output[x] = line[x];
                    break;
                case BmpRawMode.Index1 or BmpRawMode.Index4 or BmpRawMode.Index8:
                    int index = mode switch
                    {
                        BmpRawMode.Index1 => line[x >> 3] >> (7 - (x & 7)) & 1,
                        BmpRawMode.Index4 => (x & 1) == 0 ? line[x >> 1] >> 4 : line[x >> 1] & 15,
                        _ => line[x],
                    };
                    palette.AsSpan(3 * index, 3).CopyTo(output.Slice(3 * x, 3));
                    break;
                case BmpRawMode.Bgr15 or BmpRawMode.Bgr16:
                    int pixel = line[2 * x] | line[2 * x + 1] << 8;
                    bool five = mode == BmpRawMode.Bgr15;
                    output[3 * x] = (byte)((five ? pixel >> 10 & 31 : pixel >> 11 & 31) * 255 / 31);
                    output[3 * x + 1] = (byte)(five ? (pixel >> 5 & 31) * 255 / 31 : (pixel >> 5 & 63) * 255 / 63);
                    output[3 * x + 2] = (byte)((pixel & 31) * 255 / 31);
                    break;
                case BmpRawMode.Bgr:
                    (output[3 * x], output[3 * x + 1], output[3 * x + 2]) = (line[3 * x + 2], line[3 * x + 1], line[3 * x]);
                    break;
                default:
                    Unpack32(line.Slice(4 * x, 4), output, x, mode);
                    break;
            }
        }
    }

    /// <summary>A 32-bit pixel's bytes (in file order) as RGB or RGBA.</summary>
    private static void Unpack32(ReadOnlySpan<byte> p, Span<byte> output, int x, BmpRawMode mode)
    {
        (byte r, byte g, byte b, byte a) = mode switch
        {
            BmpRawMode.Bgrx or BmpRawMode.Bgra => (p[2], p[1], p[0], p[3]),
            BmpRawMode.Xbgr or BmpRawMode.Abgr => (p[3], p[2], p[1], p[0]),
            _ => (p[0], p[1], p[2], p[3]),
        };
        if (mode is BmpRawMode.Bgrx or BmpRawMode.Xbgr)
        {
            (output[3 * x], output[3 * x + 1], output[3 * x + 2]) = (r, g, b);
            return;
        }
        (output[4 * x], output[4 * x + 1], output[4 * x + 2], output[4 * x + 3]) = (r, g, b, a);
    }
}
