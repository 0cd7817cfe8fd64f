using System.Text.Json;
using Sd.Engine.Schedulers;

namespace Sd.Engine.Tests;

/// <summary>
/// scipy's stats.beta.ppf (Data/beta-quantiles.json, written by Data/beta-quantiles.py): the quantiles diffusers'
/// _convert_to_beta and A1111's beta_scheduler take, at points over several shapes and for whole ramps.
/// </summary>
public sealed class BetaQuantiles
{
    private static readonly Lazy<JsonDocument> Reference = new(() =>
        ReferenceData.Json("beta-quantiles.json"));

    /// <summary>scipy's ppf(1 - linspace(0, 1, steps), 0.6, 0.6), for the step counts the file holds.</summary>
    public static double[] Ramp(int steps)
    {
        JsonElement ramp = Reference.Value.RootElement.GetProperty("ramps").GetProperty(steps.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var values = new double[ramp.GetArrayLength()];
        int i = 0;
        foreach (JsonElement v in ramp.EnumerateArray()) values[i++] = v.GetDouble();
        return values;
    }

    /// <summary>
    /// Sd's quantiles (the regularized incomplete beta function, Lanczos's log gamma and bisection) are scipy's (boost's
    /// ibeta_inv) to 1e-13 relative, from p = 1e-12 to 1 - 1e-12, for shapes from 0.2 to 60, some far from symmetric
    /// (Beta(0.2, 8)'s median is near 0.01, so p = 0.75 is still the lower tail there).
    /// </summary>
    [Fact]
    public void Quantiles_are_scipys()
    {
        int points = 0;
        foreach (JsonElement point in Reference.Value.RootElement.GetProperty("points").EnumerateArray())
        {
            double p = point.GetProperty("p").GetDouble(), a = point.GetProperty("a").GetDouble(), b = point.GetProperty("b").GetDouble();
            double expected = point.GetProperty("x").GetDouble(), actual = BetaSigmas.Quantile(p, a, b);
            Assert.True(Math.Abs(actual - expected) <= 1e-13 * expected, $"ppf({p}, {a}, {b}): {actual:R}, scipy {expected:R}");
            points++;
        }
        Assert.Equal(108, points);
        Assert.Equal(0.5, BetaSigmas.Quantile(0.5, 0.6, 0.6), 15);
        Assert.Equal([0.0, 1.0], [BetaSigmas.Quantile(0, 0.6, 0.6), BetaSigmas.Quantile(1, 0.6, 0.6)]);
        foreach ((double p, double a, double b) in (ReadOnlySpan<(double, double, double)>)[(-0.1, 1, 1), (double.NaN, 1, 1), (0.5, 0, 1), (0.5, 1, double.PositiveInfinity)])
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => BetaSigmas.Quantile(p, a, b));
        }
    }

    /// <summary>The ramp: scipy's quantiles between the ends, from sigma_max down to sigma_min.</summary>
    [Fact]
    public void The_beta_ramp_runs_from_sigma_max_to_sigma_min_at_scipys_quantiles()
    {
        foreach (int steps in (int[])[1, 2, 9, 150])
        {
            double[] expected = Array.ConvertAll(Ramp(steps), q => 0.03 + q * (14.6 - 0.03));
            double[] actual = BetaSigmas.Of(0.03, 14.6, steps);
            Assert.Equal(expected.Length, actual.Length);
            for (int i = 0; i < steps; i++)
            {
                Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-13 * expected[i], $"{steps} steps, level {i}: {actual[i]:R}, expected {expected[i]:R}");
            }
            Assert.Equal(14.6, actual[0]);
        }
        Assert.Equal(0.03, BetaSigmas.Of(0.03, 14.6, 9)[^1]);
    }
}
