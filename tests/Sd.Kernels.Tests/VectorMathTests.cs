using System.Runtime.Intrinsics;
using Sd.Kernels.Numerics;

namespace Sd.Kernels.Tests;

public class VectorMathTests
{
    private static IEnumerable<float> Inputs()
    {
        var random = new Random(7);
        for (int i = 0; i < 200_000; i++)
        {
            yield return (float)(random.NextDouble() * 200 - 100);
        }
        for (float x = -10; x <= 10; x += 0.001f)
        {
            yield return x;
        }
        yield return 0f;
        yield return -0f;
        yield return 88.7f;
        yield return -87.5f;
        yield return -1000f;
        yield return 1000f;
        yield return float.NegativeInfinity;
        yield return float.PositiveInfinity;
    }

    private static void Check(float x, float actual)
    {
        double expected = Math.Exp(x);
        if (expected > float.MaxValue)
        {
            Assert.Equal(float.PositiveInfinity, actual);
        }
        else if (expected < 1.1754943508222875e-38)
        {
            Assert.True(actual < 1.2e-38f && actual >= 0, $"exp({x}) = {actual}");
        }
        else
        {
            double relative = Math.Abs(actual - expected) / expected;
            Assert.True(relative < 2e-7, $"exp({x}) = {actual}, expected {expected}, rel {relative}");
        }
    }

    [Fact]
    public void Exp512_is_accurate_to_two_ulp_over_the_float_range()
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            return; // covered by the Vector256 test; CI runs both configurations
        }
        foreach (float x in Inputs())
        {
            Check(x, VectorMath.Exp(Vector512.Create(x)).GetElement(5));
        }
    }

    [Fact]
    public void Exp256_is_accurate_to_two_ulp_over_the_float_range()
    {
        foreach (float x in Inputs())
        {
            Check(x, VectorMath.Exp(Vector256.Create(x)).GetElement(3));
        }
    }

    [Fact]
    public void Exp_of_nan_is_nan_at_both_widths()
    {
        Assert.True(float.IsNaN(VectorMath.Exp(Vector256.Create(float.NaN)).GetElement(3)));
        if (Vector512.IsHardwareAccelerated)
        {
            Assert.True(float.IsNaN(VectorMath.Exp(Vector512.Create(float.NaN)).GetElement(5)));
        }
    }
}
