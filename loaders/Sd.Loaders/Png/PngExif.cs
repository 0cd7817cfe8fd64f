using Sd.Loaders.Pictures;

namespace Sd.Loaders.Png;

/// <summary>
/// A PNG's EXIF orientation, found where Pillow 9.4's getexif finds it (so ImageOps.exif_transpose, which diffusers'
/// load_image and A1111's img2img apply, turns the picture by it): the eXIf chunk; without one, ImageMagick's
/// "Raw profile type exif" text (hex after three header lines); and when the EXIF has no orientation entry, the XMP
/// packet's first tiff:Orientation (the "XML:com.adobe.xmp" text). Only the eXIf chunk's UserComment becomes the
/// "parameters" text, overriding a text chunk's, as A1111's read_info_from_image takes it from Pillow's info["exif"].
/// Reference: Pillow's Image.getexif and PngImagePlugin.chunk_eXIf; A1111's modules/images.py.
/// </summary>
internal static class PngExif
{
    private const string RawProfileKey = "Raw profile type exif", XmpKey = "XML:com.adobe.xmp";

    /// <param name="exif">The eXIf chunk's data, null without one.</param>
    /// <param name="text">The picture's text chunks; gets the eXIf chunk's UserComment as "parameters".</param>
    /// <returns>The orientation (1-8 turn the picture as <see cref="ExifOrientation"/> says; others leave it).</returns>
    public static int Orientation(byte[]? exif, Dictionary<string, string> text)
    {
        int? orientation = null;
        if (exif != null)
            orientation = ExifReader.Read(exif, text);
        else if (text.TryGetValue(RawProfileKey, out string? profile) && RawProfile(profile) is { } raw)
            orientation = ExifReader.Read(raw, new Dictionary<string, string>()); // A1111 reads no text from it
        if (orientation == null && text.TryGetValue(XmpKey, out string? xmp))
            orientation = XmpOrientation(xmp);
        return orientation ?? 1;
    }

    /// <summary>The bytes of ImageMagick's raw profile as Pillow takes them: the lines after the third joined, then
    /// read as Python's bytes.fromhex reads (white space between bytes skipped); null when that is not hex.</summary>
    private static byte[]? RawProfile(string profile)
    {
        int start = 0;
        for (int line = 0; line < 3; line++)
        {
            start = profile.IndexOf('\n', start) + 1;
            if (start == 0)
                return null;
        }
        var bytes = new List<byte>(profile.Length / 2);
        int high = -1;
        foreach (char c in profile.AsSpan(start))
        {
            if (c == '\n')
                continue; // the line breaks are gone before the hex is read
            if (c is ' ' or '\t' or '\r' or '\f' or '\v' && high < 0)
                continue;
            if (!char.IsAsciiHexDigit(c))
                return null;
            int digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
            if (high < 0)
                high = digit;
            else
            {
                bytes.Add((byte)(high << 4 | digit));
                high = -1;
            }
        }
        return high < 0 ? bytes.ToArray() : null;
    }

    /// <summary>The digit after the first "tiff:Orientation=\"" or "tiff:Orientation>" (Pillow's regular expression
    /// tiff:Orientation(="|>)([0-9])), null when there is none.</summary>
    private static int? XmpOrientation(string xmp)
    {
        const string Tag = "tiff:Orientation";
        for (int at = xmp.IndexOf(Tag, StringComparison.Ordinal); at >= 0; at = xmp.IndexOf(Tag, at + 1, StringComparison.Ordinal))
        {
            ReadOnlySpan<char> rest = xmp.AsSpan(at + Tag.Length);
            int skip = rest.StartsWith("=\"") ? 2 : rest.StartsWith(">") ? 1 : 0;
            if (skip > 0 && rest.Length > skip && char.IsAsciiDigit(rest[skip]))
                return rest[skip] - '0';
        }
        return null;
    }
}
