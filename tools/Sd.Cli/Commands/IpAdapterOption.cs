using System.Globalization;
using Sd.Engine.Adapters;
using Sd.Engine.Pipelines;
using Sd.Engine.Vision;
using Sd.Loaders;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd generate</c>'s IP-Adapters: each <c>--ip-adapter FILE</c> (h94's layout: plain, Plus or full-face) with its
/// <c>--ip-adapter-image</c> (the picture used as a prompt, or a folder of pictures used together); <c>--ip-adapter-scale</c>,
/// <c>--ip-adapter-block-scales</c> (diffusers' set_ip_adapter_scale dict as JSON), <c>--ip-adapter-mask</c> (a mask per
/// picture, diffusers' ip_adapter_masks; "none" for a unit without) and <c>--image-encoder</c> (a
/// CLIPVisionModelWithProjection folder; by default the image_encoder folder beside the adapter, as h94 ships them)
/// once for every unit or once per unit, in order. An image encoder named by several units is loaded once.
/// </summary>
internal sealed class IpAdapterOption : IDisposable
{
    /// <summary>The repeatable flags: the first two once per unit, the others once or once per unit.</summary>
    public static readonly string[] Flags = ["--ip-adapter", "--ip-adapter-image", "--ip-adapter-scale", "--ip-adapter-block-scales", "--ip-adapter-mask", "--image-encoder"];

    private readonly Unit[] _units;
    private readonly List<IDisposable> _loaded = [];

    /// <summary>One --ip-adapter as given: its file, pictures, scale, block scales, masks (and the --ip-adapter-mask they came from) and encoder folder.</summary>
    private sealed record Unit(string Path, PngImage[] Pictures, float Scale, IpAdapterBlockScales? Blocks, string? MaskPath, PngImage[]? Masks, string Encoder);

    private IpAdapterOption(Unit[] units) => _units = units;

    /// <summary>The number of units.</summary>
    public int Count => _units.Length;

    /// <summary>The flags' IP-Adapters, their pictures read and encoders found (before any model loads); null without --ip-adapter.</summary>
    public static IpAdapterOption? Read(CommandLine line)
    {
        IReadOnlyList<string> paths = line.GetAll("--ip-adapter");
        if (paths.Count == 0)
        {
            foreach (string flag in Flags)
            {
                if (line.Has(flag)) throw new UsageException($"generate: {flag} goes with --ip-adapter");
            }
            return null;
        }
        IReadOnlyList<string> pictures = line.GetAll("--ip-adapter-image");
        if (pictures.Count != paths.Count)
        {
            throw new UsageException($"generate: {paths.Count} --ip-adapter need as many --ip-adapter-image (one each, in order), got {pictures.Count}");
        }
        float[] scales = ControlNetOption.PerUnit(line, "--ip-adapter-scale", "IP-Adapter", "--ip-adapter", paths.Count, 1f, line.ParseFloat);
        IpAdapterBlockScales?[] blocks = ControlNetOption.PerUnit<IpAdapterBlockScales?>(line, "--ip-adapter-block-scales", "IP-Adapter", "--ip-adapter", paths.Count, null, BlockScales);
        string?[] encoders = ControlNetOption.PerUnit<string?>(line, "--image-encoder", "IP-Adapter", "--ip-adapter", paths.Count, null, (_, value) => value);
        string?[] masks = ControlNetOption.PerUnit<string?>(line, "--ip-adapter-mask", "IP-Adapter", "--ip-adapter", paths.Count, null,
            (_, value) => value == "none" ? null : value);
        var units = new Unit[paths.Count];
        for (int i = 0; i < units.Length; i++)
        {
            string encoder = encoders[i] ?? IpAdapterSource.ImageEncoderBeside(paths[i])
                ?? throw new UsageException($"generate: no image_encoder folder beside {paths[i]}; give --image-encoder (the CLIP image encoder the IP-Adapter was trained with, e.g. h94/IP-Adapter's models/image_encoder)");
            PngImage[] unitPictures = Pictures("--ip-adapter-image", pictures[i]);
            PngImage[]? unitMasks = masks[i] is { } mask ? Pictures("--ip-adapter-mask", mask) : null;
            if (unitMasks is not null && unitMasks.Length != unitPictures.Length)
            {
                throw new UsageException($"generate: --ip-adapter-mask {masks[i]} gives {unitMasks.Length} masks for the {unitPictures.Length} pictures of --ip-adapter-image {pictures[i]}; give one each (a folder of as many, in the same order)");
            }
            units[i] = new Unit(paths[i], unitPictures, scales[i], blocks[i], masks[i], unitMasks, encoder);
        }
        return new IpAdapterOption(units);
    }

    /// <summary>
    /// An --ip-adapter-image or --ip-adapter-mask: a picture, or a folder whose files (not hidden ones) are pictures,
    /// read in natural order (diffusers' list of pictures for one adapter, and their masks).
    /// </summary>
    private static PngImage[] Pictures(string flag, string path)
    {
        if (!Directory.Exists(path))
        {
            return [PictureFile.ReadUpright(path)];
        }
        var names = new List<string>();
        foreach (string file in Directory.EnumerateFiles(path))
        {
            if (!Path.GetFileName(file).StartsWith('.')) names.Add(file);
        }
        if (names.Count is 0 or > IpAdapterUnit.MaxImages)
        {
            throw new UsageException($"generate: {flag} folder '{path}' holds {names.Count} pictures; an IP-Adapter takes 1 to {IpAdapterUnit.MaxImages}");
        }
        names.Sort(NaturalOrder.Instance);
        return names.ConvertAll(PictureFile.ReadUpright).ToArray();
    }

    private static IpAdapterBlockScales BlockScales(string flag, string value)
    {
        try
        {
            return IpAdapterBlockScales.Parse(value);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"generate: {flag}: {e.Message}");
        }
    }

    /// <summary>Loads the adapters and their image encoders (weights memory-mapped, then packed) and returns the request's units.</summary>
    public IpAdapterUnit[] Load()
    {
        var encoders = new Dictionary<string, ClipVisionModel>(StringComparer.Ordinal);
        var units = new IpAdapterUnit[_units.Length];
        for (int i = 0; i < units.Length; i++)
        {
            Unit unit = _units[i];
            string key = Path.GetFullPath(unit.Encoder);
            if (!encoders.TryGetValue(key, out ClipVisionModel? encoder))
            {
                var encoderSource = ImageEncoderSource.Open(unit.Encoder);
                _loaded.Add(encoderSource);
                encoder = new ClipVisionModel(encoderSource.Config, encoderSource.Weights);
                _loaded.Add(encoder);
                encoders[key] = encoder;
            }
            var source = IpAdapterSource.Open(unit.Path);
            _loaded.Add(source);
            var model = new IpAdapterModel(source);
            _loaded.Add(model);
            units[i] = new IpAdapterUnit(model, encoder, unit.Pictures) { Scale = unit.Scale, BlockScales = unit.Blocks, Masks = unit.Masks };
        }
        return units;
    }

    /// <summary>
    /// The parameters' entries, as A1111's ControlNet extension records an IP-Adapter: a ControlNet unit (numbered from
    /// <paramref name="first"/>, after the ControlNets and T2I-Adapters) whose module is the CLIP image encoder; block
    /// scales and masks, which it has no field for, as "IP-Adapter block scales N" and "IP-Adapter masks N" (the mask
    /// file or folder's name) entries beside it.
    /// </summary>
    public string Parameters(int first)
    {
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < _units.Length; i++)
        {
            Unit unit = _units[i];
            text.Append(CultureInfo.InvariantCulture, $", ControlNet {first + i}: \"Module: ip-adapter_clip_sd15, Model: {ControlNetOption.ModelName(unit.Path)}, Weight: {unit.Scale}, ")
                .Append("Resize Mode: Crop and Resize, Guidance Start: 0, Guidance End: 1\"");
            if (unit.Blocks is { } blocks)
            {
                text.Append(CultureInfo.InvariantCulture, $", IP-Adapter block scales {first + i}: {Infotext.Quote(blocks.Json)}");
            }
            if (unit.MaskPath is { } masks)
            {
                text.Append(CultureInfo.InvariantCulture, $", IP-Adapter masks {first + i}: {Infotext.Quote(Path.GetFileName(Path.TrimEndingDirectorySeparator(masks)))}");
            }
        }
        return text.ToString();
    }

    public void Dispose()
    {
        for (int i = _loaded.Count - 1; i >= 0; i--) _loaded[i].Dispose();
        _loaded.Clear();
    }
}
