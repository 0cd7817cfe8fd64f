using Sd.Loaders.Jpeg;
using Sd.Loaders.Png;

namespace Sd.Cli;

/// <summary>
/// The pictures generate and upscale write, chosen by the name as A1111's samples_format: PNG (the parameters in a
/// text chunk), or JPEG for .jpg and .jpeg (at --jpeg-quality, A1111's jpeg_quality, 80 by default; the parameters in
/// EXIF's UserComment), byte for byte as A1111 saves each. Not A1111's: its export_for_4chan (on by default) also
/// writes a JPEG of at most 4000 pixels a side beside a larger picture or a PNG over 4 MB, and replaces a larger .jpg
/// by it; Sd writes the picture asked for, at its size. Its JPEG keeps an input's "comment" text (a COM segment); Sd's
/// does not.
/// </summary>
/// Reference: A1111 1.10 modules/images.py (save_image, save_image_with_geninfo).
internal static class PictureOutput
{
    public const string QualityFlag = "--jpeg-quality";

    /// <summary>
    /// Checks that <paramref name="flag"/>'s name ends in .png, .jpg or .jpeg (any case) and returns the JPEG
    /// quality: --jpeg-quality (1-100), which only a JPEG name takes.
    /// </summary>
    public static int Quality(CommandLine line, string flag)
    {
        string path = line.Require(flag);
        bool jpeg = JpegFile.IsJpegName(path);
        if (!jpeg && !Path.GetExtension(path).Equals(".png", StringComparison.OrdinalIgnoreCase))
        {
            throw new UsageException($"{line.Command}: {flag} '{path}': pictures are written as PNG or JPEG; give a name ending in .png, .jpg or .jpeg");
        }
        if (line.Has(QualityFlag) && !jpeg)
        {
            throw new UsageException($"{line.Command}: {QualityFlag} sets a JPEG's quality; {flag} '{path}' is a PNG");
        }
        int quality = line.GetInt(QualityFlag, JpegFile.DefaultQuality);
        if (quality is < 1 or > 100)
        {
            throw new UsageException($"{line.Command}: {QualityFlag} must be from 1 to 100, got {quality}");
        }
        return quality;
    }

    /// <summary>
    /// Refuses parameters of <paramref name="length"/> characters where <paramref name="flag"/> names a JPEG whose EXIF
    /// cannot hold them: found before the run, not after it.
    /// </summary>
    public static void CheckParametersFit(CommandLine line, string flag, int length)
    {
        if (JpegFile.IsJpegName(line.Require(flag)) && length > JpegFile.MaxParametersChars)
        {
            throw new UsageException($"{line.Command}: the parameters would have {length} characters; a JPEG's EXIF holds at most " +
                $"{JpegFile.MaxParametersChars}: write a .png");
        }
    }

    /// <summary>Writes <paramref name="picture"/> in the format <paramref name="path"/> names.</summary>
    public static void Write(Stream stream, string path, PngImage picture, int quality)
    {
        if (JpegFile.IsJpegName(path))
            JpegFile.Write(stream, picture, quality);
        else
            PngFile.Write(stream, picture);
    }
}
