using System.Text.Json;
using Sd.Engine.Upscaling;
using Sd.Loaders;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Upscalers;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// ESRGAN upscaling against AUTOMATIC1111's upscale_with_model with BasicSR's RRDBNet and SRVGGNetCompact on PyTorch
/// (Data/esrgan-reference.json from esrgan-reference.py): small networks (RRDB: 16 features, 8-16 growth channels, one
/// or two blocks; x4, x2 and x1 by pixel-unshuffle; compact: 8-16 features, 2-3 convolutions, x4 and x2) whose weights
/// follow a formula both sides compute, seeded pictures, tiled
/// (with pictures smaller than a tile) and whole. The network's float output is compared tightly; the bytes may differ
/// only where a value lands within rounding distance of a half (by one, and rarely).
/// </summary>
public sealed unsafe class EsrganUpscalerTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sd-esrgan-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static TheoryData<int> Cases() => [0, 1, 2, 3, 4, 5, 6];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Upscales_as_a1111_does_with_basicsr_rrdbnet(int index)
    {
        using JsonDocument reference = ReferenceData.Json("esrgan-reference.json");
        JsonElement c = reference.RootElement.GetProperty("cases")[index];
        string path = WriteModel(c, oldNames: false);
        int h = c.GetProperty("in")[0].GetInt32(), w = c.GetProperty("in")[1].GetInt32();
        byte[] picture = Convert.FromBase64String(c.GetProperty("picture").GetString()!);
        byte[] expected = Convert.FromBase64String(c.GetProperty("upscaled").GetString()!);
        using var tiled = EsrganUpscaler.Load(path, c.GetProperty("tile").GetInt32(), c.GetProperty("overlap").GetInt32());
        byte[] actual = tiled.UpscaleOnce(picture, h, w);
        Assert.Equal(expected.Length, actual.Length);
        int differing = 0, worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            int d = Math.Abs(expected[i] - actual[i]);
            if (d > 0) differing++;
            worst = Math.Max(worst, d);
        }
        output.WriteLine($"{c.GetProperty("name").GetString()}: {differing} of {expected.Length} bytes differ, by at most {worst}");
        Assert.True(worst <= 1, $"a byte differs by {worst}");
        Assert.True(differing <= expected.Length / 200, $"{differing} of {expected.Length} bytes differ");
        if (c.GetProperty("raw").ValueKind == JsonValueKind.String)
        {
            CheckRaw(c, path, picture, h, w);
        }
    }

    /// <summary>The network's floats for the whole picture (no tiles), before clamping and rounding.</summary>
    private void CheckRaw(JsonElement c, string path, byte[] picture, int h, int w)
    {
        float[] expected = ReferenceFloats(c.GetProperty("raw").GetString()!);
        using EsrganFile file = EsrganFile.Open(path);
        Assert.Equal(c.GetProperty("architecture").GetString() == "compact" ? EsrganArchitecture.Compact : EsrganArchitecture.Rrdb, file.Config.Architecture);
        using IUpscaleNetwork network = file.Config.Architecture == EsrganArchitecture.Compact
            ? new CompactNet(file.Config, file.Weights)
            : new RrdbNet(file.Config, file.Weights);
        var input = new float[h * w * 3];
        for (int p = 0; p < h * w; p++)
        {
            for (int k = 0; k < 3; k++) input[p * 3 + k] = (float)(picture[p * 3 + 2 - k] / 255.0); // BGR
        }
        var actual = new float[expected.Length];
        fixed (float* x = input, y = actual)
        {
            network.Forward(x, h, w, y);
        }
        double diff = 0, norm = 0, worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = actual[i] - expected[i];
            diff += d * d;
            norm += (double)expected[i] * expected[i];
            worst = Math.Max(worst, Math.Abs(d));
        }
        double relative = Math.Sqrt(diff / norm);
        output.WriteLine($"raw: relative L2 {relative:E2}, max abs {worst:E2}");
        Assert.True(relative < 1e-5 && worst < 1e-4, $"network output: relative L2 {relative:E2}, max abs {worst:E2}");
    }

    [Fact]
    public void Original_esrgan_names_load_the_same_network()
    {
        using JsonDocument reference = ReferenceData.Json("esrgan-reference.json");
        JsonElement c = reference.RootElement.GetProperty("cases")[0];
        byte[] picture = Convert.FromBase64String(c.GetProperty("picture").GetString()!);
        int h = c.GetProperty("in")[0].GetInt32(), w = c.GetProperty("in")[1].GetInt32();
        using EsrganUpscaler modern = EsrganUpscaler.Load(WriteModel(c, oldNames: false), 16, 4);
        using EsrganUpscaler original = EsrganUpscaler.Load(WriteModel(c, oldNames: true), 16, 4);
        Assert.Equal(modern.Config, original.Config);
        Assert.Equal(new EsrganConfig(3, 3, 16, 16, 1, 2, 1), original.Config);
        Assert.Equal(modern.UpscaleOnce(picture, h, w), original.UpscaleOnce(picture, h, w));
    }

    [Fact]
    public void Bad_files_and_arguments_are_refused_by_name()
    {
        using JsonDocument reference = ReferenceData.Json("esrgan-reference.json");
        JsonElement c = reference.RootElement.GetProperty("cases")[0];
        string pickle = Path.Combine(_folder, "RealESRGAN_x4plus.pth");
        File.WriteAllBytes(pickle, [0x80, 0x02, 0x7d, 0x71]);
        Assert.Throws<UnsafeFormatException>(() => EsrganUpscaler.Load(pickle));

        string missing = WriteModel(c, oldNames: false, skip: "conv_hr.weight");
        Assert.Contains("conv_hr.weight", Assert.Throws<InvalidFileException>(() => EsrganUpscaler.Load(missing)).Message);

        string stray = WriteModel(c, oldNames: false, extra: "text_model.embeddings.weight");
        Assert.Contains("text_model.embeddings.weight", Assert.Throws<InvalidFileException>(() => EsrganUpscaler.Load(stray)).Message);

        string reshaped = WriteModel(c, oldNames: false, reshape: "body.0.rdb2.conv3.weight");
        Assert.Contains("body.0.rdb2.conv3.weight", Assert.Throws<InvalidFileException>(() => EsrganUpscaler.Load(reshaped)).Message);

        using EsrganUpscaler upscaler = EsrganUpscaler.Load(WriteModel(c, oldNames: false), 16, 4);
        Assert.Throws<ArgumentException>(() => upscaler.UpscaleOnce(new byte[10], 2, 2));
        Assert.Throws<ArgumentException>(() => upscaler.UpscaleOnce(new byte[4 * 4 * 3], 4, 4)); // no wider than the overlap
        Assert.Throws<ArgumentOutOfRangeException>(() => upscaler.UpscaleOnce([], 0, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => EsrganUpscaler.Load(missing, 16, 16));
    }

    /// <summary>
    /// The case's network as a .safetensors file: the reference's formula weights under BasicSR's names, or the
    /// original ESRGAN ones (model.0, model.1.sub.N.RDBk.convJ.0, model.1.sub.NB, model.3, .6, .8, .10).
    /// </summary>
    [Fact]
    public void Compact_models_without_slopes_or_of_wrong_shapes_are_refused_by_name()
    {
        using JsonDocument reference = ReferenceData.Json("esrgan-reference.json");
        JsonElement c = reference.RootElement.GetProperty("cases")[6];
        Assert.Equal("compact x2 whole picture", c.GetProperty("name").GetString());
        var e = Assert.Throws<InvalidFileException>(() => EsrganUpscaler.Load(WriteModel(c, oldNames: false, skip: "body.1.weight")));
        Assert.Contains("without PReLU slopes", e.Message);
        e = Assert.Throws<InvalidFileException>(() => EsrganUpscaler.Load(WriteModel(c, oldNames: false, skip: "body.3.weight")));
        Assert.Contains("body.3.weight", e.Message);
        e = Assert.Throws<InvalidFileException>(() => EsrganUpscaler.Load(WriteModel(c, oldNames: false, reshape: "body.2.weight")));
        Assert.Contains("body.2.weight", e.Message);
        e = Assert.Throws<InvalidFileException>(() => EsrganUpscaler.Load(WriteModel(c, oldNames: false, extra: "conv_first.weight")));
        Assert.Contains("'conv_first.weight' belongs to no layer of a compact Real-ESRGAN model", e.Message);
        using EsrganUpscaler upscaler = EsrganUpscaler.Load(WriteModel(c, oldNames: false));
        Assert.Equal((EsrganArchitecture.Compact, 2, 2, 8), (upscaler.Config.Architecture, upscaler.Scale, upscaler.Config.Blocks, upscaler.Config.Features));
    }

    private string WriteModel(JsonElement c, bool oldNames, string? skip = null, string? extra = null, string? reshape = null) =>
        WriteModel(c, _folder, oldNames, skip, extra, reshape);

    internal static string WriteModel(JsonElement c, string folder, bool oldNames = false, string? skip = null, string? extra = null, string? reshape = null)
    {
        var writer = new SafetensorsWriter();
        int index = 0;
        int blocks = c.GetProperty("blocks").GetInt32();
        foreach (JsonElement tensor in c.GetProperty("tensors").EnumerateArray())
        {
            string name = tensor[0].GetString()!;
            long[] shape = tensor[1].EnumerateArray().Select(d => d.GetInt64()).ToArray();
            float[] values = FormulaWeights(shape, index++);
            if (name == skip) continue;
            if (name == reshape)
            {
                shape = [shape[0], shape[1] + 1, 3, 3];
                values = new float[shape.Aggregate(1L, (a, b) => a * b)];
            }
            writer.AddFloat32(oldNames ? OldName(name, blocks) : name, shape, values);
        }
        if (extra != null) writer.AddFloat32(extra, [2, 2], new float[4]);
        string path = Path.Combine(folder, $"model-{Guid.NewGuid():N}.safetensors");
        writer.Save(path);
        return path;
    }

    private static string OldName(string name, int blocks)
    {
        string[] parts = name.Split('.');
        if (parts[0] == "body") return $"model.1.sub.{parts[1]}.RDB{parts[2][3..]}.{parts[3]}.0.{parts[4]}";
        return parts[0] switch
        {
            "conv_first" => "model.0." + parts[1],
            "conv_body" => $"model.1.sub.{blocks}.{parts[1]}",
            "conv_up1" => "model.3." + parts[1],
            "conv_up2" => "model.6." + parts[1],
            "conv_hr" => "model.8." + parts[1],
            _ => "model.10." + parts[1],
        };
    }

    /// <summary>esrgan-reference.py's formula_weights (biases scaled by 0.1).</summary>
    private static float[] FormulaWeights(long[] shape, int index)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        double scale = 2.0 / Math.Sqrt(shape.Length == 4 ? shape[1] * 9 : 1);
        var values = new float[count];
        for (long i = 0; i < count; i++)
        {
            ulong u = unchecked(((ulong)i + 7919UL * (ulong)index) * 2654435761UL) % (1UL << 32);
            float v = (float)((u / 4294967296.0 - 0.5) * scale);
            values[i] = shape.Length == 1 ? v * 0.1f : v;
        }
        return values;
    }

    private static float[] ReferenceFloats(string base64)
    {
        byte[] bytes = Convert.FromBase64String(base64);
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }
}
