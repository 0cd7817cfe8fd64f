using Sd.Loaders.Png;

namespace Sd.Engine.Imaging;

/// <summary>
/// A1111's masked content "fill", byte for byte on Pillow 9.4: the masked area of the run's picture is painted over
/// with the colours around it before the run, so the model starts from a smooth guess rather than from what was
/// there. The picture seen through the inverted mask (premultiplied, so the masked area is empty) is blurred at radii
/// 256, 64, 16, 4, 2 and 0 (Pillow's GaussianBlur) and each blur, back in straight alpha, is laid over the last (1,
/// 1, 2, 4, 2 and 1 times): wide blurs reach into the middle of large holes, narrow ones keep detail near their edge,
/// and the last puts back every pixel the mask leaves alone.
/// </summary>
/// Reference: A1111 1.10 modules/masking.py (fill), run by StableDiffusionProcessingImg2Img.init with the run's mask.
internal static class MaskedContentFill
{
    private static ReadOnlySpan<int> Radii => [256, 64, 16, 4, 2, 0];
    private static ReadOnlySpan<int> Repeats => [1, 1, 2, 4, 2, 1];

    /// <summary>The RGB <paramref name="picture"/> filled where the gray <paramref name="mask"/> (its size) is white.</summary>
    public static PngImage Fill(PngImage picture, PngImage mask)
    {
        int width = picture.Width, height = picture.Height;
        byte[] masked = PilCompositing.PremultipliedMasked(picture.Pixels, mask.Pixels);
        var canvas = new byte[width * height * 4]; // Image.new("RGBA"): transparent black
        for (int i = 0; i < Radii.Length; i++)
        {
            byte[] blurred = PilGaussianBlur.Blur(masked, width, height, 4, Radii[i]);
            PilCompositing.Unpremultiply(blurred);
            for (int r = 0; r < Repeats[i]; r++)
                PilCompositing.AlphaComposite(canvas, blurred);
        }
        return ImageConversion.AsRgb(new PngImage(width, height, 4, canvas)); // convert("RGB"): alpha dropped
    }
}
