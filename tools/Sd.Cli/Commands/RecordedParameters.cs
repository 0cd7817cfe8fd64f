using System.Globalization;
using System.Text;
using Sd.Engine.Schedulers;
using Sd.Loaders;
using Sd.Loaders.IO;
using Sd.Loaders.Pictures;

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
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(Descriptive, StringComparer.Ordinal);
    private readonly List<string> _args;

    private RecordedParameters(IReadOnlyList<string> args, CommandLine line)
    {
        _line = line;
        _path = line.Require("--parameters-from");
        _args = [.. args];
        foreach ((string key, string value) in Infotext.Parse(Text(_path)))
        {
            _values[key] = value;
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
        foreach (string key in parameters._values.Keys)
        {
            if (!parameters._used.Contains(key)) notApplied.Add(key);
        }
        return [.. parameters._args];
    }

    private void Read()
    {
        Add("--prompt", Take("Prompt"));
        Add("--negative-prompt", Take("Negative prompt"));
        Add("--steps", Number("Steps"));
        Add("--guidance", Number("CFG scale", integer: false));
        Add("--seed", Number("Seed"));
        Add("--variation-seed", Number("Variation seed"));
        Add("--variation-strength", Number("Variation seed strength", integer: false));
        Add("--width", Number("Size-1"));
        Add("--height", Number("Size-2"));
        if (Number("Clip skip") is { } clipSkip)
        {
            // A1111 counts the last layer as 1, Sd (as diffusers) as 0.
            long layers = long.Parse(clipSkip, CultureInfo.InvariantCulture);
            Add("--clip-skip", layers >= 1 ? (layers - 1).ToString(CultureInfo.InvariantCulture)
                : throw new InvalidFileException(_path, $"parameters: Clip skip is {clipSkip}; A1111 counts it from 1"));
        }
        ReadSyntax();
        if (Take("Sampler") is { } sampler && !_line.Has("--scheduler"))
        {
            Add("--scheduler", A1111Samplers.Read(sampler, Take("Schedule type"), _values.GetValueOrDefault, _path, "Sampler"));
        }
        Take("Schedule type");
        // Sd's Beta schedule is A1111's default shape, Beta(0.6, 0.6); another is not applied.
        Taken("Beta schedule alpha", IsNumber("Beta schedule alpha", BetaSigmas.Alpha));
        Taken("Beta schedule beta", IsNumber("Beta schedule beta", BetaSigmas.Beta));
        string? strength = Number("Denoising strength", integer: false);
        if (_line.Has("--init-image"))
        {
            Add("--strength", strength); // an img2img's strength; a hires fix follows txt2img only
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
        string? scale = Number("Hires upscale", integer: false), width = Number("Hires resize-1"), height = Number("Hires resize-2");
        if (!_line.Has("--hires-scale") && !_line.Has("--hires-width") && !_line.Has("--hires-height"))
        {
            // A1111 records a resize of 0x0 where the upscale sets the size.
            bool resized = width is not null && (width != "0" || height != "0");
            Add(resized ? "--hires-width" : "--hires-scale", resized ? width : scale);
            Add("--hires-height", resized ? height : null);
        }
        Add("--hires-steps", Number("Hires steps"));
        Add("--hires-upscaler", Take("Hires upscaler"));
        Add("--hires-prompt", Take("Hires prompt"));
        Add("--hires-negative-prompt", Take("Hires negative prompt"));
        // A1111's get_hr_sampler_and_scheduler: a hires sampler or schedule type not given is the first pass's.
        string? sampler = Take("Hires sampler") is { } hiresSampler and not "Use same sampler" ? hiresSampler : null;
        string? schedule = Take("Hires schedule type") is { } hiresSchedule and not "Use same scheduler" ? hiresSchedule : null;
        string? first = _values.GetValueOrDefault("Sampler");
        // A hires schedule type without any sampler named is for the model's default sampler: as the first pass runs it.
        if ((sampler is not null || schedule is not null && first is not null) && !_line.Has("--hires-scheduler"))
        {
            Add("--hires-scheduler", A1111Samplers.Read(sampler ?? first!, schedule ?? _values.GetValueOrDefault("Schedule type"),
                _values.GetValueOrDefault, _path, sampler is null ? "Sampler" : "Hires sampler"));
        }
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

    /// <summary>A number's value as written (the flag reads it), checked: a malformed one is the file's error, not a usage error.</summary>
    private string? Number(string key, bool integer = true)
    {
        if (Take(key) is not { } value)
        {
            return null;
        }
        bool valid = integer
            ? long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)
            : double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) && double.IsFinite(number);
        return valid ? value : throw new InvalidFileException(_path, $"parameters: {key} is '{value}', not {(integer ? "an integer" : "a number")}");
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
        if (PictureFile.HasSignature(head))
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
