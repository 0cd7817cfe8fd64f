using Sd.Engine.Tensors;
using Sd.Engine.Upscaling;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Png;

namespace Sd.Engine.Imaging;

/// <summary>AUTOMATIC1111's hires-fix upscalers that work on the decoded picture and need no model.</summary>
public enum ImageUpscaler
{
    /// <summary>"Lanczos": Pillow's Lanczos by the scale, to a multiple of 8, then to the size (upscaler.py's UpscalerLanczos).</summary>
    Lanczos,

    /// <summary>"None": one Lanczos resize straight to the size (images.resize_image without an upscaler).</summary>
    None,

    /// <summary>"Nearest": Pillow's nearest neighbour by the scale, then Lanczos to a multiple of 8 and to the size (upscaler.py's UpscalerNearest).</summary>
    Nearest,
}

/// <summary>
/// A hires fix's picture round trip as A1111's sample_hr_pass makes it with an image upscaler: the decoder's output
/// to 8-bit RGB as <c>(255 x clamp((x + 1) / 2, 0, 1)).astype(uint8)</c> (float32, truncated), resized by the
/// upscaler (<see cref="Upscale"/>), and back as <c>2 x (byte / 255) - 1</c> in float32.
/// </summary>
public static class ImageUpscaling
{
    /// <summary>An NHWC RGB decoder output [1, H, W, 3] upscaled to [1, height, width, 3], VAE-ready.</summary>
    public static Tensor Upscale(Tensor decoded, int height, int width, ImageUpscaler upscaler) =>
        Upscale(decoded, height, width, rgb => Upscale(rgb, decoded.Dim(1), decoded.Dim(2), height, width, upscaler));

    /// <summary>As the other overload with an ESRGAN-family model upscaler (see <see cref="Upscale(byte[], int, int, int, int, EsrganUpscaler, CancellationToken)"/>).</summary>
    public static Tensor Upscale(Tensor decoded, int height, int width, EsrganUpscaler model, CancellationToken cancellation = default) =>
        Upscale(decoded, height, width, rgb => Upscale(rgb, decoded.Dim(1), decoded.Dim(2), height, width, model, cancellation));

    private static Tensor Upscale(Tensor decoded, int height, int width, Func<byte[], byte[]> resize)
    {
        ArgumentNullException.ThrowIfNull(decoded);
        if (decoded.Rank != 4 || decoded.Dim(0) != 1 || decoded.Dim(3) != 3)
        {
            throw new ArgumentException($"the picture must be [1, H, W, 3], got {decoded}", nameof(decoded));
        }
        int h = decoded.Dim(1), w = decoded.Dim(2);
        var bytes = new byte[h * w * 3];
        ReadOnlySpan<float> x = decoded.Span;
        for (int i = 0; i < bytes.Length; i++)
        {
            float unit = Math.Clamp((x[i] + 1f) / 2f, 0f, 1f);
            bytes[i] = (byte)(255f * unit);
        }
        byte[] resized = resize(bytes);
        Tensor result = Tensor.Allocate([1, height, width, 3]);
        Span<float> y = result.Span;
        for (int i = 0; i < resized.Length; i++)
        {
            float unit = resized[i] / 255f;
            y[i] = 2f * unit - 1f;
        }
        return result;
    }

    /// <summary>The most pixels an upscaled picture may have, as a PNG file here (2^28; sides up to 65535).</summary>
    public const long MaxPixels = PngFile.MaxPixels;

    /// <summary>
    /// An 8-bit RGB picture resized as A1111's images.resize_image(0, ...) with <paramref name="upscaler"/>: "None"
    /// resizes to the size with Lanczos; "Lanczos" and "Nearest", when the size is larger (scale = the larger of the
    /// two ratios), first run Upscaler.upscale (<see cref="UpscaleBy"/>) with a Lanczos (or nearest-neighbour) resize
    /// to int(side x scale) as its step.
    /// </summary>
    public static byte[] Upscale(byte[] rgb, int height, int width, int toHeight, int toWidth, ImageUpscaler upscaler) =>
        ResizeImage(rgb, height, width, toHeight, toWidth,
            upscaler is ImageUpscaler.None ? null : upscaler is ImageUpscaler.Nearest ? Upscaler.Nearest : Upscaler.Lanczos, default);

    /// <summary>
    /// As the other overload with an ESRGAN-family model (A1111's ESRGAN and R-ESRGAN upscalers): Upscaler.upscale's
    /// step is one pass of the model (<see cref="EsrganUpscaler.UpscaleOnce"/>), run until the picture covers the
    /// size (a 4x model once for a hires scale up to 4).
    /// </summary>
    public static byte[] Upscale(byte[] rgb, int height, int width, int toHeight, int toWidth, EsrganUpscaler model, CancellationToken cancellation = default) =>
        ResizeImage(rgb, height, width, toHeight, toWidth, Upscaler.Of(model), cancellation);

    /// <summary>
    /// resize_image(0, ...): when the size is larger (scale = the larger of the two ratios) and there is an upscaler,
    /// <see cref="UpscaleBy"/>; then, as always, a Lanczos resize to the size where that differs.
    /// </summary>
    private static byte[] ResizeImage(byte[] rgb, int height, int width, int toHeight, int toWidth, Upscaler? upscaler, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        double scale = Math.Max(toWidth / (double)width, toHeight / (double)height);
        (byte[] picture, int h, int w) = upscaler is { } step && scale > 1.0 ? UpscaleBy(rgb, height, width, scale, step, cancellation) : (rgb, height, width);
        return Resize(picture, h, w, toHeight, toWidth).Picture;
    }

    /// <summary>
    /// A1111's Upscaler.upscale: the upscaler's step up to three times until the picture reaches dest = (side x
    /// scale) // 8 x 8 on both sides (at a scale of 1 the step runs once all the same; a step that changes no size
    /// ends the loop), then a Lanczos resize to dest where that differs. An RGB picture [height, width, 3] becomes
    /// one of dest (a new array, even when nothing changed).
    /// </summary>
    /// <exception cref="ArgumentException">The picture does not match its size, the scale is not above 0, dest has
    /// no pixel, or dest or a step's picture would be larger than a PNG file holds (<see cref="MaxPixels"/>).</exception>
    public static (byte[] Picture, int Height, int Width) UpscaleBy(byte[] rgb, int height, int width, double scale, Upscaler upscaler, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        if (rgb.Length != (long)height * width * 3)
        {
            throw new ArgumentException($"an RGB picture of {height}x{width} holds {(long)height * width * 3} bytes, got {rgb.Length}", nameof(rgb));
        }
        if (!(scale > 0) || double.IsInfinity(scale))
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "the scale must be a finite number above 0");
        }
        // (side x scale) // 8 x 8: a division by 8 is exact in binary, so Python's float floor division is Floor.
        double destW = Math.Floor(width * scale / 8) * 8, destH = Math.Floor(height * scale / 8) * 8;
        CheckSize(destH, destW, height, width, scale, "the result");
        byte[] picture = rgb;
        int h = height, w = width;
        for (int i = 0; i < 3; i++)
        {
            if (w >= destW && h >= destH && (i > 0 || scale != 1))
            {
                break;
            }
            cancellation.ThrowIfCancellationRequested();
            (long stepH, long stepW) = upscaler.StepSize(h, w, scale);
            CheckSize(stepH, stepW, height, width, scale, $"{upscaler.Name}'s pass {i + 1} ({h}x{w} to {stepH}x{stepW})");
            picture = upscaler.Step(picture, h, w, scale, cancellation);
            if ((stepH, stepW) == (h, w))
            {
                break;
            }
            (h, w) = ((int)stepH, (int)stepW);
        }
        (picture, h, w) = Resize(picture, h, w, (int)destH, (int)destW);
        return (ReferenceEquals(picture, rgb) ? (byte[])rgb.Clone() : picture, h, w); // never the caller's array
    }

    private static void CheckSize(double h, double w, int height, int width, double scale, string what)
    {
        if (h < 1 || w < 1 || h > PngFile.MaxDimension || w > PngFile.MaxDimension || h * w > MaxPixels)
        {
            throw new ArgumentException($"upscaling a {height}x{width} picture by {scale}: {what} would be {h}x{w}; a picture here has 1 to {PngFile.MaxDimension} pixels a side and at most {MaxPixels} in all (A1111 floors the result's sides to multiples of 8)", nameof(scale));
        }
    }

    /// <summary>Pillow's Lanczos (or nearest-neighbour) resize of an RGB picture; one of the size already is returned as it is.</summary>
    internal static (byte[] Picture, int Height, int Width) Resize(byte[] picture, int h, int w, int toHeight, int toWidth, bool nearest = false)
    {
        if (h == toHeight && w == toWidth)
        {
            return (picture, h, w);
        }
        var resized = new byte[toHeight * toWidth * 3];
        if (nearest)
        {
            PilNearest.Resize(picture, h, w, 3, resized, toHeight, toWidth);
        }
        else
        {
            PilResample.Resize(picture, h, w, 3, resized, toHeight, toWidth);
        }
        return (resized, toHeight, toWidth);
    }
}
