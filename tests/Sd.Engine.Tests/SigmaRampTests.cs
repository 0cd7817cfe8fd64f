using System.Text.Json;
using Sd.Engine.Schedulers;
using static Sd.Engine.Tests.SigmaRampReference;

namespace Sd.Engine.Tests;

/// <summary>
/// The KL-optimal and Align Your Steps ramps against ComfyUI's schedulers run on PyTorch and numpy
/// (Data/sigma-ramps-reference.json, written by Data/sigma-ramps-reference.py), and as the sigma samplers run them.
/// </summary>
public sealed class SigmaRampTests
{
    /// <summary>The reference's float32 levels of a run of <paramref name="steps"/>, the final 0 included.</summary>
    private static float[] ComfyLevels(string ramp, int steps, double sigmaMin = 0)
    {
        foreach (JsonElement c in Cases(ramp))
        {
            if (c.GetProperty("steps").GetInt32() == steps && (ramp != "kl_optimal" || c.GetProperty("sigma_min").GetDouble() == sigmaMin))
            {
                return Levels(c);
            }
        }
        throw new ArgumentException($"no {ramp} case of {steps} steps");
    }

    /// <summary>
    /// ComfyUI's float32 arithmetic (to an ulp; to the bit with glibc), over SD's range and two others, 1 to 150
    /// steps: the rounding of the arctan blend is what moves the top levels (its first level lies 13 ulps below SD's
    /// sigma_max, 49 below a sigma_max of 80), where a float64 ramp would start at sigma_max.
    /// </summary>
    [Fact]
    public void Kl_optimal_levels_are_ComfyUIs()
    {
        int cases = 0;
        foreach (JsonElement c in Cases("kl_optimal"))
        {
            double min = c.GetProperty("sigma_min").GetDouble(), max = c.GetProperty("sigma_max").GetDouble();
            int steps = c.GetProperty("steps").GetInt32();
            float[] expected = Levels(c);
            float[] actual = Array.ConvertAll(SigmaRamps.Of(SigmaRamp.KlOptimal, min, max, steps), v => (float)v);
            AssertUlps(expected[..^1], actual);
            cases++;
        }
        Assert.Equal(30, cases);
    }

    /// <summary>
    /// numpy's float64 log-linear interpolation to 1e-15 (NVIDIA's own levels at ten steps), and the float32
    /// levels ComfyUI samples with to the bit, from 1 to 100 steps.
    /// </summary>
    [Fact]
    public void Align_your_steps_levels_are_ComfyUIs()
    {
        int cases = 0;
        foreach (JsonElement c in Cases("align_your_steps"))
        {
            int steps = c.GetProperty("steps").GetInt32();
            double[] expected = Doubles(c.GetProperty("float64")), actual = SigmaRamps.Of(SigmaRamp.AlignYourSteps, 0.5, 2, steps);
            Assert.Equal(steps, actual.Length);
            for (int i = 0; i < steps; i++)
            {
                Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-15 * expected[i], $"{steps} steps, level {i}: {actual[i]:R}, numpy {expected[i]:R}");
            }
            Assert.Equal(Levels(c)[..^1], Array.ConvertAll(actual, v => (float)v));
            cases++;
        }
        Assert.Equal(12, cases);
        Assert.Equal([14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662],
            SigmaRamps.Of(SigmaRamp.AlignYourSteps, 0.5, 2, 10));
    }

    /// <summary>
    /// The samplers run the ramps' float32 levels and a final 0: Euler's family with linspace spacing spans SD's whole
    /// (diffusers) range as ComfyUI spans its own, DPM-Solver and UniPC span it whatever the spacing; each call's
    /// timestep is its level's training time, unrounded for Euler's family and rounded for the multistep solvers (the
    /// top level of either ramp lies a hair below SD's sigma_max: 999, where truncation would give 998).
    /// </summary>
    [Theory]
    [InlineData("euler-kl-optimal", "linspace", 20)]
    [InlineData("lms-kl-optimal", "linspace", 7)]
    [InlineData("dpm++-2m-kl-optimal", "leading", 20)]
    [InlineData("unipc-kl-optimal", "trailing", 3)]
    [InlineData("euler-ays", "leading", 10)]
    [InlineData("dpm++-2m-ays", "leading", 10)]
    [InlineData("dpm++-2m-sde-ays", "trailing", 20)]
    [InlineData("dpm++-3m-sde-ays", "linspace", 30)]
    public void Samplers_run_ComfyUIs_levels(string name, string spacing, int steps)
    {
        Scheduler s = Scheduler.Create(name, Sd15SchedulerConfig.Value with { TimestepSpacing = spacing });
        s.SetTimesteps(steps);
        float[] train = s.TrainingSigmas();
        float[] expected = name.Contains("-ays", StringComparison.Ordinal)
            ? ComfyLevels("align_your_steps", steps)
            : ComfyLevels("kl_optimal", steps, train[0]);
        AssertRunsRamp(s, steps, expected, 1);
        if (s is MultistepSigmaScheduler)
        {
            Assert.Equal(999f, s.Timesteps[0]);
            Assert.True(Scheduler.SigmaToT(SigmaRamps.Of(SigmaRamp.AlignYourSteps, 0, 0, 1)[0], Array.ConvertAll(train, MathF.Log)) < 999);
        }
    }

    /// <summary>
    /// The KL-optimal ramp takes a config's sigma_min/sigma_max as every other ramp does; Align Your Steps' levels are
    /// NVIDIA's and take none.
    /// </summary>
    [Fact]
    public void Kl_optimal_takes_the_configs_ends_and_align_your_steps_none()
    {
        var ends = Sd15SchedulerConfig.Value with { TimestepSpacing = "linspace", SigmaMin = 0.1, SigmaMax = 10 };
        foreach (string name in (string[])["euler-kl-optimal", "dpm++-2m-kl-optimal"])
        {
            Scheduler s = Scheduler.Create(name, ends);
            s.SetTimesteps(10);
            AssertUlps(ComfyLevels("kl_optimal", 10, 0.1), s.Sigmas!.ToArray());
        }
        foreach (string name in (string[])["euler-ays", "dpm++-2m-ays"])
        {
            // The name's ramp wins over the config's flag, as a suffix does over use_karras_sigmas.
            Scheduler s = Scheduler.Create(name, ends with { UseKarrasSigmas = true });
            s.SetTimesteps(12);
            AssertUlps(ComfyLevels("align_your_steps", 12), s.Sigmas!.ToArray(), 0);
        }
    }

    /// <summary>
    /// With SD 1.5's leading spacing (20 steps: timesteps 951 down to 1), Euler's family spans the spaced sigmas' ends,
    /// as its Karras, exponential and beta ramps do; a part-way start (img2img) runs the same levels from there.
    /// </summary>
    [Fact]
    public void Eulers_kl_ramp_spans_the_spaced_ends_and_a_part_way_start_keeps_the_levels()
    {
        Scheduler euler = Scheduler.Create("euler-kl-optimal", Sd15SchedulerConfig.Value with { TimestepSpacing = "leading" });
        euler.SetTimesteps(20);
        float[] train = euler.TrainingSigmas();
        double[] levels = SigmaRamps.Of(SigmaRamp.KlOptimal, train[1], train[951], 20);
        Assert.Equal([.. Array.ConvertAll(levels, v => (float)v), 0f], euler.Sigmas!.ToArray());
        foreach (string name in (string[])["euler-kl-optimal", "dpm++-2m-ays", "heun-ays"])
        {
            Scheduler whole = Scheduler.Create(name, Sd15SchedulerConfig.Value), part = Scheduler.Create(name, Sd15SchedulerConfig.Value);
            whole.SetTimesteps(10);
            part.SetTimesteps(10, 4 * part.Order);
            Assert.Equal(whole.Sigmas!.ToArray(), part.Sigmas!.ToArray());
            Assert.Equal(whole.Timesteps.ToArray(), part.Timesteps.ToArray());
        }
    }

    /// <summary>The suffixes in any case, on every sigma sampler, whose levels then end at 0; not on the samplers without ramps.</summary>
    [Fact]
    public void The_ramps_are_named_by_suffix()
    {
        foreach (string sampler in (string[])["euler", "euler-a", "heun", "lms", "dpm2", "dpm2-a", "dpm++-2m", "dpm++-2m-sde", "dpm++-2m-sde-heun", "dpm++-sde", "dpm++-2s-a", "dpm++-3m-sde", "unipc", "restart"])
        {
            foreach (string suffix in (string[])["-kl-optimal", "-ays", "-simple", "-normal", "-sgm-uniform"])
            {
                Scheduler s = Scheduler.Create(sampler + suffix, Sd15SchedulerConfig.Value);
                foreach (int steps in (int[])[1, 2, 10, 25])
                {
                    s.SetTimesteps(steps);
                    IReadOnlyList<float> sigmas = s.Sigmas!;
                    Assert.Equal(0f, sigmas[^1]);
                    // A two-call sampler's list holds its second calls' levels too (an ancestral one's below the next step's).
                    for (int i = 1; i < sigmas.Count && s.Order == 1; i++)
                    {
                        Assert.True(sigmas[i] <= sigmas[i - 1], $"{sampler}{suffix}, {steps} steps: level {i} rises");
                    }
                }
            }
        }
        Assert.Equal(SigmaRamp.KlOptimal, Scheduler.Create("DPM++-2M-KL-Optimal", Sd15SchedulerConfig.Value).Ramp);
        Assert.Equal(SigmaRamp.AlignYourSteps, Scheduler.Create("Heun-AYS", Sd15SchedulerConfig.Value).Ramp);
        Assert.Equal("dpm++-2m-sde", Scheduler.SolverOf("dpm++-2m-sde-kl-optimal"));
        Assert.Equal(SigmaRamp.SgmUniform, Scheduler.Create("DPM++-2M-SGM-Uniform", Sd15SchedulerConfig.Value).Ramp);
        Assert.Equal("euler", Scheduler.SolverOf("EULER-AYS"));
        Assert.Equal("dpm++-2s-a", Scheduler.SolverOf("dpm++-2s-a-simple"));
        foreach (string name in (string[])["ddim-ays", "lcm-kl-optimal", "lcm-ays", "pndm-kl-optimal", "ddim-simple", "pndm-normal", "lcm-sgm-uniform"])
        {
            var e = Assert.Throws<ArgumentException>(() => Scheduler.Create(name, Sd15SchedulerConfig.Value));
            Assert.Contains("-kl-optimal, -ays, -simple, -normal or -sgm-uniform", e.Message);
        }
    }

    /// <summary>
    /// Euler a runs every ramp at Euler's levels and timesteps (A1111's Euler a with any schedule type), its step
    /// k-diffusion's sample_euler_ancestral on them: to sigma_down along the derivative, then sigma_up of fresh noise.
    /// </summary>
    [Fact]
    public void Euler_a_runs_every_ramp_at_eulers_levels()
    {
        foreach (string suffix in (string[])["-karras", "-exponential", "-beta", "-kl-optimal", "-ays", "-simple", "-normal", "-sgm-uniform"])
        {
            Scheduler ancestral = Scheduler.Create("euler-a" + suffix, Sd15SchedulerConfig.Value), euler = Scheduler.Create("euler" + suffix, Sd15SchedulerConfig.Value);
            ancestral.SetTimesteps(8);
            euler.SetTimesteps(8);
            Assert.Equal(euler.Ramp, ancestral.Ramp);
            Assert.Equal(euler.Sigmas!.ToArray(), ancestral.Sigmas!.ToArray());
            Assert.Equal(euler.Timesteps.ToArray(), ancestral.Timesteps.ToArray());
        }
        Scheduler s = Scheduler.Create("euler-a-karras", Sd15SchedulerConfig.Value);
        s.SetTimesteps(8);
        float[] sample = [1.5f, -0.25f, 0.75f], eps = [0.5f, 1f, -2f], noise = [0.3f, -1.2f, 0.05f];
        double from = s.Sigmas![3], to = s.Sigmas[4];
        double up = Math.Sqrt(to * to * (from * from - to * to) / (from * from)), down = Math.Sqrt(to * to - up * up);
        var expected = new float[3];
        for (int i = 0; i < 3; i++)
        {
            expected[i] = (float)(sample[i] + eps[i] * (down - from) + noise[i] * up);
        }
        s.Step(eps, 3, sample, _ => noise);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(expected[i], sample[i], 1e-5f);
        }
    }

    [Fact]
    public void A_ramp_needs_a_step_and_the_spaced_levels_are_no_ramp()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SigmaRamps.Of(SigmaRamp.KlOptimal, 0.1, 10, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => SigmaRamps.Of(SigmaRamp.Spaced, 0.1, 10, 5));
        double[] one = SigmaRamps.Of(SigmaRamp.KlOptimal, 0.1, 10, 1);
        Assert.Equal(10.0, Assert.Single(one), 1e-5);
    }
}
