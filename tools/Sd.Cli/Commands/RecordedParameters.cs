using System.Globalization;
using System.Text;
using Sd.Engine.Imaging;
using Sd.Engine.Schedulers;
using Sd.Loaders;
using Sd.Loaders.IO;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;
using Sd.Loaders.Webp;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd generate --parameters-from FILE</c>: the settings a picture's A1111 parameters record (A1111's PNG Info, sent
/// to txt2img), as the flags that set them. Flags given on the command line win over the file's.
/// </summary>
internal sealed class RecordedParameters
{
    /// <summary>Most bytes a parameters text file may hold: an infotext is a few kilobytes.</summary>
    private const int MaxTextBytes = 1 << 20;

    /// <summary>
    /// Keys that describe the picture and set nothing Sd could take from them: the model and its hashes, the
    /// writer's version, A1111's noise source (a GPU's differs from the CPU's that --seed draws from), and the UniPC
    /// options, which name A1111's UniPC (read with its sampler) and mean nothing to another.
    /// </summary>
    private static readonly string[] Descriptive =
        ["Model", "Model hash", "VAE hash", "Version", "Lora hashes", "TI hashes", "Hashes", "RNG",
         "UniPC variant", "UniPC order", "UniPC skip type", "UniPC lower order final"];

    private readonly string _path;
    private readonly CommandLine _line;
    private readonly List<KeyValuePair<string, string>> _recorded;
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(Descriptive, StringComparer.Ordinal);
    private readonly List<string> _args;

    private RecordedParameters(IReadOnlyList<string> args, CommandLine line)
    {
        _line = line;
        _path = line.Require("--parameters-from");
        _args = [.. args];
        _recorded = Infotext.Parse(Text(_path)); // each key once, in the file's order
        foreach ((string key, string value) in _recorded)
        {
            _values.Add(key, value);
        }
    }

    /// <summary>
    /// <paramref name="args"/> (parsed as <paramref name="line"/>) with the flags the file's parameters set and the
    /// arguments do not; <paramref name="notApplied"/> lists the keys that set something Sd does not take from them
    /// (settings it has no option for; files such as LoRAs and VAEs, which need their own flags), in the file's order.
    /// </summary>
    public static string[] AddTo(IReadOnlyList<string> args, CommandLine line, out List<string> notApplied)
    {
        var parameters = new RecordedParameters(args, line);
        parameters.Read();
        notApplied = [];
        foreach ((string key, _) in parameters._recorded)
        {
            if (!parameters._used.Contains(key)) notApplied.Add(key);
        }
        return [.. parameters._args];
    }

    private void Read()
    {
        Add("--prompt", Take("Prompt"));
        Add("--negative-prompt", Take("Negative prompt"));
        Add("--steps", Number("Steps", Kind.Count));
        Add("--guidance", Number("CFG scale", Kind.Single));
        Add("--guidance-rescale", Number("Guidance rescale", Kind.Single)); // Sd's key: A1111 has no such setting
        Add("--seed", Number("Seed", Kind.Seed));
        Add("--variation-seed", Number("Variation seed", Kind.Seed));
        Add("--variation-strength", Number("Variation seed strength", Kind.Fraction));
        ReadSeedResize();
        Add("--width", Number("Size-1", Kind.Count));
        Add("--height", Number("Size-2", Kind.Count));
        if (Number("Clip skip", Kind.Count) is { } clipSkip)
        {
            // A1111 counts the last layer as 1, Sd (as diffusers) as 0.
            int layers = int.Parse(clipSkip, CultureInfo.InvariantCulture);
            Add("--clip-skip", layers >= 1 ? (layers - 1).ToString(CultureInfo.InvariantCulture)
                : throw new InvalidFileException(_path, $"parameters: Clip skip is {clipSkip}; A1111 counts it from 1"));
        }
        ReadSyntax();
        string? sampler = Take("Sampler"), schedule = Take("Schedule type");
        if (sampler is not null && !_line.Has("--scheduler"))
        {
            Add("--scheduler", A1111Samplers.Read(sampler, schedule, _values.GetValueOrDefault, _path, "Sampler", "--scheduler"));
        }
        // Sd's Beta schedule is A1111's default shape, Beta(0.6, 0.6); another is not applied.
        Taken("Beta schedule alpha", IsNumber("Beta schedule alpha", BetaSigmas.Alpha));
        Taken("Beta schedule beta", IsNumber("Beta schedule beta", BetaSigmas.Beta));
        string? strength = Number("Denoising strength", Kind.Double);
        if (_line.Has("--init-image"))
        {
            Add("--strength", strength); // an img2img's strength; a hires fix follows txt2img only
            ReadResizeMode();
            if (_line.Has("--mask"))
            {
                ReadInpaint();
            }
        }
        else if (_values.ContainsKey("Hires upscale") || _values.GetValueOrDefault("Hires resize-1", "0") != "0" || _values.GetValueOrDefault("Hires resize-2", "0") != "0")
        {
            Add("--hires-strength", strength);
            ReadHires();
        }
        else
        {
            _used.Remove("Denoising strength"); // an img2img's, without its picture
        }
    }

    /// <summary>Sd's "Resize mode" of an img2img input, by A1111's names (Just resize when absent).</summary>
    private void ReadResizeMode()
    {
        string? mode = Take("Resize mode");
        if (mode is not null && !_line.Has("--resize-mode"))
        {
            Add("--resize-mode", mode switch
            {
                "Just resize" => "just",
                "Crop and resize" => "crop",
                "Resize and fill" => "fill",
                _ => throw new InvalidFileException(_path, $"parameters: Resize mode '{mode}' is not one Sd has (Just resize, Crop and resize, Resize and fill); give --resize-mode"),
            });
        }
    }

    /// <summary>
    /// A1111's inpainting keys, for a run given a --mask: Mask blur, Inpaint area (Only masked, with its Masked area
    /// padding), Mask mode (Inpaint not masked) and Masked content (fill, latent noise, latent nothing), each as its
    /// flag. Values out of A1111's ranges are the file's error; masked content Sd has not (an extension's) is named as
    /// not applied. Without Mask blur, which A1111 leaves out at 0, any of the others means a blur of 0.
    /// </summary>
    private void ReadInpaint()
    {
        string? blur = InRange("Mask blur", InpaintSettings.MaxMaskBlur);
        Add("--mask-blur", blur);
        string? padding = InRange("Masked area padding", InpaintSettings.MaxPadding);
        string? area = Take("Inpaint area") switch
        {
            null => null,
            "Whole picture" => "whole",
            "Only masked" => "only-masked",
            var other => throw new InvalidFileException(_path, $"parameters: Inpaint area '{other}' is not Whole picture or Only masked"),
        };
        Add("--inpaint-area", area);
        bool onlyMasked = (_line.Get("--inpaint-area") ?? area) == "only-masked";
        Add("--masked-padding", onlyMasked ? padding : null);
        Taken("Masked area padding", onlyMasked || padding is null);
        switch (Take("Mask mode"))
        {
            case "Inpaint not masked" when !_line.Has("--invert-mask"):
                _args.Add("--invert-mask");
                break;
            case null or "Inpaint masked" or "Inpaint not masked":
                break;
            default:
                Taken("Mask mode", false);
                break;
        }
        string? content = Take("Masked content")?.Replace(' ', '-');
        bool known = content is not null && Array.IndexOf(GenerateCommand.MaskedContentFlags, content) >= 0;
        Add("--masked-content", known ? content : null);
        Taken("Masked content", content is null || known);
        // A1111 writes Mask blur only above 0: its other inpainting keys without it were a run of blur 0.
        if (blur is null && (_args.Contains("--inpaint-area") || _args.Contains("--invert-mask") || _args.Contains("--masked-content")))
            Add("--mask-blur", "0");
    }

    /// <summary>A count of <paramref name="key"/> in [0, <paramref name="max"/>], as written; null when absent.</summary>
    private string? InRange(string key, int max) => Number(key, Kind.Count) is not { } value ? null
        : int.Parse(value, CultureInfo.InvariantCulture) is >= 0 and var count && count <= max ? value
        : throw new InvalidFileException(_path, $"parameters: {key} is {value}; A1111's is 0 to {max} pixels");

    /// <summary>
    /// A1111's seed resize, "Seed resize from: WxH", each side rounded down to a multiple of 8 as A1111's
    /// side // 8 uses it (so the same noise). Sizes of 0 or less are A1111's "none" (its API records -1x-1, which is no
    /// WxH and stays whole under its own key): taken as none, as A1111 does; another whole value is not applied.
    /// </summary>
    private void ReadSeedResize()
    {
        Taken("Seed resize from", _values.GetValueOrDefault("Seed resize from") is not { } whole || whole.StartsWith('-') || whole.StartsWith("0x", StringComparison.Ordinal));
        string? width = Number("Seed resize from-1", Kind.Count), height = Number("Seed resize from-2", Kind.Count);
        if (width is not null && height is not null && int.Parse(width, CultureInfo.InvariantCulture) / 8 is var w and > 0
            && int.Parse(height, CultureInfo.InvariantCulture) / 8 is var h and > 0)
        {
            Add("--seed-resize-from", FormattableString.Invariant($"{w * 8}x{h * 8}"));
        }
    }

    /// <summary>
    /// How the prompts were read: Sd's "Prompt syntax: plain", A1111's "Emphasis: None" (chunked) or its default,
    /// Original (weighted). Another emphasis (No norm) is not applied.
    /// </summary>
    private void ReadSyntax()
    {
        string? written = Take("Prompt syntax"), emphasis = Take("Emphasis");
        string? syntax = written == "plain" ? "plain" : emphasis == "None" ? "chunked" : null;
        if (_line.Has("--prompt-syntax"))
        {
            return;
        }
        if (syntax is null && (written is not null || emphasis is not (null or "Original")))
        {
            Taken("Prompt syntax", false);
            Taken("Emphasis", false);
        }
        Add("--prompt-syntax", syntax);
    }

    /// <summary>The hires fix's size (unless the arguments give one), steps, upscaler, prompts and sampler.</summary>
    private void ReadHires()
    {
        string? scale = Number("Hires upscale", Kind.Double), width = Number("Hires resize-1", Kind.Count), height = Number("Hires resize-2", Kind.Count);
        if (!_line.Has("--hires-scale") && !_line.Has("--hires-width") && !_line.Has("--hires-height"))
        {
            // A1111 records a resize of 0x0 where the upscale sets the size.
            bool resized = width is not null && (width != "0" || height != "0");
            Add(resized ? "--hires-width" : "--hires-scale", resized ? width : scale);
            Add("--hires-height", resized ? height : null);
        }
        Add("--hires-steps", Number("Hires steps", Kind.Count));
        if (Take("Hires upscaler") is { } upscaler && !_line.Has("--hires-upscaler"))
        {
            // A model upscaler is recorded by its name (A1111's "R-ESRGAN 4x+", Sd's file name): its file is not known.
            Add("--hires-upscaler", GenerateCommand.NamedUpscaler(upscaler) is not null ? upscaler
                : throw new InvalidFileException(_path, $"parameters: Hires upscaler '{upscaler}' is a model upscaler; give its file with --hires-upscaler FILE.safetensors"));
        }
        Add("--hires-prompt", Take("Hires prompt"));
        Add("--hires-negative-prompt", Take("Hires negative prompt"));
        // A1111's get_hr_sampler_and_scheduler: a hires sampler or schedule type not given is the first pass's.
        string? sampler = Take("Hires sampler") is { } hiresSampler and not "Use same sampler" ? hiresSampler : null;
        string? schedule = Take("Hires schedule type") is { } hiresSchedule and not "Use same scheduler" ? hiresSchedule : null;
        if (_line.Has("--hires-scheduler") || sampler is null && schedule is null)
        {
            return;
        }
        schedule ??= _values.GetValueOrDefault("Schedule type");
        if (sampler is not null)
        {
            Add("--hires-scheduler", A1111Samplers.Read(sampler, schedule, _values.GetValueOrDefault, _path, "Hires sampler", "--hires-scheduler"));
        }
        else if (_line.Get("--scheduler") is { } given)
        {
            // The hires schedule type on the first pass's sampler, which the command line names.
            Add("--hires-scheduler", A1111Samplers.ReadSchedule(given, schedule, _path, "Hires schedule type", "--hires-scheduler"));
        }
        else if (_values.GetValueOrDefault("Sampler") is { } first)
        {
            Add("--hires-scheduler", A1111Samplers.Read(first, schedule, _values.GetValueOrDefault, _path, "Sampler", "--hires-scheduler"));
        }
        // A hires schedule type without any sampler named is for the model's default sampler: as the first pass runs it.
    }

    /// <summary>The value of <paramref name="key"/>, which counts as used whether or not a flag overrides it; null when absent.</summary>
    private string? Take(string key)
    {
        _used.Add(key);
        return _values.GetValueOrDefault(key);
    }

    /// <summary>Counts <paramref name="key"/> as used (the setting applied) or not.</summary>
    private void Taken(string key, bool applied)
    {
        if (applied) _used.Add(key);
        else _used.Remove(key);
    }

    /// <summary>Adds <paramref name="flag"/> with <paramref name="value"/> unless the value is absent or the arguments give the flag.</summary>
    private void Add(string flag, string? value)
    {
        if (value is not null && !_line.Has(flag))
        {
            _args.Add(flag);
            _args.Add(value);
        }
    }

    /// <summary>What a number's flag reads it as.</summary>
    private enum Kind { Count, Seed, Single, Double, Fraction }

    /// <summary>
    /// A number's value as written (its flag reads it), checked as the flag reads it: a value the flag would refuse is
    /// the file's error, not a usage error about a flag not typed.
    /// </summary>
    private string? Number(string key, Kind kind)
    {
        if (Take(key) is not { } value)
        {
            return null;
        }
        const NumberStyles Float = NumberStyles.Float;
        (bool valid, string expected) = kind switch
        {
            Kind.Count => (int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _), "an integer"),
            Kind.Seed => (ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out _), "a seed (a non-negative integer below 2^64)"),
            Kind.Single => (float.TryParse(value, Float, CultureInfo.InvariantCulture, out float single) && float.IsFinite(single), "a number"),
            Kind.Double => (double.TryParse(value, Float, CultureInfo.InvariantCulture, out double number) && double.IsFinite(number), "a number"),
            _ => (float.TryParse(value, Float, CultureInfo.InvariantCulture, out float fraction) && fraction is >= 0 and <= 1, "a number in [0, 1]"),
        };
        return valid ? value : throw new InvalidFileException(_path, $"parameters: {key} is '{value}', not {expected}");
    }

    private bool IsNumber(string key, double expected) =>
        !_values.TryGetValue(key, out string? value)
        || double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) && number == expected;

    /// <summary>
    /// The parameters text of <paramref name="path"/>: a picture's (a PNG's "parameters" text, a JPEG's or WebP's
    /// EXIF UserComment; told apart by the file's first bytes), else the file itself as UTF-8 text (an infotext
    /// copied from A1111's PNG Info).
    /// </summary>
    private static string Text(string path)
    {
        Span<byte> head = stackalloc byte[PictureFile.HeadBytes];
        head = head[..InputFile.ReadHead(path, "parameters", head)];
        // Pictures that can carry parameters; a BMP cannot (and "BM" starts text such as "BMW").
        if (PngFile.HasSignature(head) || JpegFile.HasSignature(head) || WebpFile.HasSignature(head))
        {
            return PictureFile.Read(path).Text.TryGetValue("parameters", out string? text) ? text
                : throw new InvalidFileException(path, "the picture records no parameters (A1111 keeps them in a PNG's \"parameters\" text, a JPEG's or WebP's EXIF UserComment)");
        }
        byte[] bytes = InputFile.ReadAll(path, "parameters", MaxTextBytes);
        try
        {
            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes).TrimStart('\uFEFF');
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidFileException(path, "neither a picture (PNG, JPEG, WebP) nor UTF-8 text; --parameters-from reads A1111's parameters from either");
        }
    }
}
