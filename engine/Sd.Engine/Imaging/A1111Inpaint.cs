using Sd.Engine.Pipelines;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Png;

namespace Sd.Engine.Imaging;

/// <summary>
/// A1111's inpainting around a run, on 8-bit pictures, byte for byte with A1111 1.10 on Pillow 9.4 and OpenCV 4.6:
/// <list type="number">
/// <item>An RGBA picture is flattened onto white (A1111's images.flatten with its default background colour).</item>
/// <item>The mask is read as A1111's create_binary_mask does: a see-through RGBA mask's alpha, over 128 or not; any other's gray (Pillow's convert("L")). Then it is inverted if asked.</item>
/// <item>It is blurred across and then down (<see cref="InpaintSettings.MaskBlur"/>; kernel 2 int(2.5 blur + 0.5) + 1).</item>
/// <item>Whole picture: the picture and the mask are resized to the run's size by the resize mode; the overlay is
/// the resized picture seen through twice the mask, clipped: opaque where the mask is 0, gone where it is 128 or
/// more, so the picture fades in across the outer half of the blur.</item>
/// <item>Only masked: the region is cut out of both, each resized to the run's size by Resize and fill; the overlay
/// is the whole picture seen through the blurred mask itself.</item>
/// <item>After the run (<see cref="Finish"/>), the result (Only masked: scaled by Crop and resize into its region of
/// an empty picture of the original's size) is covered by the overlay: the picture's own pixels come back wherever the
/// mask did not reach.</item>
/// </list>
/// A mask with nothing to repaint under Only masked makes the run plain img2img of the whole picture, with no mask
/// and no overlay, as A1111 does. The run starts from the picture (masked content "original", A1111's default, and
/// the latent fills, which the pipeline applies: <see cref="MaskedLatents"/>) or from the picture filled under the run's
/// mask (<see cref="MaskedContent.Fill"/>).
/// </summary>
/// Reference: A1111 1.10 modules/processing.py (create_binary_mask, StableDiffusionProcessingImg2Img.init,
/// apply_overlay, uncrop), modules/images.py (flatten) and modules/masking.py (get_crop_region_v2, expand_crop_region).
public sealed class A1111Inpaint
{
    private readonly PngImage? _overlay; // RGBA, straight alpha: the output's size

    private A1111Inpaint(InpaintSettings settings, PngImage picture, PngImage? mask, PngImage? overlay, PictureRegion? pasteTo)
    {
        Settings = settings;
        Picture = picture;
        Mask = mask;
        _overlay = overlay;
        PasteTo = pasteTo;
    }

    /// <summary>The settings these pictures were made with.</summary>
    public InpaintSettings Settings { get; }

    /// <summary>The run's init picture (RGB, the run's size), filled under its mask for <see cref="MaskedContent.Fill"/>.</summary>
    public PngImage Picture { get; }

    /// <summary>The run's mask (gray, the run's size: white repaints); null when Only masked found nothing to repaint (plain img2img).</summary>
    public PngImage? Mask { get; }

    /// <summary>Only masked: the region of the original picture the run repaints; null for the whole picture.</summary>
    public PictureRegion? PasteTo { get; }

    /// <summary>
    /// The run's <see cref="GenerateRequest.MaskedLatents"/>: Noise for latent noise, Zeros for latent nothing, Picture
    /// otherwise and where Only masked found nothing to repaint (A1111 fills only under a mask).
    /// </summary>
    public MaskedLatents MaskedLatents => Mask is null ? MaskedLatents.Picture : Settings.MaskedContent switch
    {
        MaskedContent.LatentNoise => MaskedLatents.Noise,
        MaskedContent.LatentNothing => MaskedLatents.Zeros,
        _ => MaskedLatents.Picture,
    };

    /// <summary>
    /// Prepares an inpainting run of <paramref name="width"/> x <paramref name="height"/> from an RGB or RGBA
    /// <paramref name="picture"/> and a <paramref name="mask"/> of any channels (white repaints).
    /// </summary>
    /// <exception cref="ArgumentException">A gray picture, a size below 1, what <see cref="Check"/> refuses, or a
    /// picture or mask the resize mode cannot bring to the size (named by the exception's parameter).</exception>
    public static A1111Inpaint Prepare(PngImage picture, PngImage mask, int width, int height, ResizeMode mode, InpaintSettings settings)
    {
        Check(picture, mask, settings);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (picture.Channels == 1)
        {
            throw new ArgumentException("the picture must be RGB or RGBA, got a gray one", nameof(picture));
        }
        picture = picture.Channels == 4 ? new PngImage(picture.Width, picture.Height, 3, PilCompositing.OnWhite(picture.Pixels)) : picture;
        PngImage blurred = Blurred(BinaryMask(mask, settings.InvertMask), settings.MaskBlur);
        if (!settings.OnlyMasked)
        {
            PngImage runPicture = PictureResize.Resize(picture, width, height, mode), runMask = ResizedMask(blurred, width, height, mode);
            var seen = new byte[runMask.Pixels.Length];
            for (int p = 0; p < seen.Length; p++) seen[p] = (byte)Math.Min(2 * runMask.Pixels[p], 255);
            return new A1111Inpaint(settings, Filled(runPicture, runMask, settings), runMask, Overlay(runPicture, seen), null);
        }
        if (CropRegion(blurred, settings.Padding) is not { } box)
        {
            return new A1111Inpaint(settings, PictureResize.Resize(picture, width, height, mode), null, null, null);
        }
        PictureRegion region = Expand(box, width, height, picture.Width, picture.Height);
        PngImage regionMask = PictureResize.Resize(PictureResize.Crop(blurred, region), width, height, ResizeMode.Fill);
        PngImage regionPicture = PictureResize.Resize(PictureResize.Crop(picture, region), width, height, ResizeMode.Fill);
        return new A1111Inpaint(settings, Filled(regionPicture, regionMask, settings), regionMask, Overlay(picture, blurred.Pixels), region);
    }

    /// <summary>
    /// The checks <see cref="Prepare"/> makes before any pixel work, for a caller to make before it loads a model:
    /// the settings' ranges, and for Only masked a mask of the picture's size.
    /// </summary>
    /// <exception cref="ArgumentException">Settings out of range, or Only masked with a mask of another size.</exception>
    public static void Check(PngImage picture, PngImage mask, InpaintSettings settings)
    {
        ArgumentNullException.ThrowIfNull(picture);
        ArgumentNullException.ThrowIfNull(mask);
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.MaskBlur is < 0 or > InpaintSettings.MaxMaskBlur || settings.Padding is < 0 or > InpaintSettings.MaxPadding)
        {
            throw new ArgumentException($"mask blur {settings.MaskBlur} and padding {settings.Padding}: the blur is 0 to {InpaintSettings.MaxMaskBlur} pixels, " +
                $"the padding 0 to {InpaintSettings.MaxPadding}", nameof(settings));
        }
        if (!Enum.IsDefined(settings.MaskedContent))
        {
            throw new ArgumentException($"masked content {(int)settings.MaskedContent} is none of original, fill, latent noise, latent nothing", nameof(settings));
        }
        if (settings.OnlyMasked && (mask.Width != picture.Width || mask.Height != picture.Height))
        {
            throw new ArgumentException($"Only masked cuts the same region out of the picture and the mask: the mask is {mask.Width}x{mask.Height}, " +
                $"the picture {picture.Width}x{picture.Height}", nameof(mask));
        }
    }

    /// <summary>The run's picture under the settings' masked content: filled under <paramref name="mask"/>, or as it is.</summary>
    private static PngImage Filled(PngImage picture, PngImage mask, InpaintSettings settings) =>
        settings.MaskedContent == MaskedContent.Fill ? MaskedContentFill.Fill(picture, mask) : picture;

    /// <summary>The blurred mask at the run's size; one the mode cannot bring there is the mask's error (PictureResize names its picture).</summary>
    private static PngImage ResizedMask(PngImage mask, int width, int height, ResizeMode mode)
    {
        try
        {
            return PictureResize.Resize(mask, width, height, mode);
        }
        catch (ArgumentException e) when (e.ParamName == "picture")
        {
            throw new ArgumentException($"the mask: {e.Message.Replace(" (Parameter 'picture')", "", StringComparison.Ordinal)}", nameof(mask), e);
        }
    }

    /// <summary>
    /// The run's RGB <paramref name="result"/> (the run's size) with the overlay laid over it: the original's size
    /// under Only masked, the run's otherwise. The result's text is kept.
    /// </summary>
    /// <exception cref="ArgumentException">A result that is not RGB at the run's size.</exception>
    public PngImage Finish(PngImage result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Channels != 3 || result.Width != Picture.Width || result.Height != Picture.Height)
        {
            throw new ArgumentException($"the result must be an RGB {Picture.Width}x{Picture.Height} picture (the run's), got {result.Width}x{result.Height} " +
                $"with {result.Channels} channels", nameof(result));
        }
        if (_overlay is null)
        {
            return result;
        }
        PngImage canvas = PasteTo is { } region ? Uncropped(result, region, _overlay) : Opaque(result);
        PilCompositing.AlphaComposite(canvas.Pixels, _overlay.Pixels);
        return new PngImage(canvas.Width, canvas.Height, 3, ImageConversion.RgbBytes(canvas), result.Text);
    }

    /// <summary>
    /// A1111's create_binary_mask, then ImageOps.invert if asked: an RGBA mask with any alpha below 255 is its alpha,
    /// 255 over 128 and 0 else; any other mask is its gray, as it is.
    /// </summary>
    public static PngImage BinaryMask(PngImage mask, bool invert)
    {
        ArgumentNullException.ThrowIfNull(mask);
        int pixels = mask.Width * mask.Height;
        bool seeThrough = false;
        if (mask.Channels == 4)
        {
            for (int p = 0; p < pixels && !seeThrough; p++) seeThrough = mask.Pixels[p * 4 + 3] != 255;
        }
        var gray = new byte[pixels];
        if (seeThrough)
        {
            for (int p = 0; p < pixels; p++) gray[p] = mask.Pixels[p * 4 + 3] > 128 ? (byte)255 : (byte)0;
        }
        else
        {
            ImageConversion.GrayBytes(mask).CopyTo(gray, 0);
        }
        if (invert)
        {
            for (int p = 0; p < pixels; p++) gray[p] = (byte)(255 - gray[p]);
        }
        return new PngImage(mask.Width, mask.Height, 1, gray);
    }

    /// <summary>A1111's mask blur: cv2.GaussianBlur across, ksize (n, 1), then down, (1, n), with sigma = blur.</summary>
    private static PngImage Blurred(PngImage mask, int blur)
    {
        if (blur == 0)
        {
            return mask;
        }
        int[] taps = CvGaussianBlur.Taps(2 * (int)(2.5 * blur + 0.5) + 1, blur);
        var across = new byte[mask.Pixels.Length];
        var down = new byte[mask.Pixels.Length];
        CvGaussianBlur.Blur(mask.Pixels, across, mask.Height, mask.Width, across: true, taps);
        CvGaussianBlur.Blur(across, down, mask.Height, mask.Width, across: false, taps);
        return new PngImage(mask.Width, mask.Height, 1, down);
    }

    /// <summary>
    /// A1111's get_crop_region_v2: the bounding box of the mask's non-zero pixels, grown by the padding on each side
    /// and clipped to the mask, as (x1, y1, x2, y2); null for a mask of zeros.
    /// </summary>
    private static (int X1, int Y1, int X2, int Y2)? CropRegion(PngImage mask, int padding)
    {
        int x1 = mask.Width, y1 = mask.Height, x2 = 0, y2 = 0;
        for (int y = 0; y < mask.Height; y++)
        {
            for (int x = 0; x < mask.Width; x++)
            {
                if (mask.Pixels[y * mask.Width + x] != 0)
                {
                    (x1, y1, x2, y2) = (Math.Min(x1, x), Math.Min(y1, y), Math.Max(x2, x + 1), Math.Max(y2, y + 1));
                }
            }
        }
        return x2 == 0 ? null
            : (Math.Max(x1 - padding, 0), Math.Max(y1 - padding, 0), Math.Min(x2 + padding, mask.Width), Math.Min(y2 + padding, mask.Height));
    }

    /// <summary>
    /// A1111's expand_crop_region: the box grown on its short side (half each way, the far side taking the odd pixel)
    /// to the run's aspect ratio, shifted back inside the picture where it crosses an edge and cut at the far edge
    /// when it is larger than the picture.
    /// </summary>
    private static PictureRegion Expand((int X1, int Y1, int X2, int Y2) box, int width, int height, int pictureWidth, int pictureHeight)
    {
        (int x1, int y1, int x2, int y2) = box;
        double boxRatio = (x2 - x1) / (double)(y2 - y1), ratio = width / (double)height;
        if (boxRatio > ratio)
        {
            (y1, y2) = Grow(y1, y2, (int)((x2 - x1) / ratio - (y2 - y1)), pictureHeight);
        }
        else
        {
            (x1, x2) = Grow(x1, x2, (int)((y2 - y1) * ratio - (x2 - x1)), pictureWidth);
        }
        return new PictureRegion(x1, y1, x2 - x1, y2 - y1);
    }

    /// <summary>One axis of <see cref="Expand"/>: Python's floor division by 2 (the growth is never negative).</summary>
    private static (int Low, int High) Grow(int low, int high, int growth, int size)
    {
        low -= growth / 2;
        high += growth - growth / 2;
        if (high >= size)
        {
            low -= high - size;
            high = size;
        }
        if (low < 0)
        {
            high -= low;
            low = 0;
        }
        return (low, Math.Min(high, size));
    }

    /// <summary>
    /// A1111's uncrop: the result scaled by Crop and resize into its region of an empty RGBA picture of the overlay's
    /// size (Image.new("RGBA"): see-through elsewhere).
    /// </summary>
    private static PngImage Uncropped(PngImage result, PictureRegion region, PngImage overlay)
    {
        var canvas = new PngImage(overlay.Width, overlay.Height, 4, new byte[overlay.Pixels.Length]);
        PictureResize.Paste(Opaque(PictureResize.Resize(result, region.Width, region.Height, ResizeMode.Crop)), canvas, region.X, region.Y);
        return canvas;
    }

    /// <summary>The overlay: <paramref name="picture"/> seen through 255 - <paramref name="mask"/>.</summary>
    private static PngImage Overlay(PngImage picture, byte[] mask) =>
        new(picture.Width, picture.Height, 4, PilCompositing.MaskedPicture(picture.Pixels, mask));

    /// <summary>An RGB picture as RGBA with alpha 255 (Pillow's convert("RGBA")).</summary>
    private static PngImage Opaque(PngImage rgb)
    {
        int pixels = rgb.Width * rgb.Height;
        var rgba = new byte[pixels * 4];
        for (int p = 0; p < pixels; p++)
        {
            rgba[p * 4] = rgb.Pixels[p * 3];
            rgba[p * 4 + 1] = rgb.Pixels[p * 3 + 1];
            rgba[p * 4 + 2] = rgb.Pixels[p * 3 + 2];
            rgba[p * 4 + 3] = 255;
        }
        return new PngImage(rgb.Width, rgb.Height, 4, rgba);
    }
}
