using System.Text.Json;
using Sd.Engine.Schedulers;

namespace Sd.Engine.Tests;

/// <summary>
/// What the call-by-call scheduler references (Data/*-reference.json, one case per run: its calls' samples, model
/// outputs and results) are read and checked with, beside each test's own per-call comparison.
/// </summary>
internal static class ReferenceRuns
{
    /// <summary>A case's float array <paramref name="name"/> (JSON null, for NaN, read as NaN).</summary>
    public static float[] Floats(JsonElement element, string name) =>
        element.GetProperty(name).EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Null ? float.NaN : (float)e.GetDouble()).ToArray();

    /// <summary>
    /// A part-way case's add_noise, if it has one: img2img noises the picture's latents at the run's first call,
    /// before any call, to exactly the sample the first call is given.
    /// </summary>
    public static void CheckAddNoise(Scheduler s, JsonElement run, int first, float[] firstSample)
    {
        if (run.TryGetProperty("add_noise", out JsonElement noised))
        {
            float[] output = new float[firstSample.Length];
            s.AddNoise(Floats(noised, "original"), Floats(noised, "noise"), first, output);
            Assert.Equal(Floats(noised, "output"), output);
            Assert.Equal(output, firstSample);
        }
    }

    /// <summary>
    /// The case's calls run again free, each from the scheduler's own last sample, so that state carried between
    /// calls (a kept sample, draw or history) meets the reference's at the end too: within 1e-5 of the largest
    /// magnitude. <paramref name="noise"/> gives call i's noise source.
    /// </summary>
    public static void CheckFreeRun(Scheduler s, JsonElement[] calls, int steps, int first, Func<int, Func<int, float[]>?> noise)
    {
        s.SetTimesteps(steps, first);
        float[] free = Floats(calls[0], "sample");
        for (int i = 0; i < calls.Length; i++)
        {
            s.Step(Floats(calls[i], "model_output"), first + i, free, noise(i));
        }
        float[] final = Floats(calls[^1], "prev_sample");
        float bound = 1e-5f * Math.Max(1f, final.Max(Math.Abs));
        Assert.True(final.Zip(free).All(p => Math.Abs(p.First - p.Second) <= bound), $"the free run ends {final.Zip(free).Max(p => Math.Abs(p.First - p.Second))} from the reference");
    }
}
