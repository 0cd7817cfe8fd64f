using Sd.Loaders.IO;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Loaders.Webp;

/// <summary>
/// Reads WebP pictures, lossy (VP8, with or without an alpha chunk) and lossless (VP8L), to 8-bit RGB or RGBA pixels
/// equal to what Pillow 9.4 (libwebp 1.2.4, its default fancy upsampling) gives, byte for byte: RGBA when the file says
/// it has alpha, RGB otherwise; an animation as its first frame on the canvas, as Pillow's Image.open shows it.
/// A1111's generation settings in EXIF's UserComment become the "parameters" text. Any damage is refused: an
/// <see cref="InvalidFileException"/> naming the file and the problem.
/// </summary>
public static class WebpFile
{
    /// <summary>Largest file read: far more than any picture of <see cref="PngFile.MaxPixels"/> needs.</summary>
    public const long MaxFileBytes = 1L << 30;

    public static PngImage Read(string path) => ReadFile(path, null, upright: false);

    /// <summary>Reads a picture that must be <paramref name="width"/> x <paramref name="height"/>: another size is
    /// refused from the headers, before anything is decoded.</summary>
    public static PngImage Read(string path, int width, int height) => ReadFile(path, (width, height), upright: false);

    /// <summary>Reads the picture turned upright by its EXIF orientation (<see cref="ExifOrientation"/>); a required
    /// <paramref name="size"/> is the upright size.</summary>
    public static PngImage ReadUpright(string path, (int Width, int Height)? size = null) => ReadFile(path, size, upright: true);

    /// <param name="nameForErrors">The file name put in error messages.</param>
    public static PngImage Read(Stream stream, string nameForErrors) =>
        Decode(InputFile.ReadAll(stream, nameForErrors), nameForErrors, null, upright: false);

    /// <summary>Whether a file's first 12 bytes are a WebP file's: "RIFF", a size, "WEBP".</summary>
    public static bool HasSignature(ReadOnlySpan<byte> head) => WebpContainer.HasSignature(head);

    /// <summary>The picture, of <paramref name="size"/> when given (upright when <paramref name="upright"/>).</summary>
    internal static PngImage ReadFile(string path, (int Width, int Height)? size, bool upright) =>
        Decode(InputFile.ReadAll(path, "WebP file", MaxFileBytes), path, size, upright);

    private static PngImage Decode(byte[] data, string name, (int Width, int Height)? size, bool upright)
    {
        WebpContainer container = WebpContainer.Parse(data, name);
        var text = new Dictionary<string, string>(StringComparer.Ordinal);
        int orientation = container.Exif is { } exif ? ExifReader.Read(data.AsSpan(exif.Start, exif.Length), text) ?? 1 : 1;
        int width = container.Width, height = container.Height;
        PngFile.CheckPixelCount(name, width, height);
        if (size is { } required)
            ExifOrientation.CheckSize(name, width, height, orientation, upright, required);
        int channels = container.HasAlpha ? 4 : 3;
        int frameWidth = container.FrameWidth, frameHeight = container.FrameHeight;
        byte[] pixels;
        if (container.Lossless)
        {
            uint[] argb = Vp8lDecoder.Decode(data, container.Image, frameWidth, frameHeight, name);
            pixels = ArgbToPixels(argb, channels);
        }
        else
        {
            Vp8Planes planes = Vp8Decoder.Decode(data, container.Image.Start, container.Image.Length, name);
            byte[]? alpha = container.Alpha is { } a ? WebpAlpha.Decode(data, a, frameWidth, frameHeight, name) : null;
            pixels = WebpYuv.ToPixels(planes, alpha, channels);
        }
        if (frameWidth != width || frameHeight != height)
            pixels = OnCanvas(pixels, container, channels);
        var image = new PngImage(width, height, channels, pixels, text);
        return upright ? ExifOrientation.Apply(image, orientation) : image;
    }

    /// <summary>
    /// An animation's first frame placed on its canvas as libwebp's animation decoder (Pillow's reader) places it:
    /// the canvas starts transparent black (the ANIM chunk's background color is only a hint), the frame replaces
    /// its rectangle, no blending for the first frame. RGB drops the alpha, leaving black around the frame.
    /// </summary>
    private static byte[] OnCanvas(byte[] frame, WebpContainer container, int channels)
    {
        var canvas = new byte[(long)container.Width * container.Height * channels];
        int rowBytes = container.FrameWidth * channels;
        for (int y = 0; y < container.FrameHeight; y++)
        {
            long to = ((long)(container.FrameY + y) * container.Width + container.FrameX) * channels;
            frame.AsSpan(y * rowBytes, rowBytes).CopyTo(canvas.AsSpan((int)to, rowBytes));
        }
        return canvas;
    }

    private static byte[] ArgbToPixels(uint[] argb, int channels)
    {
        var pixels = new byte[(long)argb.Length * channels];
        for (long p = 0; p < argb.Length; p++)
        {
            uint c = argb[p];
            long at = p * channels;
            pixels[at] = (byte)(c >> 16);
            pixels[at + 1] = (byte)(c >> 8);
            pixels[at + 2] = (byte)c;
            if (channels == 4)
                pixels[at + 3] = (byte)(c >> 24);
        }
        return pixels;
    }
}
