using Sd.Engine.Tensors;
using Sd.Loaders.Png;

namespace Sd.Engine.Imaging;

/// <summary>
/// Between VAE tensors (NHWC, about [-1, 1]) and pictures, as diffusers' VaeImageProcessor does:
/// to a picture <c>(x / 2 + 0.5).clamp(0, 1)</c>, then <c>round(v * 255)</c> (half to even, like numpy);
/// from a picture <c>2 * (byte / 255) - 1</c>.
/// </summary>
public static unsafe class ImageConversion
{
    /// <summary>Decoder output value to [0, 1] (diffusers' denormalize).</summary>
    public static float ToUnit(float x) => Math.Clamp(x / 2 + 0.5f, 0f, 1f);

    /// <summary>Image <paramref name="index"/> of an NHWC RGB tensor as an 8-bit RGB picture.</summary>
    public static PngImage ToRgb8(Tensor image, int index, IReadOnlyDictionary<string, string>? text = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Rank != 4 || image.Dim(3) != 3)
        {
            throw new ArgumentException($"expected an NHWC RGB tensor [N, H, W, 3], got {image}", nameof(image));
        }
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, image.Dim(0));
        int height = image.Dim(1), width = image.Dim(2);
        var pixels = new byte[height * width * 3];
        float* source = image.Data + (long)index * pixels.Length;
        for (int i = 0; i < pixels.Length; i++)
        {
            float v = ToUnit(source[i]);
            pixels[i] = (byte)MathF.Round(v * 255f, MidpointRounding.ToEven);
        }
        return new PngImage(width, height, 3, pixels, text);
    }

    /// <summary>
    /// An inpainting mask picture as [1, H, W, 1] in [0, 1] (white = repaint): its gray as Pillow's convert("L") gives
    /// it (<see cref="GrayBytes"/>, as diffusers' mask processor and A1111 read opaque masks; A1111 takes a
    /// see-through RGBA mask's alpha instead) / 255.
    /// </summary>
    public static Tensor MaskFromPng(PngImage picture) => UnitTensor(AsGray(picture));

    /// <summary>A picture as [1, H, W, its channels] in [0, 1]: each byte / 255 (a mask, a ControlNet's or adapter's picture).</summary>
    public static Tensor UnitTensor(PngImage picture)
    {
        ArgumentNullException.ThrowIfNull(picture);
        Tensor tensor = Tensor.Allocate([1, picture.Height, picture.Width, picture.Channels]);
        byte[] pixels = picture.Pixels;
        Span<float> values = tensor.Span;
        for (int i = 0; i < pixels.Length; i++) values[i] = pixels[i] / 255f;
        return tensor;
    }

    /// <summary>An 8-bit picture as RGB (<see cref="RgbBytes"/>): the picture itself when it is RGB already.</summary>
    public static PngImage AsRgb(PngImage picture)
    {
        ArgumentNullException.ThrowIfNull(picture);
        return picture.Channels == 3 ? picture : new PngImage(picture.Width, picture.Height, 3, RgbBytes(picture));
    }

    /// <summary>
    /// The picture as RGB with every value v made 255 - v: the A1111 ControlNet extension's "invert" preprocessor,
    /// which turns black lines drawn on white into the white-on-black lines lineart and scribble ControlNets take.
    /// </summary>
    public static PngImage InvertedRgb(PngImage picture)
    {
        byte[] rgb = RgbBytes(picture);
        var inverted = new byte[rgb.Length];
        for (long i = 0; i < inverted.Length; i++) inverted[i] = (byte)(255 - rgb[i]);
        return new PngImage(picture.Width, picture.Height, 3, inverted);
    }

    /// <summary>An 8-bit picture as gray (<see cref="GrayBytes"/>): the picture itself when it is gray already.</summary>
    public static PngImage AsGray(PngImage picture)
    {
        ArgumentNullException.ThrowIfNull(picture);
        return picture.Channels == 1 ? picture : new PngImage(picture.Width, picture.Height, 1, GrayBytes(picture));
    }

    /// <summary>
    /// An 8-bit picture's gray bytes [H, W], as Pillow's convert("L"): RGB(A) by ITU-R 601-2 luma in 16-bit fixed
    /// point, (R x 19595 + G x 38470 + B x 7471 + 2^15) >> 16, alpha dropped; a gray picture's own pixels (not a copy).
    /// </summary>
    public static byte[] GrayBytes(PngImage picture)
    {
        ArgumentNullException.ThrowIfNull(picture);
        if (picture.Channels == 1)
        {
            return picture.Pixels;
        }
        int pixels = picture.Width * picture.Height, channels = picture.Channels;
        var gray = new byte[pixels];
        byte[] x = picture.Pixels;
        for (int p = 0; p < pixels; p++)
        {
            int i = p * channels;
            gray[p] = (byte)((x[i] * 19595 + x[i + 1] * 38470 + x[i + 2] * 7471 + 0x8000) >> 16);
        }
        return gray;
    }

    /// <summary>A decoded PNG (gray, RGB or RGBA; alpha dropped) as a [1, H, W, 3] tensor in [-1, 1].</summary>
    public static Tensor FromPng(PngImage picture)
    {
        byte[] rgb = RgbBytes(picture);
        Tensor tensor = Tensor.Allocate([1, picture.Height, picture.Width, 3]);
        float* dst = tensor.Data;
        for (int i = 0; i < rgb.Length; i++)
        {
            dst[i] = 2f * (rgb[i] / 255f) - 1f;
        }
        return tensor;
    }

    /// <summary>
    /// An 8-bit picture's RGB bytes [H, W, 3], as Pillow's convert("RGB"): gray repeated, alpha dropped. An RGB
    /// picture's own pixels, not a copy.
    /// </summary>
    public static byte[] RgbBytes(PngImage picture)
    {
        ArgumentNullException.ThrowIfNull(picture);
        if (picture.Channels == 3)
        {
            return picture.Pixels;
        }
        int pixels = picture.Width * picture.Height, channels = picture.Channels;
        var rgb = new byte[(long)pixels * 3];
        for (int p = 0; p < pixels; p++)
        {
            for (int c = 0; c < 3; c++)
            {
                rgb[p * 3 + c] = picture.Pixels[p * channels + (channels == 1 ? 0 : c)];
            }
        }
        return rgb;
    }
}
