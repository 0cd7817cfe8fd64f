using Sd.Kernels.Normalization;

namespace Sd.Kernels.Tests;

/// <summary>
/// The scalar LayerNorm (double statistics) against a naive double LayerNorm, then every variant (float statistics
/// with the corrected two-pass formula) against the scalar reference, in place and out of place, serial and tiled.
/// </summary>
public unsafe class LayerNormKernelsTests
{
    public static TheoryData<string> Variants() => NormTestData.Variants();

    private static delegate*<float*, float*, nint, int, float, float*, float*, void> Kernel(string variant) => variant switch
    {
        "v512" => &LayerNormKernels.LayerNorm_Vector512,
        "v256" => &LayerNormKernels.LayerNorm_Vector256,
        _ => &LayerNormKernels.LayerNorm_Scalar,
    };

    private static float[] Run(string variant, float[] x, int rows, int channels, float eps, float[] gamma, float[] beta, bool inPlace)
    {
        float[] dst = inPlace ? (float[])x.Clone() : new float[x.Length + 1];
        if (!inPlace)
        {
            dst[^1] = 12345f;
        }
        fixed (float* s = x)
        fixed (float* d = dst)
        fixed (float* g = gamma)
        fixed (float* b = beta)
        {
            Kernel(variant)(inPlace ? d : s, d, rows, channels, eps, g, b);
        }
        if (!inPlace)
        {
            Assert.Equal(12345f, dst[^1]);
        }
        return dst[..x.Length];
    }

    private static float[] Naive(float[] x, int rows, int channels, float eps, float[] gamma, float[] beta)
    {
        var y = new float[x.Length];
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            for (int c = 0; c < channels; c++) sum += x[r * channels + c];
            double mean = sum / channels;
            double m2 = 0;
            for (int c = 0; c < channels; c++) m2 += (x[r * channels + c] - mean) * (x[r * channels + c] - mean);
            double rstd = 1 / Math.Sqrt(m2 / channels + eps);
            for (int c = 0; c < channels; c++) y[r * channels + c] = (float)((x[r * channels + c] - mean) * rstd * gamma[c] + beta[c]);
        }
        return y;
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Every_variant_matches_the_naive_double_layernorm(string variant)
    {
        foreach (int channels in NormTestData.Channels.Append(768).Append(1280))
        {
            foreach (int rows in NormTestData.Rows)
            {
                float[] x = NormTestData.Random(rows * channels, channels + rows, 3, 0.2f);
                float[] gamma = NormTestData.Random(channels, 1, 1, 1);
                float[] beta = NormTestData.Random(channels, 2);
                float[] expected = Naive(x, rows, channels, 1e-5f, gamma, beta);
                foreach (bool inPlace in new[] { false, true })
                {
                    float[] actual = Run(variant, x, rows, channels, 1e-5f, gamma, beta, inPlace);
                    NormTestData.AssertClose(expected, actual, 2e-6, $"{variant} rows={rows} C={channels} in place {inPlace}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Large_mean_small_variance_rows_stay_accurate(string variant)
    {
        const int rows = 50, channels = 320;
        float[] x = NormTestData.Random(rows * channels, 8, 0.017f, 1000f);
        float[] gamma = NormTestData.Random(channels, 1, 1, 1);
        float[] beta = NormTestData.Random(channels, 2);
        float[] expected = Naive(x, rows, channels, 1e-6f, gamma, beta);
        NormTestData.AssertClose(expected, Run(variant, x, rows, channels, 1e-6f, gamma, beta, false), 1e-5, variant);
    }

    [Fact]
    public void Dispatch_tiles_large_inputs_like_the_reference()
    {
        const int rows = 4096 / 16 + 3, channels = 320; // 83,840 floats: tiled
        float[] x = NormTestData.Random(rows * channels, 77, 2);
        float[] gamma = NormTestData.Random(channels, 1, 1, 1);
        float[] beta = NormTestData.Random(channels, 2);
        float[] expected = Run("scalar", x, rows, channels, 1e-5f, gamma, beta, false);
        float[] y = (float[])x.Clone();
        LayerNorm.Apply(y, y, channels, 1e-5f, gamma, beta);
        NormTestData.AssertClose(expected, y, 2e-6, "dispatch");
        Assert.Throws<ArgumentException>(() => LayerNorm.Apply(new float[10], new float[10], 3, 1e-5f, new float[3], new float[3]));
        Assert.Throws<ArgumentException>(() => LayerNorm.Apply(new float[9], new float[9], 3, 1e-5f, new float[2], new float[3]));
    }
}
