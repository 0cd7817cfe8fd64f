using Sd.Kernels.Elementwise;
using Sd.Loaders.Png;

namespace Sd.Engine.Imaging;

/// <summary>
/// The canny preprocessor of a ControlNet's picture, as diffusers' canny ControlNet examples make it: the picture as
/// RGB (diffusers' load_image, Pillow's convert("RGB")), <c>cv2.Canny(picture, low, high)</c> (<see cref="CvCanny"/>,
/// bit for bit), and the edges repeated in three channels, white on black. At the picture's own size: A1111's
/// ControlNet extension first resizes it to its "Processor Res" (512 on the short side), which Sd does not.
/// </summary>
/// Reference: diffusers docs, "ControlNet" (Canny: cv2.Canny(image, 100, 200), image[:, :, None] repeated thrice);
/// sd-webui-controlnet annotator canny (thresholds 100 and 200 by default).
public static class CannyEdges
{
    public const double DefaultLow = 100, DefaultHigh = 200;

    /// <summary>
    /// The edge picture of <paramref name="picture"/>: pixels whose gradient passes hysteresis between
    /// <paramref name="low"/> and <paramref name="high"/> (finite; swapped if low is the larger) are white.
    /// </summary>
    public static PngImage Detect(PngImage picture, double low = DefaultLow, double high = DefaultHigh)
    {
        ArgumentNullException.ThrowIfNull(picture);
        int width = picture.Width, height = picture.Height;
        var edges = new byte[(long)width * height];
        CvCanny.Detect(ImageConversion.RgbBytes(picture), height, width, 3, low, high, edges);
        var rgb = new byte[edges.Length * 3L];
        for (long p = 0; p < edges.Length; p++)
        {
            rgb[p * 3] = rgb[p * 3 + 1] = rgb[p * 3 + 2] = edges[p];
        }
        return new PngImage(width, height, 3, rgb);
    }
}
