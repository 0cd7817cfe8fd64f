using System.Globalization;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Loaders;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

// sd generate's seed flags and its input pictures' sizes.
public static partial class GenerateCommand
{
    /// <summary>A seed flag's value, or a random seed below 2^32 (A1111's range) when it is not given.</summary>
    private static ulong SeedOf(CommandLine line, string flag) =>
        line.Get(flag) is not { } seed ? (ulong)Random.Shared.NextInt64(0, 1L << 32)
        : ulong.TryParse(seed, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) ? value
        : throw new UsageException($"generate: {flag} expects a non-negative integer, got '{seed}'");

    /// <summary>--resize-mode's mode: A1111's Just resize (the default), Crop and resize, Resize and fill.</summary>
    private static ResizeMode ResizeModeOf(CommandLine line) => line.Get("--resize-mode") switch
    {
        null or "just" => ResizeMode.Just,
        "crop" => ResizeMode.Crop,
        "fill" => ResizeMode.Fill,
        var other => throw new UsageException($"generate: --resize-mode expects just, crop or fill, got '{other}'"),
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
}
