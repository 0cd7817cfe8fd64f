using Sd.Loaders.Safetensors;

namespace Sd.Cli.Tests;

/// <summary>A tiny Real-ESRGAN x4plus-shaped RRDBNet (8 features, one RRDB block) with seeded random weights.</summary>
internal static class TinyEsrgan
{
    public static string Write(string path)
    {
        const int features = 8, growth = 4;
        var writer = new SafetensorsWriter();
        var random = new Random(7);
        void Conv(string key, int outputs, int inputs)
        {
            var weight = new float[outputs * inputs * 9];
            for (int i = 0; i < weight.Length; i++) weight[i] = (float)(random.NextDouble() - 0.5) / MathF.Sqrt(inputs * 9);
            writer.AddFloat32(key + ".weight", [outputs, inputs, 3, 3], weight);
            writer.AddFloat32(key + ".bias", [outputs], new float[outputs]);
        }
        Conv("conv_first", features, 3);
        for (int r = 1; r <= 3; r++)
        {
            for (int k = 1; k <= 5; k++)
            {
                Conv($"body.0.rdb{r}.conv{k}", k == 5 ? features : growth, features + (k - 1) * growth);
            }
        }
        foreach (string key in (string[])["conv_body", "conv_up1", "conv_up2", "conv_hr"]) Conv(key, features, features);
        Conv("conv_last", 3, features);
        writer.Save(path);
        return path;
    }
}
