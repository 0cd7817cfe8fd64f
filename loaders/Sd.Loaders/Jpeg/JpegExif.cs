using System.Buffers.Binary;
using System.Text;

namespace Sd.Loaders.Jpeg;

/// <summary>
/// What Sd takes from a JPEG's EXIF (the APP1 "Exif" segment): the orientation (tag 0x0112 in IFD0), for reading a
/// picture upright, and the generation settings A1111 stores there: UserComment (tag 0x9286 in the Exif IFD), read as
/// A1111's read_info_from_image reads it with piexif: an 8-byte prefix names the encoding (ASCII, UNICODE for UTF-16
/// big-endian, JIS for Shift-JIS, undecodable bytes replaced), and without a known prefix the whole field is UTF-8 with
/// bad bytes dropped. A non-empty comment becomes the picture's "parameters" text. EXIF that cannot be parsed gives
/// no text rather than an error: the picture is still good.
/// </summary>
internal static class JpegExif
{
    private const int Orientation = 0x0112, ExifIfdPointer = 0x8769, UserComment = 0x9286, Short = 3, Undefined = 7;

    /// <param name="tiff">The APP1 segment after "Exif\0\0": a TIFF header and IFDs.</param>
    /// <param name="orientation">Set to the EXIF orientation (1-8) when the segment has one, else left as it is.</param>
    public static void Read(ReadOnlySpan<byte> tiff, Dictionary<string, string> text, ref int orientation)
    {
        if (tiff.Length < 8)
            return;
        bool little = tiff[0] == 'I' && tiff[1] == 'I';
        if (!little && !(tiff[0] == 'M' && tiff[1] == 'M'))
            return;
        long ifd0 = Read32(tiff, 4, little);
        long at = Find(tiff, little, ifd0, Orientation, out int orientationType, out long values);
        if (at >= 0 && orientationType == Short && values == 1)
            orientation = Read16(tiff, (int)at, little);
        long exifIfd = Find(tiff, little, ifd0, ExifIfdPointer, out _, out _);
        if (exifIfd < 0)
            return;
        long offset = Find(tiff, little, exifIfd, UserComment, out int type, out long count);
        if (offset < 0 || type != Undefined || offset + count > tiff.Length)
            return;
        string comment = Decode(tiff.Slice((int)offset, (int)count));
        if (comment.Length > 0)
            text["parameters"] = comment;
    }

    /// <summary>
    /// Where the value of <paramref name="tag"/> in the IFD at <paramref name="ifd"/> is: its offset (the entry's
    /// own 4 bytes when the value fits there, or a LONG pointer's target), or -1 when absent or out of bounds.
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
            if (tag == ExifIfdPointer)
                return Read32(tiff, (int)at + 8, little); // a LONG: the Exif IFD's offset
            return count <= 4 ? at + 8 : Read32(tiff, (int)at + 8, little);
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
