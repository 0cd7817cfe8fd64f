using System.Globalization;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Engine.Upscaling;
using Sd.Kernels.Elementwise;

namespace Sd.Cli.Commands;

// sd generate's hires fix: the --hires-* flags and the parameters A1111 records for them.
public static partial class GenerateCommand
{
    /// <summary>A1111's parameters of a hires fix: its strength, upscale (or resize), steps when given, upscaler.</summary>
    /// <param name="ramp">The ramp of the hires fix's own scheduler, when it names one.</param>
    /// <param name="firstPassSchedule">Whether the first pass's schedule type is written: A1111 reads a hires sampler
    /// without a schedule type as on that one, so the hires sampler's own "Automatic" is written then.</param>
    private static string HiresParameters(CommandLine line, HiresFix hires, SigmaRamp? ramp, bool firstPassSchedule)
    {
        string size = line.Has("--hires-scale") ? $"Hires upscale: {line.GetDouble("--hires-scale", 2).ToString(CultureInfo.InvariantCulture)}"
            : $"Hires resize: {line.GetInt("--hires-width", 0)}x{line.GetInt("--hires-height", 0)}";
        string steps = hires.Steps is { } n ? $"Hires steps: {n}, " : "";
        string sampler = hires.Scheduler is not { } name ? ""
            : A1111Samplers.Write(name, ramp!.Value, "Hires sampler", "Hires schedule type")
              + (firstPassSchedule && !A1111Samplers.WritesSchedule(name, ramp.Value) ? ", Hires schedule type: Automatic, " : ", ");
        string prompts = (hires.Prompt is { } prompt ? $"Hires prompt: {Infotext.Quote(prompt)}, " : "")
            + (hires.NegativePrompt is { } negative ? $"Hires negative prompt: {Infotext.Quote(negative)}, " : "");
        return $"Denoising strength: {hires.Strength.ToString(CultureInfo.InvariantCulture)}, {size}, {steps}Hires upscaler: {hires.ImageUpscaler?.ToString() ?? (hires.ModelUpscaler is { } model ? Infotext.Quote(model.Name) : UpscalerName(hires.Upscaler))}, {sampler}{prompts}";
    }

    /// <summary>A1111's latent upscalers by their names, the mode each runs.</summary>
    private static readonly (string Name, InterpolationMode Mode)[] Upscalers =
    [
        ("Latent", InterpolationMode.Bilinear),
        ("Latent (antialiased)", InterpolationMode.BilinearAntialiased),
        ("Latent (bicubic)", InterpolationMode.Bicubic),
        ("Latent (bicubic antialiased)", InterpolationMode.BicubicAntialiased),
        ("Latent (nearest)", InterpolationMode.Nearest),
        ("Latent (nearest-exact)", InterpolationMode.NearestExact),
    ];

    private static string UpscalerName(InterpolationMode mode)
    {
        foreach ((string name, InterpolationMode each) in Upscalers)
        {
            if (each == mode)
            {
                return name;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(mode), mode, "no A1111 latent upscaler");
    }

    /// <summary>
    /// --hires-upscaler's upscaler: an A1111 latent upscaler's name ("Latent (bicubic)"), in any case, or the same as
    /// one word ("latent-bicubic", "latent-nearest-exact"); or one of its image upscalers that need no model (Lanczos,
    /// None, Nearest); or an ESRGAN-family model file (a path ending in .safetensors, or naming a file; pickles such as
    /// .pth are refused when loaded). Other model upscalers (SwinIR, LDSR, ScuNET) are not run.
    /// </summary>
    private static (InterpolationMode Latent, ImageUpscaler? Image, string? ModelPath) UpscalerOf(string? given)
    {
        if (given is null)
        {
            return (InterpolationMode.Bilinear, null, null);
        }
        if (NamedUpscaler(given) is { } named)
        {
            return (named.Latent, named.Image, null);
        }
        if (UpscaleCommand.NamesModelFile(given))
        {
            return (InterpolationMode.Bilinear, null, given);
        }
        throw new UsageException($"generate: --hires-upscaler '{given}' is none of A1111's latent upscalers ({string.Join(", ", Array.ConvertAll(Upscalers, u => u.Name))}) or its image upscalers without a model (Lanczos, None, Nearest), nor an ESRGAN model file (.safetensors)");
    }

    /// <summary>The upscaler of an A1111 name that needs no model (a latent upscaler, Lanczos, None, Nearest), or null.</summary>
    internal static (InterpolationMode Latent, ImageUpscaler? Image)? NamedUpscaler(string given)
    {
        foreach ((string name, InterpolationMode mode) in Upscalers)
        {
            string word = name.Replace(" (", "-").Replace(")", "").Replace(' ', '-');
            if (given.Equals(name, StringComparison.OrdinalIgnoreCase) || given.Equals(word, StringComparison.OrdinalIgnoreCase))
            {
                return (mode, null);
            }
        }
        foreach (ImageUpscaler image in Enum.GetValues<ImageUpscaler>())
        {
            if (given.Equals(image.ToString(), StringComparison.OrdinalIgnoreCase))
            {
                return (InterpolationMode.Bilinear, image);
            }
        }
        return null;
    }

    /// <summary>
    /// The hires fix the --hires-* flags ask for, or null, sized as A1111 sizes it: --hires-scale S makes int(size x
    /// S); --hires-width and --hires-height give it, one of them 0 to keep the aspect ratio (x * height // width). Both
    /// sides are then rounded down to multiples of 8, as A1111 floors the latents' size. Both of another aspect ratio
    /// are covered and cropped as A1111 does it: upscaled to keep the aspect ratio and reach both sides, then the
    /// excess latents ((upscaled - given) // 8 of them, the smaller half first) cropped. An upscale to the first pass's
    /// own size is none, as in A1111.
    /// </summary>
    private static HiresFix? Hires(CommandLine line, int width, int height)
    {
        bool scaled = line.Has("--hires-scale"), sized = line.Has("--hires-width") || line.Has("--hires-height");
        if (!scaled && !sized)
        {
            if (line.Has("--hires-strength") || line.Has("--hires-steps") || line.Has("--hires-scheduler") || line.Has("--hires-prompt")
                || line.Has("--hires-negative-prompt") || line.Has("--hires-upscaler"))
            {
                throw new UsageException("generate: the --hires-* options set a hires fix; give --hires-scale or --hires-width (and --hires-height)");
            }
            return null;
        }
        if (scaled && sized)
        {
            throw new UsageException("generate: give --hires-scale or --hires-width and --hires-height, not both");
        }
        if (line.Has("--init-image"))
        {
            throw new UsageException("generate: a hires fix follows txt2img; --init-image runs img2img");
        }
        if (width <= 0 || height <= 0)
        {
            throw new UsageException($"generate: --width and --height must be positive, got {width}x{height}");
        }
        // A1111's upscale-to size, and the excess cropped after the upscale (in whole latents: (upscale-to - given) // 8).
        long toX, toY, cropX = 0, cropY = 0;
        if (scaled)
        {
            double scale = line.GetDouble("--hires-scale", 2);
            if (!(scale > 0 && scale <= 16))
            {
                throw new UsageException($"generate: --hires-scale must be above 0 and at most 16, got {scale.ToString(CultureInfo.InvariantCulture)}");
            }
            (toX, toY) = ((long)(width * scale), (long)(height * scale));
        }
        else
        {
            int x = line.GetInt("--hires-width", 0), y = line.GetInt("--hires-height", 0);
            if (x < 0 || y < 0 || x == 0 && y == 0)
            {
                throw new UsageException($"generate: --hires-width and --hires-height must not be negative, and one of them above 0 (0 keeps the aspect ratio), got {x}x{y}");
            }
            // The upscale-to size keeps the aspect ratio and covers both sides given.
            bool byWidth = y == 0 || x != 0 && (double)width / height < (double)x / y;
            (toX, toY) = byWidth ? (x, (long)x * height / width) : ((long)y * width / height, (long)y);
            if (x > 0 && y > 0)
            {
                (cropX, cropY) = ((toX - x) / 8 * 8, (toY - y) / 8 * 8);
            }
        }
        if (toX == width && toY == height)
        {
            return null; // A1111: "the user has chosen to do nothing", no second pass and no hires parameters
        }
        long coverW = toX / 8 * 8, coverH = toY / 8 * 8, w = coverW - cropX, h = coverH - cropY;
        if (w < 8 || h < 8 || coverW > StableDiffusionPipeline.MaxImageSide || coverH > StableDiffusionPipeline.MaxImageSide)
        {
            throw new UsageException($"generate: the hires fix makes a {w}x{h} image{(coverW != w || coverH != h ? $" from {coverW}x{coverH}" : "")}; each side must be 8 to {StableDiffusionPipeline.MaxImageSide}");
        }
        int steps = line.GetInt("--hires-steps", 0);
        (InterpolationMode Latent, ImageUpscaler? Image, string? ModelPath) upscaler = UpscalerOf(line.Get("--hires-upscaler"));
        return new HiresFix
        {
            Width = (int)w, Height = (int)h, CoverWidth = cropX == 0 && cropY == 0 ? null : (int)coverW, CoverHeight = cropX == 0 && cropY == 0 ? null : (int)coverH,
            Strength = line.GetDouble("--hires-strength", 0.7),
            Steps = steps == 0 ? null : steps, // A1111: 0 is the first pass's steps
            Scheduler = line.Get("--hires-scheduler"), Prompt = line.Get("--hires-prompt"), NegativePrompt = line.Get("--hires-negative-prompt"),
            Upscaler = upscaler.Latent, ImageUpscaler = upscaler.Image,
            ModelUpscaler = upscaler.ModelPath is { } path ? EsrganUpscaler.Load(path) : null, // the command disposes it
        };
    }
}
