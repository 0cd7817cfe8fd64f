using System.Runtime.Intrinsics;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Numerics;

namespace Sd.Kernels.Tests;

/// <summary>Shared inputs and oracles for the normalization, activation and resize kernel tests.</summary>
internal static class NormTestData
{
    public static readonly int[] Channels = [1, 3, 4, 5, 15, 16, 17, 31, 33, 80, 257, 320];
    public static readonly int[] Rows = [1, 2, 7, 27 * 19, 64];
    public static readonly Activation[] Activations = [Activation.None, Activation.Silu, Activation.Gelu, Activation.QuickGelu];

    /// <summary>The variants this machine can run, scalar first (the WidenKernelsTests pattern).</summary>
    public static TheoryData<string> Variants()
    {
        var data = new TheoryData<string> { "scalar" };
        if (Vector256.IsHardwareAccelerated) data.Add("v256");
        if (Vector512.IsHardwareAccelerated) data.Add("v512");
        return data;
    }

    public static float[] Random(int count, int seed, float scale = 1, float offset = 0)
    {
        var random = new Random(seed);
        var data = new float[count];
        for (int i = 0; i < count; i++)
        {
            data[i] = offset + scale * (float)(random.NextDouble() * 2 - 1);
        }
        return data;
    }

    /// <summary>The activation in double precision from a float input: the accuracy oracle.</summary>
    public static double Exact(Activation activation, float x) => activation switch
    {
        Activation.Silu => x / (1 + Math.Exp(-(double)x)),
        Activation.Gelu => 0.5 * x * (1 + VectorErf.Erf(x / Math.Sqrt(2))),
        Activation.QuickGelu => x / (1 + Math.Exp(-(double)1.702f * x)),
        _ => x,
    };

    /// <summary>The accuracy contract of every activation path: abs error &lt;= 1e-6 * max(1, |x|).</summary>
    public static void AssertActivation(Activation activation, float x, float actual, string what)
    {
        double expected = Exact(activation, x);
        double error = Math.Abs(actual - expected);
        if (!(error <= 1e-6 * Math.Max(1, Math.Abs(x))))
        {
            Assert.Fail($"{what}: {activation}({x:R}) = {actual:R}, expected {expected:R} (error {error:E2})");
        }
    }

    /// <summary>|actual - expected| &lt;= tolerance * max(1, |expected|) elementwise.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs((double)actual[i] - expected[i]);
            if (!(error <= tolerance * Math.Max(1, Math.Abs(expected[i]))))
            {
                Assert.Fail($"{what}: [{i}] = {actual[i]:R}, expected {expected[i]:R} (error {error:E2})");
            }
        }
    }
}
