using Sd.Kernels.Elementwise;
using Sd.Loaders.Png;

namespace Sd.Engine.Imaging;

/// <summary>How a picture of another size is brought to an img2img or inpainting run's size (A1111's resize modes).</summary>
public enum ResizeMode
{
    /// <summary>"Just resize": Lanczos to the size, the aspect ratio not kept (A1111's default; diffusers' "default").</summary>
    Just,

    /// <summary>"Crop and resize": Lanczos to cover the size, aspect ratio kept, centred; what lies outside is cut off.</summary>
    Crop,

    /// <summary>
    /// "Resize and fill": Lanczos to fit inside the size, aspect ratio kept, centred; the bands left on two sides are
    /// the picture's edges (a bicubic mix of the rows or columns there) stretched across them.
    /// </summary>
    Fill,
}

/// <summary>
/// A1111's images.resize_image with no img2img upscaler (its default) on 8-bit RGB or gray pictures, byte for byte
/// with Pillow 9.4 (diffusers' VaeImageProcessor resize modes are the same code). Scalar: once per input picture.
/// </summary>
/// Reference: A1111 modules/images.py, resize_image (modes 0, 1, 2); Pillow's Image.resize(size, filter, box) and
/// Image.paste.
public static class PictureResize
{
    /// <summary>
    /// <paramref name="picture"/> (1 or 3 channels; see <see cref="ImageConversion.RgbBytes"/> and
    /// <see cref="ImageConversion.GrayBytes"/>) at <paramref name="width"/> x <paramref name="height"/> by
    /// <paramref name="mode"/>; a picture of that size already is returned as it is.
    /// </summary>
    /// <exception cref="ArgumentException">Another channel count, a size below 1, or a picture too thin for the mode (a side
    /// that would shrink to no pixel, or a cover beyond a picture's limits).</exception>
    public static PngImage Resize(PngImage picture, int width, int height, ResizeMode mode)
    {
        ArgumentNullException.ThrowIfNull(picture);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (picture.Channels is not (1 or 3))
        {
            throw new ArgumentException($"resizing takes gray or RGB pictures, got {picture.Channels} channels", nameof(picture));
        }
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "not Just, Crop or Fill");
        }
        if (picture.Width == width && picture.Height == height)
        {
            return picture;
        }
        if (mode == ResizeMode.Just)
        {
            return Resample(picture, width, height, PilFilter.Lanczos, Whole(picture));
        }
        // src_w, src_h: A1111's covering (crop) or fitting (fill) size, by float ratios and integer floors as there.
        double ratio = width / (double)height, pictureRatio = picture.Width / (double)picture.Height;
        bool widthFixed = mode == ResizeMode.Crop ? ratio > pictureRatio : ratio < pictureRatio;
        bool heightFixed = mode == ResizeMode.Crop ? ratio <= pictureRatio : ratio >= pictureRatio;
        long resizedWidth = widthFixed ? width : (long)picture.Width * height / picture.Height;
        long resizedHeight = heightFixed ? height : (long)picture.Height * width / picture.Width;
        if (resizedWidth < 1 || resizedHeight < 1 || resizedWidth > PngFile.MaxDimension || resizedHeight > PngFile.MaxDimension
            || resizedWidth * resizedHeight > PngFile.MaxPixels)
        {
            // Pillow would fail on a side of 0 too; a huge cover of a sliver would only exhaust memory.
            throw new ArgumentException($"a {picture.Width}x{picture.Height} picture {(mode == ResizeMode.Crop ? "covering" : "fitted into")} {width}x{height} at its aspect ratio " +
                $"would be {resizedWidth}x{resizedHeight}; pictures here have 1 to {PngFile.MaxDimension} pixels a side and at most {PngFile.MaxPixels} in all", nameof(picture));
        }
        PngImage resized = Resample(picture, (int)resizedWidth, (int)resizedHeight, PilFilter.Lanczos, Whole(picture));
        var canvas = new PngImage(width, height, picture.Channels, new byte[(long)width * height * picture.Channels]); // Image.new: black
        // Where the picture goes (negative: cut off); for a fill, also the bands' sizes.
        int side = width / 2 - resized.Width / 2, band = height / 2 - resized.Height / 2;
        Paste(resized, canvas, side, band);
        if (mode == ResizeMode.Fill && ratio < pictureRatio && band > 0)
        {
            // The top and bottom edges, each stretched over a band: an empty box there centres every tap on it. A1111
            // gives these resizes no filter, so they are Pillow's default, bicubic.
            Paste(Resample(resized, width, band, PilFilter.Bicubic, new PilResample.Box(0, 0, width, 0)), canvas, 0, 0);
            Paste(Resample(resized, width, band, PilFilter.Bicubic, new PilResample.Box(0, resized.Height, width, resized.Height)), canvas, 0, band + resized.Height);
        }
        else if (mode == ResizeMode.Fill && ratio > pictureRatio && side > 0)
        {
            Paste(Resample(resized, side, height, PilFilter.Bicubic, new PilResample.Box(0, 0, 0, height)), canvas, 0, 0);
            Paste(Resample(resized, side, height, PilFilter.Bicubic, new PilResample.Box(resized.Width, 0, resized.Width, height)), canvas, side + resized.Width, 0);
        }
        return canvas;
    }

    private static PilResample.Box Whole(PngImage picture) => new(0, 0, picture.Width, picture.Height);

    private static PngImage Resample(PngImage picture, int width, int height, PilFilter filter, PilResample.Box box)
    {
        var pixels = new byte[(long)width * height * picture.Channels];
        PilResample.Resize(picture.Pixels, picture.Height, picture.Width, picture.Channels, pixels, height, width, filter, box);
        return new PngImage(width, height, picture.Channels, pixels);
    }

    /// <summary>
    /// Pillow's paste at (<paramref name="left"/>, <paramref name="top"/>) of a picture with the canvas's channels,
    /// clipped to the canvas on every side.
    /// </summary>
    internal static void Paste(PngImage picture, PngImage canvas, int left, int top)
    {
        int x0 = Math.Max(left, 0), y0 = Math.Max(top, 0);
        int x1 = Math.Min(left + picture.Width, canvas.Width), y1 = Math.Min(top + picture.Height, canvas.Height);
        if (x1 <= x0)
        {
            return;
        }
        int channels = picture.Channels;
        for (int y = y0; y < y1; y++)
        {
            picture.Pixels.AsSpan(((y - top) * picture.Width + x0 - left) * channels, (x1 - x0) * channels)
                .CopyTo(canvas.Pixels.AsSpan((y * canvas.Width + x0) * channels));
        }
    }

    /// <summary>Pillow's crop of a region that lies within the picture: its pixels, copied.</summary>
    internal static PngImage Crop(PngImage picture, PictureRegion region)
    {
        int channels = picture.Channels;
        var pixels = new byte[(long)region.Width * region.Height * channels];
        for (int y = 0; y < region.Height; y++)
        {
            picture.Pixels.AsSpan(((region.Y + y) * picture.Width + region.X) * channels, region.Width * channels)
                .CopyTo(pixels.AsSpan(y * region.Width * channels));
        }
        return new PngImage(region.Width, region.Height, channels, pixels);
    }
}
