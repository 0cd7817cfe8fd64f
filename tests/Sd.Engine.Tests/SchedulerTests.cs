using System.Text.Json;
using Sd.Engine.Schedulers;
using Sd.Loaders.Config;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

public sealed class SchedulerTests
{
    // Every step but LMS's is bit-exact (the noise table is PyTorch's to the bit, and asserted so); LMS integrates
    // its coefficients numerically, as scipy's quad does, to within 1.6e-8.
    private const double Tolerance = 1e-7;
    private readonly ITestOutputHelper _output;

    public SchedulerTests(ITestOutputHelper output) => _output = output;

    [FixtureTheory]
    [InlineData("ddim_6", "ddim")]
    [InlineData("eulerdiscrete_6", "euler")]
    [InlineData("dpmsolvermultistep_6", "dpm++-2m")]
    [InlineData("dpmsolvermultistepkarras_6", "dpm++-2m-karras")]
    [InlineData("eulerancestral_6", "euler-a")]
    [InlineData("lmsdiscrete_6", "lms")]
    [InlineData("pndm_6", "pndm")]
    [InlineData("lcm_4", "lcm")]
    public void MatchesDiffusersPerStep(string caseName, string scheduler)
    {
        string dir = Fixtures.Path($"tiny/ref/txt2img/{caseName}");
        var config = SchedulerConfig.Load(Fixtures.Path("tiny/model/scheduler/scheduler_config.json"));
        using var meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "meta.json")).Replace("-Infinity", "null").Replace("Infinity", "null").Replace("NaN", "null"));
        JsonElement root = meta.RootElement;
        JsonElement sched = root.GetProperty("scheduler");
        int steps = root.GetProperty("steps").GetInt32();

        Scheduler s = Scheduler.Create(scheduler, config);
        s.SetTimesteps(steps);

        float[] expectedT = sched.GetProperty("timesteps").EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();
        Assert.Equal(expectedT, s.Timesteps.ToArray());
        Assert.Equal(expectedT.Length, s.StepCount);
        // The noise table is PyTorch's to the bit (NoiseSchedule emulates its float32 linspace and cumprod), so are
        // the float32 values diffusers derives from it.
        Assert.Equal((float)sched.GetProperty("init_noise_sigma").GetDouble(), s.InitNoiseSigma);
        if (sched.TryGetProperty("sigmas", out JsonElement sigmasJson))
        {
            float[] expectedSigmas = sigmasJson.EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();
            Assert.NotNull(s.Sigmas);
            Assert.Equal(expectedSigmas, s.Sigmas!.ToArray());
        }

        string stepsDir = Path.Combine(dir, "steps");
        float[] tFile = NpyFile.Read(Path.Combine(stepsDir, "t.npy")).ToFloat32();
        NpyArray sampleArr = NpyFile.Read(Path.Combine(stepsDir, "sample.npy"));
        float[] samples = sampleArr.ToFloat32();
        float[] outputs = NpyFile.Read(Path.Combine(stepsDir, "model_output.npy")).ToFloat32();
        float[] prevs = NpyFile.Read(Path.Combine(stepsDir, "prev_sample.npy")).ToFloat32();
        int stepCount = sampleArr.Shape[0];
        Assert.Equal(s.StepCount, stepCount);
        int n = samples.Length / stepCount;
        Func<int, float[]> noise = i => NpyFile.Read(Path.Combine(dir, $"noise_{i:D3}.npy")).ToFloat32();

        double worst = 0;
        int worstStep = -1;
        var x = new float[n];
        for (int step = 0; step < stepCount; step++)
        {
            Assert.Equal(tFile[step], s.Timesteps[step]);
            samples.AsSpan(step * n, n).CopyTo(x);
            s.Step(outputs.AsSpan(step * n, n), step, x, noise);
            double rel = RelL2(x, prevs.AsSpan(step * n, n));
            _output.WriteLine($"{caseName} step {step} t={s.Timesteps[step]} relL2={rel:E3}");
            if (rel > worst)
            {
                worst = rel;
                worstStep = step;
            }
        }
        _output.WriteLine($"{caseName}: worst relL2 {worst:E3} at step {worstStep}");
        Assert.True(worst <= (scheduler == "lms" ? Tolerance : 0), $"{caseName}: worst per-step relative L2 {worst:E3} at step {worstStep}");
    }

    [FixtureFact]
    public void EulerScaleModelInputMatchesUNetSample()
    {
        string dir = Fixtures.Path("tiny/ref/txt2img/eulerdiscrete_6/steps");
        var config = SchedulerConfig.Load(Fixtures.Path("tiny/model/scheduler/scheduler_config.json"));
        Scheduler s = Scheduler.Create("euler", config);
        s.SetTimesteps(6);
        float[] samples = NpyFile.Read(Path.Combine(dir, "sample.npy")).ToFloat32();
        float[] unet = NpyFile.Read(Path.Combine(dir, "unet_sample.npy")).ToFloat32();
        int n = samples.Length / 6;
        var scaled = new float[n];
        for (int step = 0; step < 6; step++)
        {
            s.ScaleModelInput(step, samples.AsSpan(step * n, n), scaled);
            // unet_sample is [S,2,4,h,w]: both halves are the scaled latents.
            Assert.True(RelL2(scaled, unet.AsSpan(step * 2 * n, n)) <= 1e-6);
            float mul = s.ScaleModelInput(step);
            Assert.True(Math.Abs(samples[step * n] * mul - unet[step * 2 * n]) <= 1e-5 * Math.Max(1, Math.Abs(unet[step * 2 * n])));
        }
    }

    private static SchedulerConfig VConfig() => Sd15SchedulerConfig.Value with
    {
        ClipSample = false, // as SD 2.x's scheduler_config.json (DDIM clips x0 by default)
        PredictionType = "v_prediction",
    };

    [Fact]
    public void DdimVPredictionMatchesFormula()
    {
        Scheduler s = Scheduler.Create("ddim", VConfig());
        s.SetTimesteps(4); // leading: 751, 501, 251, 1
        Assert.Equal(new[] { 751f, 501f, 251f, 1f }, s.Timesteps.ToArray());
        float[] x = [0.5f, -1.25f, 2f];
        float[] v = [0.1f, 0.3f, -0.7f];
        double a = s is DdimScheduler ? ((DdimScheduler)s).AlphasCumprod[751] : 0;
        double ap = ((DdimScheduler)s).AlphasCumprod[501];
        var sample = (float[])x.Clone();
        s.Step(v, 0, sample, null);
        for (int i = 0; i < x.Length; i++)
        {
            // diffusers: x0 = sqrt(a) x - sqrt(1-a) v; eps = sqrt(a) v + sqrt(1-a) x; prev = sqrt(ap) x0 + sqrt(1-ap) eps
            double x0 = Math.Sqrt(a) * x[i] - Math.Sqrt(1 - a) * v[i];
            double eps = Math.Sqrt(a) * v[i] + Math.Sqrt(1 - a) * x[i];
            double expected = Math.Sqrt(ap) * x0 + Math.Sqrt(1 - ap) * eps;
            Assert.Equal(expected, sample[i], 5);
        }
        // Hand check of the schedule itself: alphas_cumprod[0] = 1 - 0.00085.
        Assert.Equal(0.99915, ((DdimScheduler)s).AlphasCumprod[0], 6);
    }

    [Fact]
    public void EulerVPredictionMatchesFormula()
    {
        Scheduler s = Scheduler.Create("euler", VConfig());
        s.SetTimesteps(4);
        float sigma = s.Sigmas![1], next = s.Sigmas![2];
        float[] x = [0.5f, -1.25f, 2f];
        float[] v = [0.1f, 0.3f, -0.7f];
        var sample = (float[])x.Clone();
        s.Step(v, 1, sample, null);
        for (int i = 0; i < x.Length; i++)
        {
            // diffusers: x0 = v * (-sigma / sqrt(sigma^2+1)) + x / (sigma^2+1); prev = x + (x - x0)/sigma * (next - sigma)
            double x0 = v[i] * (-sigma / Math.Sqrt(sigma * (double)sigma + 1)) + x[i] / (sigma * (double)sigma + 1);
            double expected = x[i] + (x[i] - x0) / sigma * (next - sigma);
            Assert.Equal(expected, sample[i], 5);
        }
    }

    [Fact]
    public void AddNoiseFormulas()
    {
        var config = VConfig() with { PredictionType = "epsilon" };
        var ddim = (DdimScheduler)Scheduler.Create("ddim", config);
        ddim.SetTimesteps(4);
        float[] x0 = [1f, -2f], n = [0.5f, 0.25f];
        var dst = new float[2];
        ddim.AddNoise(x0, n, 0, dst);
        double a = ddim.AlphasCumprod[751];
        Assert.Equal(Math.Sqrt(a) * 1 + Math.Sqrt(1 - a) * 0.5, dst[0], 5);
        Scheduler euler = Scheduler.Create("euler", config);
        euler.SetTimesteps(4);
        euler.AddNoise(x0, n, 1, dst);
        Assert.Equal(-2 + 0.25 * euler.Sigmas![1], dst[1], 5);
    }

    private static double RelL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = actual[i] - (double)expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num / Math.Max(den, 1e-30));
    }
}
