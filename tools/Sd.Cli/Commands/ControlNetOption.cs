using System.Globalization;
using Microsoft.Extensions.Logging;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Config;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd generate</c>'s ControlNets: each <c>--controlnet PATH</c> (a diffusers ControlNet folder, or a weights file in
/// diffusers or original format) with its <c>--control-image</c>: the preprocessed picture (edges, depth, pose...), or
/// one that <c>--control-preprocessor</c> makes into it (canny edges of a photograph, invert of a drawing, inpaint: the
/// picture masked by the run's <c>--mask</c> for an inpainting ControlNet). <c>--control-preprocessor</c>,
/// <c>--canny-low</c> / <c>--canny-high</c>, <c>--control-scale</c>, <c>--control-start</c> / <c>--control-end</c> (the
/// fraction of the steps a unit runs over), <c>--control-mode</c> (A1111's Control Mode) and
/// <c>--control-resize-mode</c> are given once for every unit or once per unit, in order; <c>--guess-mode</c>
/// (diffusers') applies to all.
/// </summary>
internal sealed class ControlNetOption : IDisposable
{
    /// <summary>The repeatable flags; the first two once per unit, the others once or once per unit.</summary>
    public static readonly string[] Flags = ["--controlnet", "--control-image", "--control-preprocessor", CannyLowFlag, CannyHighFlag,
        "--control-scale", "--control-start", "--control-end", "--control-mode", "--control-resize-mode"];

    public const string CannyLowFlag = "--canny-low", CannyHighFlag = "--canny-high";

    /// <summary>
    /// The preprocessors' names: none (the picture is the control picture), canny (<see cref="CannyEdges"/>), invert
    /// (<see cref="ImageConversion.InvertedRgb"/>) and inpaint (the picture masked by the run's --mask,
    /// <see cref="ControlNetUnit.Mask"/>).
    /// </summary>
    public const string None = "none", Canny = "canny", Invert = "invert", Inpaint = "inpaint";

    public const string GuessModeFlag = "--guess-mode";

    private readonly Unit[] _units;
    private readonly bool _guessMode;
    private readonly List<IDisposable> _loaded = [];

    private sealed record Unit(string Path, PngImage Picture, PngImage? Mask, string Preprocessor, double Low, double High, float Scale, float Start,
        float End, ControlMode Mode, ResizeMode Resize);

    /// <summary>A1111's names of the resize modes, in <see cref="ResizeMode"/>'s order.</summary>
    private static readonly string[] ResizeLabels = ["Just Resize", "Crop and Resize", "Resize and Fill"];

    /// <summary>--control-mode's values and A1111's names for them, in <see cref="ControlMode"/>'s order.</summary>
    private static readonly string[] ModeNames = ["balanced", "prompt", "controlnet"];
    private static readonly string[] ModeLabels = ["Balanced", "My prompt is more important", "ControlNet is more important"];

    private ControlNetOption(Unit[] units, bool guessMode) => (_units, _guessMode) = (units, guessMode);

    /// <summary>
    /// The flags' ControlNets, their pictures read (before any model loads); null without --controlnet.
    /// <paramref name="mask"/> is the run's --mask, which the inpaint preprocessor takes as the run reads it: gray, or
    /// A1111's binary mask (inverted by --invert-mask) when <paramref name="inpaint"/> settings are given.
    /// </summary>
    public static ControlNetOption? Read(CommandLine line, PngImage? mask, InpaintSettings? inpaint)
    {
        IReadOnlyList<string> paths = line.GetAll("--controlnet");
        if (paths.Count == 0)
        {
            foreach (string flag in Flags)
            {
                if (line.Has(flag)) throw new UsageException($"generate: {flag} goes with --controlnet");
            }
            return line.Has(GuessModeFlag) ? throw new UsageException($"generate: {GuessModeFlag} goes with --controlnet") : null;
        }
        IReadOnlyList<string> pictures = line.GetAll("--control-image");
        if (pictures.Count != paths.Count)
        {
            throw new UsageException($"generate: {paths.Count} --controlnet need as many --control-image (one each, in order), got {pictures.Count}");
        }
        string[] preprocessors = PerUnit(line, "--control-preprocessor", paths.Count, None, (flag, name) => Preprocessor(line, flag, name));
        double[] lows = PerUnit(line, CannyLowFlag, paths.Count, CannyEdges.DefaultLow, line.ParseDouble);
        double[] highs = PerUnit(line, CannyHighFlag, paths.Count, CannyEdges.DefaultHigh, line.ParseDouble);
        if ((line.Has(CannyLowFlag) || line.Has(CannyHighFlag)) && Array.IndexOf(preprocessors, Canny) < 0)
        {
            throw new UsageException($"generate: {CannyLowFlag} and {CannyHighFlag} go with --control-preprocessor {Canny}");
        }
        float[] scales = PerUnit(line, "--control-scale", paths.Count, 1f, line.ParseFloat);
        float[] starts = PerUnit(line, "--control-start", paths.Count, 0f, line.ParseFloat);
        float[] ends = PerUnit(line, "--control-end", paths.Count, 1f, line.ParseFloat);
        ControlMode[] modes = PerUnit(line, "--control-mode", paths.Count, ControlMode.Balanced, (flag, name) => Mode(line, flag, name));
        if (line.Has(GuessModeFlag) && Array.FindIndex(modes, mode => mode != ControlMode.Balanced) >= 0)
        {
            throw new UsageException($"generate: {GuessModeFlag} (diffusers') and --control-mode (A1111's) each weight the residuals their own way; give one");
        }
        ResizeMode[] resizes = PerUnit(line, "--control-resize-mode", paths.Count, ResizeMode.Just, GenerateCommand.ParseResizeMode);
        PngImage? inpaintMask = Array.IndexOf(preprocessors, Inpaint) >= 0 ? InpaintMask(line, mask, inpaint) : null;
        var units = new Unit[paths.Count];
        for (int i = 0; i < units.Length; i++)
        {
            PngImage picture = Preprocess(PictureFile.ReadUpright(pictures[i]), preprocessors[i], lows[i], highs[i]);
            PngImage? unitMask = preprocessors[i] == Inpaint ? inpaintMask : null;
            if (unitMask is not null && (unitMask.Width, unitMask.Height) != (picture.Width, picture.Height))
            {
                throw new UsageException($"generate: --control-image {pictures[i]} is {picture.Width}x{picture.Height} and --mask {unitMask.Width}x{unitMask.Height}; " +
                    $"--control-preprocessor {Inpaint} masks the picture with the run's mask, so give pictures of one size (the --init-image, say)");
            }
            if (unitMask is not null && resizes[i] != ResizeMode.Just)
            {
                throw new UsageException($"generate: --control-preprocessor {Inpaint} makes a condition that is just resized (as diffusers resizes a tensor); " +
                    "leave --control-resize-mode out for it");
            }
            units[i] = new Unit(paths[i], picture, unitMask, preprocessors[i], lows[i], highs[i], scales[i], starts[i], ends[i], modes[i], resizes[i]);
        }
        return new ControlNetOption(units, line.Has(GuessModeFlag));
    }

    /// <summary>
    /// The run's mask as the run reads it (gray; with A1111's settings its binary mask, inverted by --invert-mask). The
    /// condition is made of the whole picture just resized: runs that crop or fill the picture, or repaint only the
    /// masked area's box, would not line up with it, so they are refused.
    /// </summary>
    private static PngImage InpaintMask(CommandLine line, PngImage? mask, InpaintSettings? inpaint)
    {
        if (mask is null)
        {
            throw new UsageException($"generate: --control-preprocessor {Inpaint} masks the control picture with the run's --mask; give --init-image and --mask");
        }
        if (inpaint is { OnlyMasked: true } || line.Get("--resize-mode") is "crop" or "fill")
        {
            throw new UsageException($"generate: --control-preprocessor {Inpaint} masks the whole picture, just resized; it does not go with " +
                "--inpaint-area only-masked or --resize-mode crop|fill, which change what the run repaints");
        }
        return inpaint is null ? ImageConversion.AsGray(mask) : A1111Inpaint.BinaryMask(mask, inpaint.InvertMask);
    }

    private static ControlMode Mode(CommandLine line, string flag, string name) =>
        Array.IndexOf(ModeNames, name) is var index and >= 0 ? (ControlMode)index
        : throw new UsageException($"{line.Command}: {flag} is {string.Join(", ", ModeNames)}, got '{name}'");

    /// <summary>A preprocessor's name, checked; shared with <c>sd preprocess</c>.</summary>
    public static string Preprocessor(CommandLine line, string flag, string name) =>
        name is None or Canny or Invert or Inpaint ? name : throw new UsageException($"{line.Command}: {flag} is {None}, {Canny}, {Invert} or {Inpaint}, got '{name}'");

    /// <summary>The control picture <paramref name="preprocessor"/> makes of <paramref name="picture"/>.</summary>
    public static PngImage Preprocess(PngImage picture, string preprocessor, double low, double high) =>
        preprocessor switch
        {
            Canny => CannyEdges.Detect(picture, low, high),
            Invert => ImageConversion.InvertedRgb(picture),
            _ => picture,
        };

    /// <summary>A ControlNet setting given once (for every unit) or once per unit; <paramref name="fallback"/> when absent.</summary>
    private static T[] PerUnit<T>(CommandLine line, string flag, int units, T fallback, Func<string, string, T> parse) =>
        PerUnit(line, flag, "ControlNet", "--controlnet", units, fallback, parse);

    /// <summary>
    /// A setting of the units that <paramref name="unitFlag"/> adds (<paramref name="unitName"/>s), given once for every
    /// unit or once per unit, in order; <paramref name="fallback"/> when absent.
    /// </summary>
    internal static T[] PerUnit<T>(CommandLine line, string flag, string unitName, string unitFlag, int units, T fallback, Func<string, string, T> parse)
    {
        IReadOnlyList<string> given = line.GetAll(flag);
        if (given.Count is not (0 or 1) && given.Count != units)
        {
            throw new UsageException($"generate: {flag} is given {given.Count} times; give it once (for every {unitName}) or once per {unitFlag} ({units})");
        }
        var values = new T[units];
        for (int i = 0; i < units; i++)
        {
            values[i] = given.Count == 0 ? fallback : parse(flag, given[given.Count == 1 ? 0 : i]);
        }
        return values;
    }

    /// <summary>The units, as many as --controlnet.</summary>
    public int Count => _units.Length;

    /// <summary>
    /// Loads the ControlNets (weights memory-mapped, then packed) and returns the request's units. What a config
    /// inferred from a file's shapes had to assume is logged, as for a single-file model.
    /// </summary>
    public ControlNetUnit[] Load(ILogger logger)
    {
        var units = new ControlNetUnit[_units.Length];
        // Units of one ControlNet share its loaded model (its packed weights are the run's largest memory after the
        // UNet's), unless one runs on the conditioned rows only and the other on all: the model keeps its activation
        // buffers for one batch size, and two would re-plan them at every step.
        var models = new Dictionary<(string Path, bool ConditionedOnly), ControlNetModel>();
        for (int i = 0; i < units.Length; i++)
        {
            Unit unit = _units[i];
            (string, bool) key = (Path.TrimEndingDirectorySeparator(Path.GetFullPath(unit.Path)), _guessMode || unit.Mode == ControlMode.ControlNetMoreImportant);
            if (!models.TryGetValue(key, out ControlNetModel? model))
            {
                var source = ControlNetSource.Open(unit.Path);
                _loaded.Add(source);
                foreach (InferredSetting guess in source.InferredSettings)
                {
                    logger.LogInformation("{ControlNet}: {Guess}; a config.json (or an original file's STEM.yaml) beside it overrides it", unit.Path, guess);
                }
                model = new ControlNetModel(source.Config, source.Weights);
                _loaded.Add(model);
                models.Add(key, model);
            }
            units[i] = new ControlNetUnit(model, unit.Picture) { Scale = unit.Scale, GuidanceStart = unit.Start, GuidanceEnd = unit.End, GuessMode = _guessMode,
                Mode = unit.Mode, Mask = unit.Mask, Resize = unit.Resize, SoftInHires = unit.Preprocessor == Canny };
        }
        return units;
    }

    /// <summary>
    /// The parameters' ControlNet entries, in the A1111 ControlNet extension's form: <c>, ControlNet 0: "Module: none,
    /// Model: NAME, Weight: 1, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1"</c>, one per unit (canny's
    /// thresholds as "Threshold A: 100, Threshold B: 200" after the resize mode; "Control Mode: ..." last unless
    /// balanced; Sd's guess mode added when on); read back as not applied by --parameters-from.
    /// </summary>
    public string Parameters()
    {
        string F(float v) => v.ToString(CultureInfo.InvariantCulture);
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < _units.Length; i++)
        {
            Unit unit = _units[i];
            string name = ModelName(unit.Path);
            text.Append(CultureInfo.InvariantCulture, $", ControlNet {i}: \"Module: {unit.Preprocessor}, Model: {name}, Weight: {F(unit.Scale)}, Resize Mode: {ResizeLabels[(int)unit.Resize]}, ");
            if (unit.Preprocessor == Canny)
            {
                text.Append(CultureInfo.InvariantCulture, $"Threshold A: {unit.Low}, Threshold B: {unit.High}, ");
            }
            text.Append(CultureInfo.InvariantCulture, $"Guidance Start: {F(unit.Start)}, Guidance End: {F(unit.End)}{(_guessMode ? ", Guess Mode: True" : "")}")
                .Append(unit.Mode == ControlMode.Balanced ? "" : $", Control Mode: {ModeLabels[(int)unit.Mode]}").Append('"');
        }
        return text.ToString();
    }

    /// <summary>A unit's model as the parameters name it: the folder's name or the file's stem, without quotes.</summary>
    internal static string ModelName(string path)
    {
        path = Path.TrimEndingDirectorySeparator(path);
        return (Directory.Exists(path) ? Path.GetFileName(path) : Path.GetFileNameWithoutExtension(path)).Replace("\"", "", StringComparison.Ordinal);
    }

    public void Dispose()
    {
        // Models before the sources whose weights they were packed from.
        for (int i = _loaded.Count - 1; i >= 0; i--) _loaded[i].Dispose();
        _loaded.Clear();
    }
}
