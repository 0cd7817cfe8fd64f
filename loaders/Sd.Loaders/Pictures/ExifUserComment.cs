using System.Buffers.Binary;
using System.Text;

namespace Sd.Loaders.Pictures;

/// <summary>
/// The EXIF segment A1111 puts in the JPEGs it saves: piexif.dump({"Exif": {UserComment: UserComment.dump(text,
/// encoding="unicode")}}), byte for byte. A big-endian TIFF header; IFD0 with one entry, the Exif IFD pointer; the
/// Exif IFD with one entry, UserComment (UNDEFINED: "UNICODE\0" then the text in UTF-16 big-endian, unpaired
/// surrogates as '?'), and no next-IFD offset after it, as piexif writes it. <see cref="ExifReader"/> reads it back.
/// Reference: piexif 1.1.3's _dump.py and helper.py; A1111's images.save_image_with_geninfo.
/// </summary>
internal static class ExifUserComment
{
    /// <summary>"Exif\0\0", the TIFF header, IFD0 (18 bytes), the Exif IFD (14 bytes) and UserComment's prefix.</summary>
    private const int Overhead = 6 + 8 + 18 + 14 + 8;

    /// <summary>The most UTF-16 code units a comment can have: an APP1 segment holds at most 65,533 bytes.</summary>
    public const int MaxChars = (ushort.MaxValue - 2 - Overhead) / 2;

    private static readonly Encoding Utf16BigEndian = Encoding.GetEncoding(
        "utf-16BE", new EncoderReplacementFallback("?"), DecoderFallback.ReplacementFallback);

    /// <summary>The whole APP1 segment (marker, length, payload) holding <paramref name="text"/>, of at most
    /// <see cref="MaxChars"/> characters (the caller checks).</summary>
    public static byte[] Segment(string text)
    {
        int commentBytes = 8 + 2 * text.Length;
        var segment = new byte[4 + Overhead - 8 + commentBytes];
        Span<byte> s = segment;
        s[0] = 0xFF;
        s[1] = 0xE1;
        BinaryPrimitives.WriteUInt16BigEndian(s[2..], (ushort)(segment.Length - 2));
        "Exif\0\0MM\0*\0\0\0\x08"u8.CopyTo(s[4..]);
        Span<byte> tiff = s[10..];
        // IFD0 at 8: one entry, ExifTag (0x8769, LONG, 1) pointing at the Exif IFD at 26; no next IFD.
        Entry(tiff[8..], 0x8769, 4, 1, 26);
        // The Exif IFD at 26: one entry, UserComment (0x9286, UNDEFINED) whose bytes follow at 40.
        Entry(tiff[26..], 0x9286, 7, commentBytes, 40);
        "UNICODE\0"u8.CopyTo(tiff[40..]);
        Utf16BigEndian.GetBytes(text, tiff[48..]);
        return segment;
    }

    /// <summary>An IFD of one entry: the count, then tag, type, count and value offset; IFD0's next-IFD offset (0)
    /// is the zeros already there.</summary>
    private static void Entry(Span<byte> ifd, int tag, int type, int count, int offset)
    {
        BinaryPrimitives.WriteUInt16BigEndian(ifd, 1);
        BinaryPrimitives.WriteUInt16BigEndian(ifd[2..], (ushort)tag);
        BinaryPrimitives.WriteUInt16BigEndian(ifd[4..], (ushort)type);
        BinaryPrimitives.WriteInt32BigEndian(ifd[6..], count);
        BinaryPrimitives.WriteInt32BigEndian(ifd[10..], offset);
    }
}
