using System.Globalization;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Loaders;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

// sd generate's seed flags, its input pictures' sizes and A1111's inpainting.
public static partial class GenerateCommand
{
    /// <summary>A seed flag's value, or a random seed below 2^32 (A1111's range) when it is not given.</summary>
    private static ulong SeedOf(CommandLine line, string flag) =>
        line.Get(flag) is not { } seed ? (ulong)Random.Shared.NextInt64(0, 1L << 32)
        : ulong.TryParse(seed, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) ? value
        : throw new UsageException($"generate: {flag} expects a non-negative integer, got '{seed}'");

    /// <summary>--resize-mode's mode: A1111's Just resize (the default), Crop and resize, Resize and fill.</summary>
    private static ResizeMode ResizeModeOf(CommandLine line) => ParseResizeMode("--resize-mode", line.Get("--resize-mode"));

    /// <summary>A resize mode flag's value (absent: just); also --control-resize-mode's.</summary>
    internal static ResizeMode ParseResizeMode(string flag, string? text) => text switch
    {
        null or "just" => ResizeMode.Just,
        "crop" => ResizeMode.Crop,
        "fill" => ResizeMode.Fill,
        var other => throw new UsageException($"generate: {flag} expects just, crop or fill, got '{other}'"),
    };

    /// <summary>
    /// A side of the output taken from the init picture's: rounded down to a multiple of 8 (SD's VAE factor; the
    /// model's own is checked once it loads), as diffusers does. A side out of range is the picture's error, found
    /// before any model loads.
    /// </summary>
    private static int PictureSide(CommandLine line, PngImage picture, int side) => side is >= 8 and <= StableDiffusionPipeline.MaxImageSide
        ? side - side % 8
        : throw new InvalidFileException(line.Require("--init-image"),
            $"a {picture.Width}x{picture.Height} picture has a side outside 8 to {StableDiffusionPipeline.MaxImageSide} pixels; give --width and --height for the output");

    /// <summary>An input picture (<paramref name="flag"/>'s) at the request's size by the resize mode; refusals name the file.</summary>
    private static PngImage Resized(CommandLine line, string flag, PngImage picture, GenerateRequest request, ResizeMode mode)
    {
        try
        {
            return PictureResize.Resize(picture, request.Width, request.Height, mode);
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(line.Require(flag), e.Message);
        }
    }

    /// <summary>--seed-resize-from's WIDTHxHEIGHT (as A1111 writes its "Seed resize from"); 0x0 without the flag.</summary>
    private static (int Width, int Height) SeedResizeOf(CommandLine line)
    {
        if (line.Get("--seed-resize-from") is not { } value)
        {
            return (0, 0);
        }
        int x = value.IndexOf('x');
        return x > 0 && int.TryParse(value.AsSpan(0, x), NumberStyles.None, CultureInfo.InvariantCulture, out int width)
            && int.TryParse(value.AsSpan(x + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int height) ? (width, height)
            : throw new UsageException($"generate: --seed-resize-from expects WIDTHxHEIGHT, e.g. 512x768, got '{value}'");
    }

    /// <summary>
    /// --masked-content's values, indexed by <see cref="MaskedContent"/>: A1111's Masked content names with hyphens for
    /// spaces ("latent noise" is latent-noise), as the PNG records them and --parameters-from reads them back.
    /// </summary>
    internal static readonly string[] MaskedContentFlags = ["original", "fill", "latent-noise", "latent-nothing"];

    /// <summary>
    /// A1111's inpainting settings from --mask-blur, --inpaint-area, --masked-padding, --invert-mask and --masked-content (A1111's
    /// defaults for those not given); null when none is given (diffusers' inpainting: a hard mask and no overlay).
    /// </summary>
    /// <exception cref="InvalidFileException">Only masked with a mask of another size than the picture (found before any model loads).</exception>
    private static InpaintSettings? InpaintSettingsOf(CommandLine line, PngImage? picture, PngImage? mask)
    {
        if (!line.Has("--mask-blur") && !line.Has("--inpaint-area") && !line.Has("--masked-padding") && !line.Has("--invert-mask")
            && !line.Has("--masked-content"))
        {
            return null;
        }
        if (!line.Has("--mask") || !line.Has("--init-image"))
        {
            throw new UsageException("generate: --mask-blur, --inpaint-area, --masked-padding, --invert-mask and --masked-content shape an inpainting run; " +
                "give --init-image and --mask");
        }
        int content = line.Get("--masked-content") is { } given ? Array.IndexOf(MaskedContentFlags, given) : (int)MaskedContent.Original;
        if (content < 0)
        {
            throw new UsageException($"generate: --masked-content expects original, fill, latent-noise or latent-nothing, got '{line.Get("--masked-content")}'");
        }
        bool onlyMasked = line.Get("--inpaint-area") switch
        {
            null or "whole" => false,
            "only-masked" => true,
            var other => throw new UsageException($"generate: --inpaint-area expects whole or only-masked, got '{other}'"),
        };
        if (line.Has("--masked-padding") && !onlyMasked)
        {
            throw new UsageException("generate: --masked-padding pads the region --inpaint-area only-masked repaints; give that");
        }
        var defaults = new InpaintSettings();
        int blur = line.GetInt("--mask-blur", defaults.MaskBlur), padding = line.GetInt("--masked-padding", defaults.Padding);
        if (blur is < 0 or > InpaintSettings.MaxMaskBlur)
        {
            throw new UsageException($"generate: --mask-blur must be in [0, {InpaintSettings.MaxMaskBlur}] pixels, got {blur}");
        }
        if (padding is < 0 or > InpaintSettings.MaxPadding)
        {
            throw new UsageException($"generate: --masked-padding must be in [0, {InpaintSettings.MaxPadding}] pixels, got {padding}");
        }
        var settings = new InpaintSettings
        {
            MaskBlur = blur, OnlyMasked = onlyMasked, Padding = padding, InvertMask = line.Has("--invert-mask"), MaskedContent = (MaskedContent)content,
        };
        try
        {
            A1111Inpaint.Check(picture!, mask!, settings);
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(line.Require("--mask"), Program.Describe(e), e);
        }
        return settings;
    }

    /// <summary>
    /// A1111's inpainting pictures at the request's size; a refusal names the file it is about. A mask with nothing
    /// to repaint under Only masked makes the run img2img, as in A1111: said in a warning, as is a latent fill that a run
    /// from noise alone (strength 1, given latents) never sees.
    /// </summary>
    private static A1111Inpaint PrepareInpaint(CommandLine line, PngImage picture, PngImage mask, GenerateRequest request, ResizeMode mode, InpaintSettings settings)
    {
        A1111Inpaint inpaint;
        try
        {
            inpaint = A1111Inpaint.Prepare(picture.Channels == 1 ? ImageConversion.AsRgb(picture) : picture, mask, request.Width, request.Height, mode, settings);
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(line.Require(e.ParamName == "mask" ? "--mask" : "--init-image"), Program.Describe(e), e);
        }
        if (inpaint.Mask is null)
        {
            if (request.InitialLatents is not null)
            {
                throw new UsageException("generate: the --mask has nothing to repaint, so --inpaint-area only-masked runs img2img, which --latents cannot start");
            }
            Console.Error.WriteLine($"sd generate: warning: --mask {line.Require("--mask")} has nothing to repaint: --inpaint-area only-masked runs img2img " +
                "of the whole picture, as A1111 does");
        }
        else if (inpaint.MaskedLatents != MaskedLatents.Picture && (request.InitialLatents is not null || request.Strength >= 1))
        {
            Console.Error.WriteLine($"sd generate: warning: --masked-content {line.Require("--masked-content")} fills the picture's latents a run below " +
                "--strength 1 starts from; this run starts from " + (request.InitialLatents is not null ? "--latents" : "noise alone") + ", so it changes nothing");
        }
        return inpaint;
    }

    /// <summary>
    /// A1111's keys of its inpainting settings: Mask mode (inverted), Mask blur, Inpaint area and Masked area padding
    /// (Only masked), Masked content (other than original, not where Only masked fell back to img2img, as A1111 fills
    /// nothing there);
    /// empty without them. Unlike A1111, Sd records a blur of 0 and Only masked that found nothing to
    /// repaint, so that the run reads back as it ran.
    /// </summary>
    private static string InpaintKeys(A1111Inpaint? inpaint)
    {
        if (inpaint is null)
        {
            return "";
        }
        InpaintSettings settings = inpaint.Settings;
        return (settings.InvertMask ? "Mask mode: Inpaint not masked, " : "") + FormattableString.Invariant($"Mask blur: {settings.MaskBlur}, ")
            + (!settings.OnlyMasked ? "" : FormattableString.Invariant($"Inpaint area: Only masked, Masked area padding: {settings.Padding}, "))
            + (inpaint.Mask is null || settings.MaskedContent == MaskedContent.Original ? ""
                : $"Masked content: {MaskedContentFlags[(int)settings.MaskedContent].Replace('-', ' ')}, ");
    }
}
