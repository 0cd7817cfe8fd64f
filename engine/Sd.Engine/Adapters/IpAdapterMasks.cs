using Sd.Engine.Imaging;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Png;

namespace Sd.Engine.Adapters;

/// <summary>
/// diffusers' IP-Adapter masks (ip_adapter_masks): each picture of an adapter steers only where its mask is white.
/// A mask is made binary at the output size (<see cref="Binarize"/>), and every cross-attention layer reads it as a
/// weight per query, the mask resized to about that layer's grid (<see cref="Downsample"/>); the picture's image
/// attention is multiplied by it.
/// </summary>
/// Reference: diffusers 0.27 image_processor.py IPAdapterMaskProcessor (preprocess, downsample) and
/// IPAdapterAttnProcessor2_0's masked branch.
public static unsafe class IpAdapterMasks
{
    /// <summary>
    /// IPAdapterMaskProcessor.preprocess: the mask resized to <paramref name="width"/> x <paramref name="height"/> by
    /// Pillow's Lanczos, then made gray (convert("L")), / 255 in float32 and binarized at 0.5 (so 128 and up is 1):
    /// [height x width] values of 0 or 1. An RGBA mask is read as its RGB (Pillow would resize it premultiplied, which
    /// differs only where it is see-through).
    /// </summary>
    public static float[] Binarize(PngImage mask, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(mask);
        PngImage resized = ImageConversion.AsGray(PictureResize.Resize(mask.Channels == 1 ? mask : ImageConversion.AsRgb(mask), width, height, ResizeMode.Just));
        var binary = new float[resized.Pixels.Length];
        for (int i = 0; i < binary.Length; i++) binary[i] = resized.Pixels[i] / 255f >= 0.5f ? 1f : 0f;
        return binary;
    }

    /// <summary>
    /// IPAdapterMaskProcessor.downsample: a <paramref name="height"/> x <paramref name="width"/> mask as
    /// <paramref name="queries"/> weights, one per query of a layer. The grid keeps the mask's aspect ratio: its height
    /// is int(sqrt(queries / ratio)), one more when that does not divide the queries, its width queries // height; the
    /// mask is resized to it by F.interpolate(mode="bicubic") (values may overshoot [0, 1], as there), read row by row,
    /// and padded with zeros or cut to the queries where the grid's area differs (another aspect ratio than the
    /// latents'). A grid height of 0, where diffusers divides by zero, is taken as 1.
    /// </summary>
    public static float[] Downsample(ReadOnlySpan<float> mask, int height, int width, int queries)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(queries, 1);
        if (mask.Length != (long)height * width)
        {
            throw new ArgumentException($"the mask holds {mask.Length} values, {height}x{width} needs {(long)height * width}", nameof(mask));
        }
        double ratio = (double)width / height;
        int gridHeight = Math.Max(1, (int)Math.Sqrt(queries / ratio));
        gridHeight += queries % gridHeight != 0 ? 1 : 0;
        int gridWidth = queries / gridHeight;
        var grid = new float[gridHeight * gridWidth];
        fixed (float* src = mask)
        fixed (float* dst = grid)
        {
            Interpolation.Resize(src, dst, 1, height, width, gridHeight, gridWidth, 1, InterpolationMode.Bicubic);
        }
        var weights = new float[queries];
        grid.AsSpan(0, Math.Min(grid.Length, queries)).CopyTo(weights);
        return weights;
    }
}
