using System.Runtime.Intrinsics;
using Sd.Kernels.Numerics;

namespace Sd.Kernels.Tests;

/// <summary>
/// The double erf is the oracle for everything GELU, so it is checked against 25-digit values (mpmath at 40 digits);
/// the vector erf is then swept over a dense grid of floats (every 64th bit pattern from 2^-30 to 6, both signs).
/// </summary>
public class VectorErfTests
{
    public static TheoryData<string> Variants()
    {
        // Vector256 arithmetic is always available (software-emulated without AVX), so there is always one width.
        var data = new TheoryData<string> { "v256" };
        if (Vector512.IsHardwareAccelerated) data.Add("v512");
        return data;
    }

    [Theory]
    [InlineData(1e-10, 1.128379167095512573892398e-10)]
    [InlineData(0.001, 0.001128378790969236379948478)]
    [InlineData(0.1, 0.1124629160182848922032751)]
    [InlineData(0.5, 0.5204998778130465376827467)]
    [InlineData(0.8, 0.7421009647076604861671106)]
    [InlineData(1.0, 0.8427007929497148693412206)]
    [InlineData(1.5, 0.9661051464753107270669763)]
    [InlineData(2.0, 0.9953222650189527341620693)]
    [InlineData(2.5, 0.9995930479825550410604358)]
    [InlineData(3.0, 0.9999779095030014145586272)]
    [InlineData(3.5, 0.9999992569016276585872545)]
    [InlineData(3.9, 0.9999999652077514027682577)]
    [InlineData(4.5, 0.9999999998033839558457113)]
    [InlineData(5.5, 0.999999999999992642152082)]
    [InlineData(6.5, 1.0)]
    public void Double_oracle_matches_high_precision_values(double x, double expected)
    {
        Assert.True(Math.Abs(VectorErf.Erf(x) - expected) <= 1e-15 * Math.Max(1e-10, Math.Abs(expected)) + 1e-16,
            $"erf({x}) = {VectorErf.Erf(x):R}, expected {expected:R}");
        Assert.Equal(-VectorErf.Erf(x), VectorErf.Erf(-x));
    }

    [Fact]
    public void Double_oracle_special_values()
    {
        Assert.Equal(0.0, VectorErf.Erf(0.0));
        Assert.True(double.IsNegative(VectorErf.Erf(-0.0)));
        Assert.Equal(1.0, VectorErf.Erf(double.PositiveInfinity));
        Assert.Equal(-1.0, VectorErf.Erf(double.NegativeInfinity));
        Assert.True(double.IsNaN(VectorErf.Erf(double.NaN)));
        // Continuity where the series hands over to the continued fraction.
        Assert.True(Math.Abs(VectorErf.Erf(Math.BitDecrement(2.0)) - VectorErf.Erf(2.0)) < 1e-15);
    }

    private static float VectorErfAt(string variant, float x) => variant == "v512"
        ? VectorErf.Erf(Vector512.Create(x)).GetElement(7)
        : VectorErf.Erf(Vector256.Create(x)).GetElement(3);

    [Theory]
    [MemberData(nameof(Variants))]
    public void Vector_erf_abs_error_is_below_2e_7_over_a_dense_float_sweep(string variant)
    {
        uint first = BitConverter.SingleToUInt32Bits(1e-30f);
        uint last = BitConverter.SingleToUInt32Bits(6f);
        double worst = 0;
        float worstAt = 0;
        var lanes = new float[16];
        for (uint bits = first; bits <= last; bits += 64 * 16)
        {
            for (int k = 0; k < 16; k++)
            {
                lanes[k] = BitConverter.UInt32BitsToSingle(bits + (uint)(k * 64)) * (k % 2 == 0 ? 1 : -1);
            }
            float[] y = ErfLanes(variant, lanes);
            for (int k = 0; k < 16; k++)
            {
                double error = Math.Abs(y[k] - VectorErf.Erf((double)lanes[k]));
                if (error > worst)
                {
                    worst = error;
                    worstAt = lanes[k];
                }
            }
        }
        Assert.True(worst <= 2e-7, $"{variant}: max abs error {worst:E3} at {worstAt:R}");
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Vector_erf_saturates_and_keeps_sign_and_nan(string variant)
    {
        Assert.Equal(1f, VectorErfAt(variant, 1e30f));
        Assert.Equal(-1f, VectorErfAt(variant, -1e30f));
        Assert.Equal(1f, VectorErfAt(variant, float.PositiveInfinity));
        Assert.Equal(-1f, VectorErfAt(variant, float.NegativeInfinity));
        Assert.Equal(0f, VectorErfAt(variant, 0f));
        Assert.True(VectorErfAt(variant, 1e-30f) > 0);
        Assert.True(VectorErfAt(variant, -3.8f) < -0.99999f);
        Assert.True(float.IsNaN(VectorErfAt(variant, float.NaN)));
        for (float x = 0; x < 6; x += 0.001f)
        {
            Assert.True(Math.Abs(VectorErfAt(variant, x)) <= 1f);
        }
    }

    /// <summary>erf of 16 lanes: one 512-bit vector or two 256-bit ones.</summary>
    private static float[] ErfLanes(string variant, float[] lanes)
    {
        var result = new float[16];
        if (variant == "v512")
        {
            VectorErf.Erf(Vector512.Create<float>(lanes)).CopyTo(result);
        }
        else
        {
            VectorErf.Erf(Vector256.Create<float>(lanes)).CopyTo(result);
            VectorErf.Erf(Vector256.Create<float>(lanes.AsSpan(8))).CopyTo(result, 8);
        }
        return result;
    }
}
