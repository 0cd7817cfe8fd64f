using System.Buffers.Binary;
using System.Text;

namespace Sd.Loaders.Pictures;

/// <summary>
/// What Sd takes from a picture's EXIF (a JPEG's APP1 "Exif" segment, a WebP's EXIF chunk, a PNG's eXIf chunk): the
/// orientation (tag 0x0112 in IFD0), for reading a picture upright, and the generation settings A1111 stores there:
/// UserComment (tag 0x9286 in the Exif IFD), read as A1111's read_info_from_image reads it with piexif: an 8-byte
/// prefix names the encoding (ASCII, UNICODE for UTF-16 big-endian, JIS for Shift-JIS, undecodable bytes replaced),
/// and without a known prefix the whole field is UTF-8 with bad bytes dropped. A non-empty comment becomes the
/// picture's "parameters" text. EXIF that cannot be parsed gives no text rather than an error: the picture is still
/// good.
/// </summary>
internal static class ExifReader
{
    private const int Orientation = 0x0112, ExifIfdPointer = 0x8769, UserComment = 0x9286, Short = 3, Undefined = 7;

    /// <param name="exif">A TIFF header and IFDs, bare or after JPEG's "Exif\0\0" (a JPEG's APP1 segment; WebP and PNG
    /// writers store either, and Pillow's and piexif's readers take both).</param>
    /// <returns>The EXIF orientation; 1 (as stored) when its entry is not a single SHORT, null when there is none.</returns>
    public static int? Read(ReadOnlySpan<byte> exif, Dictionary<string, string> text)
    {
        ReadOnlySpan<byte> tiff = exif.StartsWith("Exif\0\0"u8) ? exif[6..] : exif;
        if (tiff.Length < 8)
            return null;
        bool little = tiff[0] == 'I' && tiff[1] == 'I';
        if (!little && !(tiff[0] == 'M' && tiff[1] == 'M'))
            return null;
        long ifd0 = Read32(tiff, 4, little);
        long entry = Find(tiff, little, ifd0, Orientation, out int type, out long count);
        int? orientation = entry < 0 ? null : type == Short && count == 1 ? Read16(tiff, (int)entry + 8, little) : 1;
        entry = Find(tiff, little, ifd0, ExifIfdPointer, out _, out _);
        long exifIfd = entry >= 0 ? Read32(tiff, (int)entry + 8, little) : -1; // a LONG: the Exif IFD's offset
        entry = Find(tiff, little, exifIfd, UserComment, out type, out count);
        // A value of up to 4 bytes sits in the entry itself; a longer one where the entry's offset points.
        long offset = entry < 0 ? -1 : count <= 4 ? entry + 8 : Read32(tiff, (int)entry + 8, little);
        if (offset >= 0 && type == Undefined && offset + count <= tiff.Length)
        {
            string comment = Decode(tiff.Slice((int)offset, (int)count));
            if (comment.Length > 0)
                text["parameters"] = comment;
        }
        return orientation;
    }

    /// <summary>
    /// The entry for <paramref name="tag"/> in the IFD at <paramref name="ifd"/>: its offset (12 bytes: tag, type,
    /// count, then the value or the value's offset), with its type and count, or -1 when absent or out of bounds.
    /// </summary>
    private static long Find(ReadOnlySpan<byte> tiff, bool little, long ifd, int tag, out int type, out long count)
    {
        type = 0;
        count = 0;
        if (ifd < 8 || ifd + 2 > tiff.Length)
            return -1;
        int entries = Read16(tiff, (int)ifd, little);
        for (int i = 0; i < entries; i++)
        {
            long at = ifd + 2 + 12L * i;
            if (at + 12 > tiff.Length)
                return -1;
            if (Read16(tiff, (int)at, little) != tag)
                continue;
            type = Read16(tiff, (int)at + 2, little);
            count = Read32(tiff, (int)at + 4, little);
            return at;
        }
        return -1;
    }

    /// <summary>piexif.helper.UserComment.load, with A1111's UTF-8 fallback.</summary>
    private static string Decode(ReadOnlySpan<byte> field)
    {
        if (field.Length >= 8)
        {
            ReadOnlySpan<byte> prefix = field[..8], body = field[8..];
            if (prefix.SequenceEqual("ASCII\0\0\0"u8))
                return Replacing(Encoding.ASCII).GetString(body);
            if (prefix.SequenceEqual("UNICODE\0"u8))
                return Replacing(Encoding.BigEndianUnicode).GetString(body);
            if (prefix.SequenceEqual("JIS\0\0\0\0\0"u8))
                return Replacing(CodePagesEncodingProvider.Instance.GetEncoding(932)!).GetString(body);
        }
        var utf8 = (Encoding)Encoding.UTF8.Clone();
        utf8.DecoderFallback = new DecoderReplacementFallback("");
        return utf8.GetString(field);
    }

    private static Encoding Replacing(Encoding encoding)
    {
        var copy = (Encoding)encoding.Clone();
        copy.DecoderFallback = new DecoderReplacementFallback("\uFFFD");
        return copy;
    }

    private static int Read16(ReadOnlySpan<byte> data, int at, bool little) =>
        little ? BinaryPrimitives.ReadUInt16LittleEndian(data[at..]) : BinaryPrimitives.ReadUInt16BigEndian(data[at..]);

    private static long Read32(ReadOnlySpan<byte> data, int at, bool little) =>
        little ? BinaryPrimitives.ReadUInt32LittleEndian(data[at..]) : BinaryPrimitives.ReadUInt32BigEndian(data[at..]);
}
