using Sd.Engine.Tensors;
using Sd.Engine.Upscaling;
using Sd.Kernels.Elementwise;

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

    /// <summary>
    /// An 8-bit RGB picture resized as A1111's images.resize_image(0, ...) with <paramref name="upscaler"/>: "None"
    /// resizes to the size with Lanczos; "Lanczos" and "Nearest", when the size is larger (scale = the larger of the
    /// two ratios), first run Upscaler.upscale (see <see cref="UpscaleThenResize"/>) with a Lanczos (or
    /// nearest-neighbour) resize to int(side x scale) as its step.
    /// </summary>
    public static byte[] Upscale(byte[] rgb, int height, int width, int toHeight, int toWidth, ImageUpscaler upscaler)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        double scale = Math.Max(toWidth / (double)width, toHeight / (double)height);
        return UpscaleThenResize(rgb, height, width, toHeight, toWidth, upscaler is ImageUpscaler.None ? null
            : (picture, h, w) => (Resize(picture, h, w, (int)(h * scale), (int)(w * scale), upscaler == ImageUpscaler.Nearest).Picture, (int)(h * scale), (int)(w * scale)));
    }

    /// <summary>
    /// As the other overload with an ESRGAN-family model (A1111's ESRGAN and R-ESRGAN upscalers): Upscaler.upscale's
    /// step is one pass of the model (<see cref="EsrganUpscaler.UpscaleOnce"/>), run until the picture covers the
    /// size (a 4x model once for a hires scale up to 4).
    /// </summary>
    public static byte[] Upscale(byte[] rgb, int height, int width, int toHeight, int toWidth, EsrganUpscaler model, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        ArgumentNullException.ThrowIfNull(model);
        return UpscaleThenResize(rgb, height, width, toHeight, toWidth,
            (picture, h, w) => (model.UpscaleOnce(picture, h, w, cancellation), h * model.Scale, w * model.Scale));
    }

    /// <summary>
    /// resize_image(0, ...): when the size is larger (scale = the larger of the two ratios) and there is an upscaler
    /// step, Upscaler.upscale: the step up to three times until the picture reaches dest = (side x scale) // 8 x 8 on
    /// both sides (stopping if a step changes nothing), then a Lanczos resize to dest where that differs; then, as
    /// always, a Lanczos resize to the size where that differs. Pillow returns a picture of its own size as it is.
    /// </summary>
    private static byte[] UpscaleThenResize(byte[] rgb, int height, int width, int toHeight, int toWidth, Func<byte[], int, int, (byte[], int, int)>? step)
    {
        byte[] picture = rgb;
        int h = height, w = width;
        double scale = Math.Max(toWidth / (double)width, toHeight / (double)height);
        if (step != null && scale > 1.0)
        {
            int destW = (int)(Math.Floor(width * scale / 8) * 8), destH = (int)(Math.Floor(height * scale / 8) * 8);
            for (int i = 0; i < 3 && !(w >= destW && h >= destH); i++)
            {
                (int oldH, int oldW) = (h, w);
                (picture, h, w) = step(picture, h, w);
                if ((h, w) == (oldH, oldW)) break;
            }
            (picture, h, w) = Resize(picture, h, w, destH, destW);
        }
        return Resize(picture, h, w, toHeight, toWidth).Picture;
    }

    private static (byte[] Picture, int Height, int Width) Resize(byte[] picture, int h, int w, int toHeight, int toWidth, bool nearest = false)
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
            PilLanczos.Resize(picture, h, w, 3, resized, toHeight, toWidth);
        }
        return (resized, toHeight, toWidth);
    }
}
