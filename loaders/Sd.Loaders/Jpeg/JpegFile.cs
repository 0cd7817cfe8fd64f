using Sd.Loaders.IO;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Loaders.Jpeg;

/// <summary>
/// Reads JPEG pictures (baseline, extended sequential and progressive; gray, YCbCr, RGB, CMYK or YCCK; any sampling
/// factors libjpeg takes; restart intervals) to 8-bit gray or RGB pixels equal to what Pillow 9.4 (libjpeg-turbo, its
/// default islow IDCT and fancy upsampling) and its convert("RGB") give, byte for byte. A1111's generation settings in
/// EXIF's UserComment become the "parameters" text. Arithmetic-coded, lossless, hierarchical and 12-bit JPEGs are
/// refused by name, and so is any damage: an <see cref="InvalidFileException"/> naming the file and the problem.
/// </summary>
/// <remarks>
/// Progressive files that leave some of the first AC coefficients unrefined are decoded as coded; libjpeg smooths
/// such blocks (for previews of partial files), so there the pictures can differ slightly. Encoders do not write them.
/// </remarks>
public static partial class JpegFile
{
    /// <summary>Largest file read: far more than any picture of <see cref="PngFile.MaxPixels"/> needs.</summary>
    public const long MaxFileBytes = 1L << 30;

    public static PngImage Read(string path) => ReadFile(path, null, upright: false);

    /// <summary>Reads a picture that must be <paramref name="width"/> x <paramref name="height"/>: another size is
    /// refused from the frame header, before anything is decoded.</summary>
    public static PngImage Read(string path, int width, int height) => ReadFile(path, (width, height), upright: false);

    /// <summary>
    /// Reads the picture turned upright by its EXIF orientation (<see cref="ExifOrientation"/>); a required
    /// <paramref name="size"/> is the upright size.
    /// </summary>
    public static PngImage ReadUpright(string path, (int Width, int Height)? size = null) => ReadFile(path, size, upright: true);

    /// <param name="nameForErrors">The file name put in error messages.</param>
    public static PngImage Read(Stream stream, string nameForErrors) =>
        Decode(InputFile.ReadAll(stream, nameForErrors), nameForErrors, null, upright: false);

    /// <summary>Whether a file's first bytes are a JPEG's: SOI and the start of another marker.</summary>
    public static bool HasSignature(ReadOnlySpan<byte> head) => head.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]);

    /// <summary>The picture, of <paramref name="size"/> when given (upright when <paramref name="upright"/>).</summary>
    internal static PngImage ReadFile(string path, (int Width, int Height)? size, bool upright) =>
        Decode(InputFile.ReadAll(path, "JPEG file", MaxFileBytes), path, size, upright);

    private static PngImage Decode(byte[] data, string name, (int Width, int Height)? size, bool upright)
    {
        try
        {
            var decoder = new JpegDecoder(data, name) { SizeUpright = upright };
            PngImage image = decoder.Decode(size);
            return upright ? ExifOrientation.Apply(image, decoder.Orientation) : image;
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidFileException(name, $"truncated: {e.Message}", e);
        }
    }
}
