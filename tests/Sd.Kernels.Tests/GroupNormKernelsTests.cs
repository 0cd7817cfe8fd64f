using Sd.Kernels.Elementwise;
using Sd.Kernels.Normalization;

namespace Sd.Kernels.Tests;

/// <summary>
/// The scalar GroupNorm against a naive double-precision GroupNorm (rel err &lt;= 1e-5), including data with a large
/// mean and a tiny variance; then every variant against the scalar reference over awkward shapes (C/G not a multiple
/// of the vector width, 1-row images, threaded and serial sizes), in place and out of place. All variants round the
/// same way, so before the activation they agree bit for bit; the fused activation is checked against the exact
/// function of that pre-activation value.
/// </summary>
public unsafe class GroupNormKernelsTests
{
    public static TheoryData<string> Variants() => NormTestData.Variants();

    private static delegate*<float*, float*, int, int, int, int, float, float*, float*, Activation, void> Kernel(string variant) =>
        variant switch
        {
            "v512" => &GroupNormKernels.GroupNorm_Vector512,
            "v256" => &GroupNormKernels.GroupNorm_Vector256,
            _ => &GroupNormKernels.GroupNorm_Scalar,
        };

    private static float[] Run(string variant, float[] x, int n, int hw, int channels, int groups, float eps,
        float[] gamma, float[] beta, Activation activation, bool inPlace)
    {
        float[] dst = inPlace ? (float[])x.Clone() : new float[x.Length];
        fixed (float* s = x)
        fixed (float* d = dst)
        fixed (float* g = gamma)
        fixed (float* b = beta)
        {
            Kernel(variant)(inPlace ? d : s, d, n, hw, channels, groups, eps, g, b, activation);
        }
        return dst;
    }

    /// <summary>Textbook GroupNorm in double: two-pass mean and biased variance per (image, group).</summary>
    private static double[] Naive(float[] x, int n, int hw, int channels, int groups, float eps, float[] gamma, float[] beta)
    {
        var y = new double[x.Length];
        int size = channels / groups;
        for (int b = 0; b < n; b++)
        {
            for (int g = 0; g < groups; g++)
            {
                double sum = 0;
                for (int p = 0; p < hw; p++)
                {
                    for (int c = g * size; c < (g + 1) * size; c++)
                    {
                        sum += x[((long)b * hw + p) * channels + c];
                    }
                }
                double mean = sum / ((double)hw * size);
                double m2 = 0;
                for (int p = 0; p < hw; p++)
                {
                    for (int c = g * size; c < (g + 1) * size; c++)
                    {
                        double d = x[((long)b * hw + p) * channels + c] - mean;
                        m2 += d * d;
                    }
                }
                double rstd = 1 / Math.Sqrt(m2 / ((double)hw * size) + eps);
                for (int p = 0; p < hw; p++)
                {
                    for (int c = g * size; c < (g + 1) * size; c++)
                    {
                        long i = ((long)b * hw + p) * channels + c;
                        y[i] = (x[i] - mean) * rstd * gamma[c] + beta[c];
                    }
                }
            }
        }
        return y;
    }

    private static void AssertRelative(double[] expected, float[] actual, double tolerance, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]) / Math.Max(1, Math.Abs(expected[i]));
            if (!(error <= tolerance))
            {
                Assert.Fail($"{what}: [{i}] = {actual[i]:R}, expected {expected[i]:R} (rel error {error:E2})");
            }
        }
    }

    /// <summary>Group counts for C: one group, one channel per group, SD's 32 when it divides, and an odd divisor.</summary>
    private static IEnumerable<int> GroupsFor(int channels)
    {
        var groups = new SortedSet<int> { 1, channels };
        if (channels % 32 == 0) groups.Add(32);
        for (int g = 3; g < channels; g += 2)
        {
            if (channels % g == 0)
            {
                groups.Add(g);
                break;
            }
        }
        return groups;
    }

    [Fact]
    public void Scalar_reference_matches_naive_double_groupnorm()
    {
        foreach (int channels in NormTestData.Channels)
        {
            foreach (int hw in NormTestData.Rows)
            {
                foreach (int groups in GroupsFor(channels))
                {
                    const int n = 2;
                    float[] x = NormTestData.Random(n * hw * channels, channels * 7 + hw, 3, 0.5f);
                    float[] gamma = NormTestData.Random(channels, 1, 1, 1);
                    float[] beta = NormTestData.Random(channels, 2);
                    const float eps = 1e-5f;
                    float[] actual = Run("scalar", x, n, hw, channels, groups, eps, gamma, beta, Activation.None, inPlace: false);
                    double[] expected = Naive(x, n, hw, channels, groups, eps, gamma, beta);
                    AssertRelative(expected, actual, 1e-5, $"C={channels} HW={hw} G={groups}");
                }
            }
        }
    }

    [Theory]
    [InlineData(1000f, 0.01f, 320, 32, 64 * 64)]
    [InlineData(1000f, 0.01f, 128, 32, 27 * 19)]
    [InlineData(-5000f, 0.1f, 80, 16, 3000)]
    [InlineData(100f, 1e-3f, 17, 17, 700)]
    public void Large_mean_small_variance_stays_accurate(float mean, float std, int channels, int groups, int hw)
    {
        // Each channel also gets its own offset of a few std, so groups combine channels with different means.
        float[] x = NormTestData.Random(hw * channels, 5, std * 1.7f);
        for (int i = 0; i < x.Length; i++)
        {
            x[i] += mean + 3 * std * (i % channels % 5);
        }
        float[] gamma = NormTestData.Random(channels, 3, 0.5f, 1);
        float[] beta = NormTestData.Random(channels, 4);
        double[] expected = Naive(x, 1, hw, channels, groups, 1e-6f, gamma, beta);
        foreach (string variant in Variants())
        {
            float[] actual = Run(variant, x, 1, hw, channels, groups, 1e-6f, gamma, beta, Activation.None, inPlace: false);
            AssertRelative(expected, actual, 1e-5, $"{variant} mean {mean} std {std}");
        }
    }

    [Fact]
    public void Constant_groups_normalize_to_beta()
    {
        const int hw = 7 * 7, channels = 64, groups = 32;
        var x = new float[hw * channels];
        Array.Fill(x, 3.7f);
        float[] gamma = NormTestData.Random(channels, 1, 1, 1);
        float[] beta = NormTestData.Random(channels, 2);
        float[] y = Run("scalar", x, 1, hw, channels, groups, 1e-5f, gamma, beta, Activation.None, inPlace: false);
        for (int i = 0; i < y.Length; i++)
        {
            Assert.True(Math.Abs(y[i] - beta[i % channels]) < 1e-5);
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Every_variant_matches_the_scalar_reference_on_awkward_shapes(string variant)
    {
        foreach (int channels in NormTestData.Channels)
        {
            foreach (int hw in NormTestData.Rows)
            {
                foreach (int n in new[] { 1, 2 })
                {
                    foreach (int groups in GroupsFor(channels))
                    {
                        float[] x = NormTestData.Random(n * hw * channels, channels + 13 * hw + n, 2, -0.3f);
                        float[] gamma = NormTestData.Random(channels, channels, 1, 1);
                        float[] beta = NormTestData.Random(channels, channels + 1);
                        float eps = groups % 2 == 0 ? 1e-6f : 1e-5f;
                        string what = $"{variant} N={n} HW={hw} C={channels} G={groups}";
                        float[] reference = Run("scalar", x, n, hw, channels, groups, eps, gamma, beta, Activation.None, false);
                        foreach (bool inPlace in new[] { false, true })
                        {
                            float[] plain = Run(variant, x, n, hw, channels, groups, eps, gamma, beta, Activation.None, inPlace);
                            Assert.True(reference.AsSpan().SequenceEqual(plain), $"{what} in place {inPlace}: differs from scalar");
                        }
                        foreach (Activation activation in new[] { Activation.Silu, Activation.Gelu })
                        {
                            bool inPlace = activation == Activation.Gelu;
                            float[] fused = Run(variant, x, n, hw, channels, groups, eps, gamma, beta, activation, inPlace);
                            for (int i = 0; i < fused.Length; i++)
                            {
                                NormTestData.AssertActivation(activation, reference[i], fused[i], what);
                            }
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void Dispatch_handles_sd_shapes_with_fused_silu()
    {
        // A VAE-like image above the threading threshold, through the span entry point, in place.
        const int n = 1, hw = 96 * 80, channels = 128, groups = 32;
        float[] x = NormTestData.Random(n * hw * channels, 99, 4, 1);
        float[] gamma = NormTestData.Random(channels, 1, 1, 1);
        float[] beta = NormTestData.Random(channels, 2);
        float[] reference = Run("scalar", x, n, hw, channels, groups, 1e-6f, gamma, beta, Activation.None, false);
        float[] y = (float[])x.Clone();
        GroupNorm.Apply(y, y, n, hw, channels, groups, 1e-6f, gamma, beta, Activation.Silu);
        for (int i = 0; i < y.Length; i++)
        {
            NormTestData.AssertActivation(Activation.Silu, reference[i], y[i], "dispatch");
        }
    }

    [Fact]
    public void Bad_shapes_are_rejected()
    {
        float[] one = new float[64];
        Assert.Throws<ArgumentException>(() => GroupNorm.Apply(one, one, 1, 2, 32, 5, 1e-5f, new float[32], new float[32]));
        Assert.Throws<ArgumentException>(() => GroupNorm.Apply(one, one, 1, 3, 32, 32, 1e-5f, new float[32], new float[32]));
        Assert.Throws<ArgumentException>(() => GroupNorm.Apply(one, one, 1, 2, 32, 32, 1e-5f, new float[31], new float[32]));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            GroupNorm.Apply(one, one, 1, 2, 32, 32, float.NaN, new float[32], new float[32]));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            GroupNorm.Apply(new float[8192], new float[8192], 1, 1, 8192, 32, 1e-5f, new float[8192], new float[8192]));
        GroupNorm.Apply(ReadOnlySpan<float>.Empty, Span<float>.Empty, 0, 5, 32, 32, 1e-5f, new float[32], new float[32]);
    }
}
