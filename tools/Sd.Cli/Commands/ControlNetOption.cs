using System.Globalization;
using Sd.Engine.Pipelines;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd generate</c>'s ControlNet: <c>--controlnet DIR</c> (a diffusers ControlNet folder or its weights file) with
/// <c>--control-image</c> (the preprocessed picture: edges, depth, pose...), <c>--control-scale</c>,
/// <c>--control-start</c> / <c>--control-end</c> (the fraction of the steps it runs over) and <c>--guess-mode</c>.
/// </summary>
internal sealed class ControlNetOption : IDisposable
{
    public static readonly string[] Flags = ["--controlnet", "--control-image", "--control-scale", "--control-start", "--control-end"];

    public const string GuessModeFlag = "--guess-mode";

    private readonly string _path;
    private readonly PngImage _picture;
    private readonly float _scale, _start, _end;
    private readonly bool _guessMode;
    private ControlNetSource? _source;
    private ControlNetModel? _model;

    private ControlNetOption(string path, PngImage picture, float scale, float start, float end, bool guessMode)
    {
        (_path, _picture, _scale, _start, _end, _guessMode) = (path, picture, scale, start, end, guessMode);
    }

    /// <summary>The flags' ControlNet, its picture read (before any model loads); null without --controlnet.</summary>
    public static ControlNetOption? Read(CommandLine line)
    {
        if (line.Get("--controlnet") is not { } path)
        {
            foreach (string flag in Flags)
            {
                if (line.Has(flag)) throw new UsageException($"generate: {flag} goes with --controlnet");
            }
            return line.Has(GuessModeFlag) ? throw new UsageException($"generate: {GuessModeFlag} goes with --controlnet") : null;
        }
        PngImage picture = PictureFile.ReadUpright(line.Require("--control-image"));
        return new ControlNetOption(path, picture, line.GetFloat("--control-scale", 1f), line.GetFloat("--control-start", 0f),
            line.GetFloat("--control-end", 1f), line.Has(GuessModeFlag));
    }

    /// <summary>Loads the ControlNet (its weights memory-mapped, then packed) and returns the request's unit.</summary>
    public ControlNetUnit Load()
    {
        _source = ControlNetSource.Open(_path);
        _model = new ControlNetModel(_source.Config, _source.Weights);
        return new ControlNetUnit(_model, _picture) { Scale = _scale, GuidanceStart = _start, GuidanceEnd = _end, GuessMode = _guessMode };
    }

    /// <summary>
    /// The parameters' ControlNet entry, in the A1111 ControlNet extension's form: <c>, ControlNet 0: "Module: none,
    /// Model: NAME, Weight: 1, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1"</c> (Sd's guess mode added
    /// when on); read back as not applied by --parameters-from.
    /// </summary>
    public string Parameters()
    {
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(_path)).Replace("\"", "", StringComparison.Ordinal);
        string F(float v) => v.ToString(CultureInfo.InvariantCulture);
        return $", ControlNet 0: \"Module: none, Model: {name}, Weight: {F(_scale)}, Resize Mode: Just Resize, Guidance Start: {F(_start)}, " +
            $"Guidance End: {F(_end)}{(_guessMode ? ", Guess Mode: True" : "")}\"";
    }

    public void Dispose()
    {
        _model?.Dispose();
        _source?.Dispose();
    }
}
