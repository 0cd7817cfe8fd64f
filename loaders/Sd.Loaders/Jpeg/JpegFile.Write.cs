using Sd.Loaders.IO;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Loaders.Jpeg;

public static partial class JpegFile
{
    /// <summary>A1111's JPEG quality (opts.jpeg_quality).</summary>
    public const int DefaultQuality = 80;

    /// <summary>Writes atomically (<see cref="AtomicFile"/>): the file appears whole or not at all.</summary>
    /// <inheritdoc cref="Write(Stream, PngImage, int)"/>
    public static void Write(string path, PngImage image, int quality = DefaultQuality)
    {
        Check(image, quality);
        AtomicFile.Write(path, stream => Encode(stream, image, quality));
    }

    /// <summary>
    /// Writes <paramref name="image"/> as A1111 saves a .jpg, byte for byte with Pillow 9.4 on libjpeg-turbo and
    /// piexif: a baseline JPEG (gray, or YCbCr 4:2:0; RGBA loses its alpha), and the "parameters" text, when there is
    /// one, as EXIF's UserComment in place of the JFIF segment. JPEG has no place for other text entries: they are not
    /// written.
    /// </summary>
    /// <param name="quality">1 (smallest) to 100 (best), as Pillow's quality.</param>
    /// <exception cref="ArgumentOutOfRangeException">The quality is not 1-100.</exception>
    /// <exception cref="ArgumentException">The picture is wider or higher than JPEG's 65,500 (or a gray one of over
    /// 2^31 pixels once padded), or its parameters text does not fit in an EXIF segment (<see cref="MaxParametersChars"/>).</exception>
    public static void Write(Stream stream, PngImage image, int quality = DefaultQuality)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Check(image, quality);
        Encode(stream, image, quality);
    }

    /// <summary>The file of a checked picture: the EXIF with its parameters, or JFIF, in front.</summary>
    private static void Encode(Stream stream, PngImage image, int quality)
    {
        byte[]? exif = image.Text.TryGetValue("parameters", out string? parameters) ? ExifUserComment.Segment(parameters) : null;
        JpegEncoder.Write(stream, image, quality, exif ?? JpegEncoder.Jfif);
    }

    /// <summary>The longest "parameters" text a JPEG holds, in UTF-16 characters.</summary>
    public const int MaxParametersChars = ExifUserComment.MaxChars;

    /// <summary>Whether <paramref name="path"/> names a JPEG by its extension (.jpg or .jpeg, any case).</summary>
    public static bool IsJpegName(string path) =>
        Path.GetExtension(path) is var extension
        && (extension.Equals(".jpg", StringComparison.OrdinalIgnoreCase) || extension.Equals(".jpeg", StringComparison.OrdinalIgnoreCase));

    private static void Check(PngImage image, int quality)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfLessThan(quality, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(quality, 100);
        if (image.Width > JpegEncoder.MaxDimension || image.Height > JpegEncoder.MaxDimension)
        {
            throw new ArgumentException(
                $"a {image.Width}x{image.Height} picture is too large for a JPEG (at most {JpegEncoder.MaxDimension} on a side)", nameof(image));
        }
        if (JpegEncoder.PlaneBytes(image.Width, image.Height, image.Channels) > Array.MaxLength)
        {
            throw new ArgumentException($"a {image.Width}x{image.Height} picture is too large to encode here: its padded planes exceed an array", nameof(image));
        }
        if (image.Text.TryGetValue("parameters", out string? parameters) && parameters.Length > MaxParametersChars)
        {
            throw new ArgumentException(
                $"the parameters text has {parameters.Length} UTF-16 characters; a JPEG's EXIF segment holds at most {MaxParametersChars}", nameof(image));
        }
    }
}
