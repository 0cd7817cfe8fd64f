using System.Runtime.InteropServices;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// Hand-made LoRA files: one module per weight it changes, named as kohya (lora_unet_/lora_te_ and the module path
/// with '_') or diffusers (unet./text_encoder., lora_A/lora_B) name them, with seeded random down and up tensors.
/// <see cref="Merged"/> is the oracle: the merge restated in float64.
/// </summary>
internal sealed class LoraWriter
{
    private readonly SafetensorsWriter _writer = new();

    /// <summary>A module's tensors as the file holds them (16-bit ones widened), and its alpha / rank.</summary>
    public sealed record Module(float[] Down, float[] Up, int Rank, double AlphaOverRank);

    /// <summary>
    /// Adds a module changing <paramref name="weight"/> (a diffusers weight name, "...attn1.to_q.weight") of shape
    /// <paramref name="shape"/> ([out, in] or [out, in, kh, kw]).
    /// </summary>
    /// <param name="key">The module's name in the file, for names of other layouts (kohya's parts are written); by default kohya's or diffusers' name of <paramref name="weight"/>.</param>
    public Module Add(ModelComponent component, string weight, long[] shape, int rank, float? alpha, int seed, bool kohya = true,
        TensorDType dtype = TensorDType.F32, string? key = null)
    {
        string module = weight[..^".weight".Length];
        key ??= kohya
            ? (component == ModelComponent.Unet ? "lora_unet_" : "lora_te_") + module.Replace('.', '_')
            : (component == ModelComponent.Unet ? "unet." : "text_encoder.") + module;
        long[] down = shape.Length == 4 ? [rank, shape[1], shape[2], shape[3]] : [rank, shape[1]];
        long[] up = shape.Length == 4 ? [shape[0], rank, 1, 1] : [shape[0], rank];
        var random = new Random(seed);
        float[] downValues = Values(down, 1 / Math.Sqrt(shape[1]), random, dtype);
        float[] upValues = Values(up, 1 / Math.Sqrt(rank), random, dtype);
        AddTensor(key + (kohya ? ".lora_down.weight" : ".lora_A.weight"), down, downValues, dtype);
        AddTensor(key + (kohya ? ".lora_up.weight" : ".lora_B.weight"), up, upValues, dtype);
        if (alpha is { } a)
        {
            _writer.AddFloat32(key + ".alpha", [], [a]);
        }
        return new Module(downValues, upValues, rank, (alpha is null or 0 ? rank : alpha.Value) / (double)rank);
    }

    /// <summary>A __metadata__ entry (kohya's ss_output_name, ...).</summary>
    public void AddMetadata(string key, string value) => _writer.AddMetadata(key, value);

    /// <summary>Any tensor, for files a test spoils on purpose.</summary>
    public void AddRaw(string name, long[] shape, float[] values) => _writer.AddFloat32(name, shape, values);

    public string Save(string path)
    {
        _writer.Save(path);
        return path;
    }

    /// <summary>W + sum of scale x alpha/rank x up x down, in float64, rounded once to float32.</summary>
    public static float[] Merged(float[] weight, long[] shape, params (Module Module, float Scale)[] modules)
    {
        int outputs = (int)shape[0];
        int rest = weight.Length / outputs;
        var merged = new float[weight.Length];
        for (int o = 0; o < outputs; o++)
        {
            for (int c = 0; c < rest; c++)
            {
                double sum = weight[o * rest + c];
                foreach ((Module m, float scale) in modules)
                {
                    double product = 0;
                    for (int r = 0; r < m.Rank; r++)
                    {
                        product += (double)m.Up[o * m.Rank + r] * m.Down[r * rest + c];
                    }
                    sum += scale * m.AlphaOverRank * product;
                }
                merged[o * rest + c] = (float)sum;
            }
        }
        return merged;
    }

    private static float[] Values(long[] shape, double range, Random random, TensorDType dtype)
    {
        long count = 1;
        foreach (long d in shape) count *= d;
        var values = new float[count];
        for (int i = 0; i < values.Length; i++)
        {
            float value = (float)(range * (2 * random.NextDouble() - 1));
            values[i] = dtype == TensorDType.F16 ? (float)(Half)value : value;
        }
        return values;
    }

    private void AddTensor(string name, long[] shape, float[] values, TensorDType dtype)
    {
        if (dtype == TensorDType.F16)
        {
            ushort[] bits = Array.ConvertAll(values, v => BitConverter.HalfToUInt16Bits((Half)v));
            _writer.Add(name, TensorDType.F16, shape, MemoryMarshal.AsBytes(bits.AsSpan()));
        }
        else
        {
            _writer.AddFloat32(name, shape, values);
        }
    }
}
