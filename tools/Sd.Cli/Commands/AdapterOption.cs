using System.Globalization;
using Sd.Engine.Adapters;
using Sd.Engine.Pipelines;
using Sd.Loaders;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd generate</c>'s T2I-Adapters: each <c>--adapter PATH</c> (a diffusers T2IAdapter folder, or its weights file
/// with the config.json beside it) with its <c>--adapter-image</c> (the preprocessed picture); <c>--adapter-scale</c>
/// once for every unit or once per unit, in order; <c>--adapter-factor</c> (diffusers' adapter_conditioning_factor)
/// once for all.
/// </summary>
internal sealed class AdapterOption : IDisposable
{
    /// <summary>The repeatable flags: the first two once per unit, the scale once or once per unit.</summary>
    public static readonly string[] Flags = ["--adapter", "--adapter-image", "--adapter-scale"];

    public const string FactorFlag = "--adapter-factor";

    private readonly (string Path, PngImage Picture, float Scale)[] _units;
    private readonly double _factor;
    private readonly List<IDisposable> _loaded = [];

    private AdapterOption((string, PngImage, float)[] units, double factor) => (_units, _factor) = (units, factor);

    /// <summary>The flags' adapters, their pictures read (before any model loads); null without --adapter.</summary>
    public static AdapterOption? Read(CommandLine line)
    {
        IReadOnlyList<string> paths = line.GetAll("--adapter");
        if (paths.Count == 0)
        {
            foreach (string flag in (string[])[.. Flags, FactorFlag])
            {
                if (line.Has(flag)) throw new UsageException($"generate: {flag} goes with --adapter");
            }
            return null;
        }
        IReadOnlyList<string> pictures = line.GetAll("--adapter-image");
        if (pictures.Count != paths.Count)
        {
            throw new UsageException($"generate: {paths.Count} --adapter need as many --adapter-image (one each, in order), got {pictures.Count}");
        }
        float[] scales = ControlNetOption.PerUnit(line, "--adapter-scale", "T2I-Adapter", "--adapter", paths.Count, 1f, line.ParseFloat);
        double factor = line.GetDouble(FactorFlag, 1); // a Python float, as diffusers multiplies it
        if (factor is < 0 or > 1)
        {
            throw new UsageException($"generate: {FactorFlag} is the fraction of the steps the adapters steer, from 0 to 1, got {factor}");
        }
        var units = new (string, PngImage, float)[paths.Count];
        for (int i = 0; i < units.Length; i++)
        {
            units[i] = (paths[i], PictureFile.ReadUpright(pictures[i]), scales[i]);
        }
        return new AdapterOption(units, factor);
    }

    /// <summary>The number of units.</summary>
    public int Count => _units.Length;

    /// <summary>diffusers' adapter_conditioning_factor.</summary>
    public double Factor => _factor;

    /// <summary>Loads the adapters (weights memory-mapped, then packed) and returns the request's units.</summary>
    public T2IAdapterUnit[] Load()
    {
        var units = new T2IAdapterUnit[_units.Length];
        for (int i = 0; i < units.Length; i++)
        {
            (string path, PngImage picture, float scale) = _units[i];
            var source = T2IAdapterSource.Open(path);
            _loaded.Add(source);
            var model = new T2IAdapterModel(source.Config, source.Weights);
            _loaded.Add(model);
            units[i] = new T2IAdapterUnit(model, picture) { Scale = scale };
        }
        return units;
    }

    /// <summary>
    /// The parameters' entries, as A1111's ControlNet extension records a T2I-Adapter: a ControlNet unit (numbered
    /// from <paramref name="first"/>, after the ControlNets) whose guidance ends at the factor.
    /// </summary>
    public string Parameters(int first)
    {
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < _units.Length; i++)
        {
            (string path, _, float scale) = _units[i];
            text.Append(CultureInfo.InvariantCulture, $", ControlNet {first + i}: \"Module: none, Model: {ControlNetOption.ModelName(path)}, Weight: {scale}, ")
                .Append(CultureInfo.InvariantCulture, $"Resize Mode: Just Resize, Guidance Start: 0, Guidance End: {_factor}\"");
        }
        return text.ToString();
    }

    public void Dispose()
    {
        for (int i = _loaded.Count - 1; i >= 0; i--) _loaded[i].Dispose();
        _loaded.Clear();
    }
}
