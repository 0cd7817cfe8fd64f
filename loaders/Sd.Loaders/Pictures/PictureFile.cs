using Sd.Loaders.Bmp;
using Sd.Loaders.IO;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Png;
using Sd.Loaders.Webp;

namespace Sd.Loaders.Pictures;

/// <summary>
/// Reads a picture in any format Sd reads (PNG, JPEG, WebP or BMP), told apart by the file's first bytes rather than its name
/// (a PNG saved as <c>.jpg</c> reads as the PNG it is), as Pillow's Image.open tells them apart.
/// </summary>
public static class PictureFile
{
    /// <summary>Enough of a file's start for <see cref="HasSignature"/>.</summary>
    public const int HeadBytes = 12;

    public static PngImage Read(string path) => Read(path, null, upright: false);

    /// <summary>Reads a picture that must be <paramref name="width"/> x <paramref name="height"/>: another size is
    /// refused from the file's header, before anything is decoded.</summary>
    public static PngImage Read(string path, int width, int height) => Read(path, (width, height), upright: false);

    /// <summary>
    /// Reads a picture turned upright by its EXIF orientation, as diffusers' load_image and A1111's img2img read
    /// their inputs (Pillow's ImageOps.exif_transpose; a JPEG's or WebP's EXIF, a PNG's eXIf chunk or the text chunks
    /// Pillow reads it from). A required size is the upright size, checked before anything is decoded.
    /// </summary>
    public static PngImage ReadUpright(string path, int width, int height) => Read(path, (width, height), upright: true);

    /// <inheritdoc cref="ReadUpright(string, int, int)"/>
    public static PngImage ReadUpright(string path) => Read(path, null, upright: true);

    /// <summary>Whether a file's first bytes (see <see cref="InputFile.ReadHead"/>) start a picture Sd reads.</summary>
    public static bool HasSignature(ReadOnlySpan<byte> head) =>
        PngFile.HasSignature(head) || JpegFile.HasSignature(head) || WebpFile.HasSignature(head) || BmpFile.HasSignature(head);

    private static PngImage Read(string path, (int Width, int Height)? size, bool upright)
    {
        Span<byte> head = stackalloc byte[HeadBytes];
        head = head[..InputFile.ReadHead(path, "picture", head)];
        if (JpegFile.HasSignature(head))
            return JpegFile.ReadFile(path, size, upright);
        if (WebpFile.HasSignature(head))
            return WebpFile.ReadFile(path, size, upright);
        if (PngFile.HasSignature(head))
            return PngFile.ReadFile(path, size, upright);
        if (BmpFile.HasSignature(head))
            return BmpFile.ReadFile(path, size); // no orientation: upright as stored
        throw new InvalidFileException(path, "not a PNG, JPEG, WebP or BMP picture (the file starts as none of them; other formats are not read)");
    }
}
