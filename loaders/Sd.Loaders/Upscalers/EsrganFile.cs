using System.Globalization;
using System.Text.RegularExpressions;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Upscalers;

/// <summary>The two generator designs of the ESRGAN family.</summary>
public enum EsrganArchitecture
{
    /// <summary>RRDBNet: ESRGAN, BSRGAN, Real-ESRGAN x4plus / x2plus / anime_6B and the community models.</summary>
    Rrdb,

    /// <summary>SRVGGNetCompact: Real-ESRGAN's small models (realesr-general-x4v3, realesr-animevideov3).</summary>
    Compact,
}

/// <summary>
/// The shape of an ESRGAN-family network read from its weights, as spandrel reads it. RRDBNet: feature and growth
/// channels, residual-in-residual blocks, the 2x nearest-neighbour upsampling steps, and the pixel-unshuffle factor
/// Real-ESRGAN's x2 (2) and x1 (4) models put before the network. SRVGGNetCompact (<see cref="Architecture"/>):
/// features, <see cref="Blocks"/> body convolutions after the first, and the final pixel-shuffle factor
/// (<see cref="PixelShuffle"/>); no growth channels, upsamplings or unshuffle.
/// </summary>
public sealed record EsrganConfig(int InChannels, int OutChannels, int Features, int GrowthChannels, int Blocks, int Upsamplings, int ShuffleFactor)
{
    public EsrganArchitecture Architecture { get; init; } = EsrganArchitecture.Rrdb;

    /// <summary>A compact model's pixel-shuffle factor (its scale); 1 for RRDBNet.</summary>
    public int PixelShuffle { get; init; } = 1;

    /// <summary>Output pixels per network input pixel along each side: 2^upsamplings, or the compact model's shuffle.</summary>
    public int NetworkScale => Architecture == EsrganArchitecture.Compact ? PixelShuffle : 1 << Upsamplings;

    /// <summary>Output pixels per input pixel along each side: the network's scale / the unshuffle factor.</summary>
    public int Scale => NetworkScale / ShuffleFactor;

    /// <summary>Channels the first convolution reads: the picture's after pixel-unshuffle.</summary>
    public int FirstConvInChannels => InChannels * ShuffleFactor * ShuffleFactor;
}

/// <summary>
/// An ESRGAN-family upscaler (ESRGAN, BSRGAN/RealSR, Real-ESRGAN x4plus / x4plus_anime_6B / x2plus, 4x-UltraSharp and
/// the like) from one .safetensors file, its tensors renamed to the new (BasicSR) names: conv_first,
/// body.N.rdbK.convJ, conv_body, conv_upK, conv_hr, conv_last. Accepts the original ESRGAN names (model.0,
/// model.1.sub.N.RDBk.convJ.0, model.1.sub.NB, then model.3k for the upsampling convolutions and two more), BSRGAN's
/// (RRDB_trunk, trunk_conv, upconvK, HRconv) and BasicSR's; and Real-ESRGAN's compact models (SRVGGNetCompact:
/// body.N, see <see cref="CompactFile"/>). Pickled .pth files are refused
/// (<see cref="PickleGuard"/>): convert them to .safetensors first. Reference: spandrel's ESRGAN architecture.
/// </summary>
public sealed class EsrganFile : IDisposable
{
    private static readonly Regex OldBlock = new(@"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", RegexOptions.CultureInvariant);
    private static readonly Regex TrunkBlock = new(@"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$", RegexOptions.CultureInvariant);
    private static readonly Regex NewBlock = new(@"^body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$", RegexOptions.CultureInvariant);
    private static readonly Regex OldTrunkEnd = new(@"^model\.1\.sub\.\d+\.(weight|bias)$", RegexOptions.CultureInvariant);
    private static readonly Regex OldLayer = new(@"^model\.(\d+)\.(weight|bias)$", RegexOptions.CultureInvariant);
    private static readonly Regex NewUp = new(@"^(?:conv_up|upconv)(\d)\.(weight|bias)$", RegexOptions.CultureInvariant);

    /// <summary>Sanity bounds: the largest published RRDB models have 64 features and 23 blocks.</summary>
    internal const int MaxChannels = 1024;
    internal const int MaxBlocks = 256;
    private const int MaxUpsamplings = 4;

    private readonly SafetensorsFile _file;

    private EsrganFile(string path, SafetensorsFile file, WeightSet weights, EsrganConfig config)
    {
        Path = path;
        _file = file;
        Weights = weights;
        Config = config;
    }

    public string Path { get; }

    /// <summary>The file's tensors under the new names.</summary>
    public WeightSet Weights { get; }

    public EsrganConfig Config { get; }

    /// <summary>A1111's name for a file-based ESRGAN upscaler (modelloader.friendly_name): the file name without its extension.</summary>
    public string Name => System.IO.Path.GetFileNameWithoutExtension(Path);

    public static EsrganFile Open(string path)
    {
        SafetensorsFile file = SafetensorsFile.Open(path);
        try
        {
            var weights = new WeightSet(path, [file]);
            bool compact = CompactFile.Is(file); // its names are BasicSR's as they stand
            int lastUp = !compact && file.TryGet("model.0.weight", out _) ? LastOldUpsampling(file) : -1;
            foreach (TensorInfo tensor in file.Tensors)
            {
                weights.Add(new TensorEntry(compact ? tensor.Name : NewName(path, tensor.Name, lastUp), tensor.Shape, file, tensor));
            }
            return new EsrganFile(path, file, weights, compact ? CompactFile.Infer(path, weights) : Infer(path, weights));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A tensor's BasicSR name; a name of no RRDBNet is refused here, naming it. <paramref name="lastUp"/> is the
    /// original sequence's last upsampling convolution (<see cref="LastOldUpsampling"/>), -1 for a file in the newer
    /// names.
    /// </summary>
    private static string NewName(string path, string name, int lastUp)
    {
        Match m;
        if ((m = OldBlock.Match(name)).Success || (m = TrunkBlock.Match(name)).Success || (m = NewBlock.Match(name)).Success)
        {
            return $"body.{m.Groups[1].Value}.rdb{m.Groups[2].Value}.conv{m.Groups[3].Value}.{m.Groups[4].Value}";
        }
        if ((m = NewUp.Match(name)).Success)
        {
            return $"conv_up{m.Groups[1].Value}.{m.Groups[2].Value}";
        }
        string? renamed = name switch
        {
            "conv_first.weight" or "conv_first.bias" or "conv_body.weight" or "conv_body.bias"
                or "conv_hr.weight" or "conv_hr.bias" or "conv_last.weight" or "conv_last.bias" => name,
            "trunk_conv.weight" => "conv_body.weight",
            "trunk_conv.bias" => "conv_body.bias",
            "HRconv.weight" => "conv_hr.weight",
            "HRconv.bias" => "conv_hr.bias",
            _ => null,
        };
        if (renamed != null)
        {
            return renamed;
        }
        if (lastUp >= 0 && (m = OldTrunkEnd.Match(name)).Success)
        {
            return "conv_body." + m.Groups[1].Value; // the trunk's last convolution, model.1.sub.NB
        }
        if (lastUp >= 0 && (m = OldLayer.Match(name)).Success
            && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int index))
        {
            return OldLayerName(path, index, m.Groups[2].Value, lastUp);
        }
        throw new InvalidFileException(path, $"tensor '{name}' belongs to no ESRGAN (RRDBNet) layer: not an ESRGAN-family upscaler, or a variant Sd does not run (ESRGAN+, SwinIR, ...)");
    }

    /// <summary>
    /// The original ESRGAN sequence: model.0 the first convolution, model.1 the trunk, then per upsampling an
    /// (upsample, conv, LeakyReLU) triple whose convolution is model.3k, then conv_hr at the last upsampling's + 2 and
    /// conv_last at + 4 (spandrel's _new_to_old_arch, reversed). Returns that last model.3k (0: none).
    /// </summary>
    private static int LastOldUpsampling(SafetensorsFile file)
    {
        int lastUp = 0;
        foreach (TensorInfo tensor in file.Tensors)
        {
            Match m = OldLayer.Match(tensor.Name);
            if (m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int i) && i >= 3 && i % 3 == 0
                && i <= 3 * MaxUpsamplings && file.TryGet($"model.{i + 2}.weight", out _) && file.TryGet($"model.{i + 4}.weight", out _))
            {
                lastUp = Math.Max(lastUp, i);
            }
        }
        return lastUp;
    }

    private static string OldLayerName(string path, int index, string kind, int lastUp)
    {
        if (index == 0) return "conv_first." + kind;
        if (lastUp > 0 && index % 3 == 0 && index <= lastUp) return $"conv_up{index / 3}.{kind}";
        if (lastUp > 0 && index == lastUp + 2) return "conv_hr." + kind;
        if (lastUp > 0 && index == lastUp + 4) return "conv_last." + kind;
        throw new InvalidFileException(path, $"tensor 'model.{index}.{kind}' fits no layer of the original ESRGAN sequence (model.0, model.1.sub, model.3k, then HR convolutions)");
    }

    private static EsrganConfig Infer(string path, WeightSet weights)
    {
        long[] first = Shape(path, weights, "conv_first.weight", 4);
        long[] last = Shape(path, weights, "conv_last.weight", 4);
        long[] growth = Shape(path, weights, "body.0.rdb1.conv1.weight", 4);
        int features = Channels(path, "conv_first.weight", first[0]);
        int firstIn = Channels(path, "conv_first.weight", first[1]);
        int outChannels = Channels(path, "conv_last.weight", last[0]);
        int growthChannels = Channels(path, "body.0.rdb1.conv1.weight", growth[0]);
        int blocks = 0;
        while (weights.TryGet($"body.{blocks}.rdb1.conv1.weight", out _))
        {
            blocks++;
            if (blocks > MaxBlocks) throw new InvalidFileException(path, $"more than {MaxBlocks} RRDB blocks");
        }
        int ups = 0;
        while (weights.TryGet($"conv_up{ups + 1}.weight", out _))
        {
            ups++;
            if (ups > MaxUpsamplings) throw new InvalidFileException(path, $"more than {MaxUpsamplings} upsampling convolutions (a {1 << MaxUpsamplings}x model at most)");
        }
        if (ups == 0)
        {
            throw new InvalidFileException(path, "no upsampling convolution (conv_up1 / upconv1 / model.3): not an ESRGAN upscaler Sd runs");
        }
        // Real-ESRGAN x2 / x1: the picture is pixel-unshuffled by 2 / 4 before the network (spandrel's shuffle_factor).
        int shuffle = firstIn == outChannels * 4 ? 2 : firstIn == outChannels * 16 ? 4 : 1;
        return new EsrganConfig(firstIn / (shuffle * shuffle), outChannels, features, growthChannels, blocks, ups, shuffle);
    }

    internal static long[] Shape(string path, WeightSet weights, string name, int rank)
    {
        if (!weights.TryGet(name, out TensorEntry entry))
        {
            throw new InvalidFileException(path, $"missing tensor '{name}': not an ESRGAN-family upscaler Sd runs");
        }
        if (entry.Shape.Length != rank || entry.Shape[2] != 3 || entry.Shape[3] != 3)
        {
            throw new InvalidFileException(path, $"tensor '{name}' has shape {TensorInfo.ShapeText(entry.Shape)}, expected a 3x3 convolution's [out, in, 3, 3]");
        }
        return entry.Shape;
    }

    internal static int Channels(string path, string name, long value) =>
        value is >= 1 and <= MaxChannels
            ? (int)value
            : throw new InvalidFileException(path, $"tensor '{name}' has {value} channels, expected 1 to {MaxChannels}");

    public void Dispose() => _file.Dispose();
}
