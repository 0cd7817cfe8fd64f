using System.Text.Json;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>
/// The resize in every mode against PyTorch 1.13's F.interpolate(size, mode, antialias) on NCHW float32 inputs
/// (Data/resize-reference.json from resize-reference.py: up, down, uneven and one-row sizes, and latent-sized axes where
/// the rounding of a source index shows; aten's portable CPU kernel): bit for bit. aten's AVX2 build and CUDA's kernel,
/// which A1111 mostly runs, round some sums otherwise (the compiler fuses multiplies and adds differently).
/// </summary>
public unsafe class InterpolationTests
{
    [Fact]
    public void Every_case_matches_pytorch_to_a_few_ulps()
    {
        string file = Path.Combine(Path.GetDirectoryName(typeof(InterpolationTests).Assembly.Location)!, "Data", "resize-reference.json");
        using var reference = JsonDocument.Parse(File.ReadAllText(file));
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            InterpolationMode mode = c.GetProperty("mode").GetString() switch
            {
                "bilinear" => InterpolationMode.Bilinear,
                "bilinear-antialiased" => InterpolationMode.BilinearAntialiased,
                "bicubic" => InterpolationMode.Bicubic,
                "bicubic-antialiased" => InterpolationMode.BicubicAntialiased,
                "nearest" => InterpolationMode.Nearest,
                var other => other == "nearest-exact" ? InterpolationMode.NearestExact : throw new InvalidDataException(other),
            };
            int[] inShape = Ints(c, "in"), outShape = Ints(c, "out");
            int channels = inShape[1], h = inShape[2], w = inShape[3], oh = outShape[2], ow = outShape[3];
            float[] x = Nhwc(Floats(c, "x"), channels, h * w), expected = Nhwc(Floats(c, "y"), channels, oh * ow);
            var y = new float[expected.Length];
            fixed (float* px = x, py = y)
            {
                Interpolation.Resize(px, py, 1, h, w, oh, ow, channels, mode);
            }
            float bound = 0f;
            for (int i = 0; i < y.Length; i++)
            {
                Assert.True(Math.Abs(y[i] - expected[i]) <= bound, $"{mode} {h}x{w} -> {oh}x{ow}, value {i}: {y[i]} vs {expected[i]}");
            }
            cases++;
        }
        Assert.Equal(84, cases);
    }

    [Fact]
    public void An_empty_input_is_refused()
    {
        float[] x = new float[4], y = new float[4];
        fixed (float* px = x, py = y)
        {
            float* a = px, b = py;
            Assert.Throws<ArgumentOutOfRangeException>(() => Interpolation.Resize(a, b, 1, 0, 2, 2, 2, 1, InterpolationMode.Bicubic));
            Assert.Throws<ArgumentOutOfRangeException>(() => Interpolation.Resize(a, b, 1, 2, 2, 2, 2, 1, (InterpolationMode)99));
        }
    }

    private static float[] Nhwc(float[] nchw, int channels, int pixels)
    {
        var nhwc = new float[nchw.Length];
        for (int c = 0; c < channels; c++)
        {
            for (int p = 0; p < pixels; p++)
            {
                nhwc[p * channels + c] = nchw[c * pixels + p];
            }
        }
        return nhwc;
    }

    private static int[] Ints(JsonElement e, string name) => e.GetProperty(name).EnumerateArray().Select(v => v.GetInt32()).ToArray();

    private static float[] Floats(JsonElement e, string name) => e.GetProperty(name).EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
}
