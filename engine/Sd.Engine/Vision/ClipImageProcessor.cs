using Sd.Engine.Imaging;
using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Png;

namespace Sd.Engine.Vision;

/// <summary>
/// A picture as a CLIP image encoder takes it: RGB, resized with Pillow's bicubic filter so that its shorter side is
/// the encoder's image_size (the longer side int(size x long / short)), centre-cropped to a square of that side, then
/// each value v / 255 normalized with CLIP's mean and standard deviation per channel.
/// Reference: transformers 4.38 CLIPImageProcessor.preprocess (image_processing_clip.py) with diffusers' SD
/// feature_extractor settings (shortest_edge = crop side = 224 for ViT-H/14, resample 3 = bicubic).
/// </summary>
public static class ClipImageProcessor
{
    private static readonly float[] Mean = [0.48145466f, 0.4578275f, 0.40821073f];
    private static readonly float[] Std = [0.26862954f, 0.26130258f, 0.27577711f];

    /// <summary>The most pixels the resize before the crop may make (a 1 x 4000 strip would make 224 x 896000).</summary>
    private const long MaxResizedPixels = 1L << 26;

    /// <summary>pixel_values of <paramref name="picture"/> as [1, size, size, 3] (NHWC).</summary>
    public static Tensor Preprocess(PngImage picture, int size)
    {
        ArgumentNullException.ThrowIfNull(picture);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        PngImage rgb = ImageConversion.AsRgb(picture);
        (int width, int height) = ShortestEdge(rgb.Width, rgb.Height, size);
        if ((long)width * height > MaxResizedPixels)
        {
            throw new ArgumentException($"a {picture.Width}x{picture.Height} picture would be resized to {width}x{height} before its centre is cut out; " +
                "its sides are too unequal (crop it first)", nameof(picture));
        }
        var resized = new byte[(long)width * height * 3];
        PilResample.Resize(rgb.Pixels, rgb.Height, rgb.Width, 3, resized, height, width, PilFilter.Bicubic);
        // transformers' center_crop: the offsets round down.
        int top = (height - size) / 2, left = (width - size) / 2;
        Tensor pixels = Tensor.Allocate([1, size, size, 3]);
        Span<float> values = pixels.Span;
        for (int y = 0; y < size; y++)
        {
            for (int x = 0; x < size; x++)
            {
                for (int c = 0; c < 3; c++)
                {
                    // rescale in double then float32, as numpy's uint8 x float then astype(float32); normalize in float32.
                    float unit = (float)(resized[((long)(top + y) * width + left + x) * 3 + c] * (1.0 / 255));
                    values[(y * size + x) * 3 + c] = (unit - Mean[c]) / Std[c];
                }
            }
        }
        return pixels;
    }

    /// <summary>transformers' get_resize_output_image_size with default_to_square=False: the shorter side becomes <paramref name="size"/>.</summary>
    private static (int Width, int Height) ShortestEdge(int width, int height, int size)
    {
        bool portrait = width <= height;
        int shorter = portrait ? width : height, longer = portrait ? height : width;
        // Python's int(size * long / short): exact product, true division, truncation.
        int scaled = checked((int)((double)((long)size * longer) / shorter));
        return portrait ? (size, scaled) : (scaled, size);
    }
}
