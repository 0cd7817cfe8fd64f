using System.Globalization;
using System.Text.RegularExpressions;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Upscalers;

/// <summary>
/// Real-ESRGAN's compact upscalers (SRVGGNetCompact: realesr-general-x4v3, realesr-general-wdn-x4v3,
/// realesr-animevideov3) read as spandrel reads them: body.0 a 3x3 convolution from the picture, then PReLU
/// (body.1.weight, one slope per feature) and convolution pairs, and a last convolution body.N to OutChannels x s^2
/// channels for a pixel shuffle by s. The output channels are the input's (spandrel's assumption). Models with ReLU
/// or LeakyReLU activations have no slopes and are refused, as spandrel refuses them.
/// Reference: BasicSR SRVGGNetCompact (srvgg_arch.py).
/// </summary>
internal static class CompactFile
{
    private static readonly Regex Body = new(@"^body\.(\d+)\.(weight|bias)$", RegexOptions.CultureInvariant);

    /// <summary>Whether the file is laid out as a compact model: a body.0 convolution (RRDB files name theirs conv_first or model.0).</summary>
    public static bool Is(SafetensorsFile file) => file.TryGet("body.0.weight", out TensorInfo first) && first.Shape.Length == 4;

    public static EsrganConfig Infer(string path, WeightSet weights)
    {
        int last = -1;
        foreach (TensorEntry entry in weights.Entries)
        {
            string name = entry.Name;
            Match m = Body.Match(name);
            if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int index) || index > 2 * EsrganFile.MaxBlocks + 2)
            {
                throw new InvalidFileException(path, $"tensor '{name}' belongs to no layer of a compact Real-ESRGAN model (SRVGGNetCompact: body.N.weight/bias)");
            }
            last = Math.Max(last, index);
        }
        if (last < 2 || last % 2 != 0)
        {
            throw new InvalidFileException(path, $"the last layer is body.{last}; a compact model ends with a convolution at an even index of 2 or more");
        }
        if (!weights.TryGet("body.1.weight", out TensorEntry slopes) || slopes.Shape.Length != 1)
        {
            throw new InvalidFileException(path, "a compact model without PReLU slopes (a vector body.1.weight): its ReLU or LeakyReLU variants are not run, as spandrel does not run them");
        }
        long[] first = EsrganFile.Shape(path, weights, "body.0.weight", 4);
        long[] output = EsrganFile.Shape(path, weights, $"body.{last}.weight", 4);
        int features = EsrganFile.Channels(path, "body.0.weight", first[0]);
        int inChannels = EsrganFile.Channels(path, "body.0.weight", first[1]);
        int shuffled = EsrganFile.Channels(path, $"body.{last}.weight", output[0]);
        int scale = (int)Math.Round(Math.Sqrt(shuffled / (double)inChannels));
        if (scale < 1 || scale * scale * inChannels != shuffled)
        {
            throw new InvalidFileException(path, $"body.{last} makes {shuffled} channels: not {inChannels} channels times a square pixel-shuffle factor");
        }
        // Every slope vector and inner convolution is checked by shape when the network binds them.
        return new EsrganConfig(inChannels, inChannels, features, GrowthChannels: 0, Blocks: (last - 2) / 2, Upsamplings: 0, ShuffleFactor: 1)
        {
            Architecture = EsrganArchitecture.Compact,
            PixelShuffle = scale,
        };
    }
}
