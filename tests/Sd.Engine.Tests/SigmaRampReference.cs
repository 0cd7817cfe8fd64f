using System.Text.Json;
using Sd.Engine.Schedulers;

namespace Sd.Engine.Tests;

/// <summary>
/// Data/sigma-ramps-reference.json, written by Data/sigma-ramps-reference.py: ComfyUI's KL-optimal and Align Your
/// Steps ramps and A1111's Simple, Normal and SGM Uniform schedule types, run on PyTorch and numpy.
/// </summary>
internal static class SigmaRampReference
{
    private static readonly Lazy<JsonDocument> Reference = new(() =>
        ReferenceData.Json("sigma-ramps-reference.json"));

    public static JsonElement Root => Reference.Value.RootElement;

    public static JsonElement.ArrayEnumerator Cases(string ramp) => Root.GetProperty(ramp).EnumerateArray();

    public static double[] Doubles(JsonElement array)
    {
        var values = new double[array.GetArrayLength()];
        int i = 0;
        foreach (JsonElement v in array.EnumerateArray())
        {
            values[i++] = v.GetDouble();
        }
        return values;
    }

    /// <summary>A case's float32 levels, the final 0 included.</summary>
    public static float[] Levels(JsonElement c) => Array.ConvertAll(Doubles(c.GetProperty("sigmas")), v => (float)v);

    /// <summary>
    /// Equal to within <paramref name="ulps"/> float32 ulps: the KL ramp's tan is libm's tanf (glibc's, bit for bit
    /// with the reference; another C library may round an ulp apart), where a float64 ramp is 13 ulps off at the top.
    /// </summary>
    public static void AssertUlps(float[] expected, float[] actual, int ulps = 1)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            int apart = Math.Abs(BitConverter.SingleToInt32Bits(expected[i]) - BitConverter.SingleToInt32Bits(actual[i]));
            Assert.True(apart <= ulps, $"level {i}: {actual[i]:R}, expected {expected[i]:R} ({apart} ulps apart)");
        }
    }

    /// <summary>
    /// A sigma sampler set to <paramref name="steps"/> runs <paramref name="expected"/> (its ramp's float32 levels and
    /// the final 0, to within <paramref name="ulps"/>), each call at its level's training time, unrounded for Euler's
    /// family and rounded for the multistep solvers: the reference's <paramref name="times"/> where it has them, else
    /// diffusers' _sigma_to_t of the ramp's level.
    /// </summary>
    public static void AssertRunsRamp(Scheduler s, int steps, float[] expected, int ulps, double[]? times = null)
    {
        AssertUlps(expected, s.Sigmas!.ToArray(), ulps);
        float[] train = s.TrainingSigmas(), logSigmas = Array.ConvertAll(train, MathF.Log);
        double[] levels = SigmaRamps.Of(s.Ramp, train[0], train[^1], steps, train);
        bool multistep = s is MultistepSigmaScheduler;
        for (int i = 0; i < steps; i++)
        {
            double time = times?[i] ?? Scheduler.SigmaToT(levels[i], logSigmas);
            Assert.Equal((float)(multistep ? Math.Round(time) : time), s.Timesteps[i]);
        }
    }
}
