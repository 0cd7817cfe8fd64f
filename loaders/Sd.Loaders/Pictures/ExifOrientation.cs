using Sd.Loaders.Png;

namespace Sd.Loaders.Pictures;

/// <summary>
/// EXIF orientation (1-8): how a stored picture turns to stand upright, applied as Pillow's ImageOps.exif_transpose
/// applies it (which diffusers' load_image and A1111's img2img do to their input pictures): 2 mirrors left-right,
/// 3 turns 180 degrees, 4 mirrors top-bottom, 5 transposes, 6 turns 90 degrees clockwise, 7 transverses, 8 turns
/// 90 degrees counter-clockwise. Other values leave the picture as stored.
/// </summary>
public static class ExifOrientation
{
    /// <summary>Whether the upright picture's width is the stored height (orientations 5-8).</summary>
    public static bool SwapsSides(int orientation) => orientation is >= 5 and <= 8;

    /// <summary>Refuses a stored <paramref name="width"/> x <paramref name="height"/> picture that is not the
    /// <paramref name="required"/> size, compared upright (sides swapped by orientations 5-8) when
    /// <paramref name="upright"/>: the check a reader makes from its headers, before decoding.</summary>
    internal static void CheckSize(string name, int width, int height, int orientation, bool upright, (int Width, int Height) required)
    {
        bool turned = upright && SwapsSides(orientation);
        (int w, int h) = turned ? (height, width) : (width, height);
        if ((w, h) != required)
            throw new InvalidFileException(name, $"the picture is {w}x{h}{(turned ? " upright" : "")}; {required.Width}x{required.Height} is needed");
    }

    /// <summary>The upright picture (the same object when nothing turns); its text is kept.</summary>
    public static PngImage Apply(PngImage image, int orientation)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (orientation is < 2 or > 8)
            return image;
        int w = image.Width, h = image.Height, channels = image.Channels;
        bool swap = SwapsSides(orientation);
        int outWidth = swap ? h : w, outHeight = swap ? w : h;
        var pixels = new byte[image.Pixels.Length];
        for (int y = 0; y < outHeight; y++)
        {
            for (int x = 0; x < outWidth; x++)
            {
                // The stored pixel (column, row) shown at (x, y).
                (int column, int row) = orientation switch
                {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (y, h - 1 - x),
                    7 => (w - 1 - y, h - 1 - x),
                    _ => (w - 1 - y, x),
                };
                image.Pixels.AsSpan((row * w + column) * channels, channels).CopyTo(pixels.AsSpan((y * outWidth + x) * channels, channels));
            }
        }
        return new PngImage(outWidth, outHeight, channels, pixels, image.Text);
    }
}
