using Sd.Engine.Schedulers;
using Sd.Loaders.Config;

namespace Sd.Engine.Tests;

/// <summary>
/// Every scheduler with every timestep_spacing, steps_offset 0 and 1, and Karras, exponential and beta sigmas where diffusers has them,
/// against diffusers' set_timesteps as <see cref="DiffusersSchedules"/> restates it. The fixtures only cover each
/// scheduler's default spacing, so these pin the other layouts exactly (timesteps, sigmas, init_noise_sigma).
/// </summary>
public sealed class SchedulerSpacingTests
{
    private static readonly string[] Names =
        ["ddim", "pndm", "euler", "euler-karras", "euler-exponential", "euler-a", "lms", "lms-karras", "lms-exponential", "dpm++-2m",
         "dpm++-2m-karras", "dpm++-2m-exponential", "dpm++-2m-sde", "dpm++-2m-sde-karras", "dpm++-2m-sde-exponential", "unipc",
         "unipc-karras", "unipc-exponential", "heun", "heun-karras", "heun-exponential", "lcm", "dpm++-3m-sde",
         "dpm++-3m-sde-karras", "dpm++-3m-sde-exponential", "euler-beta", "lms-beta", "dpm++-3m-sde-beta", "dpm++-2m-beta",
         "dpm++-2m-sde-beta", "unipc-beta", "heun-beta", "dpm++-2m-sde-heun", "dpm++-2m-sde-heun-karras"];
    // dpm2, dpm2-a, dpm++-2s-a, dpm++-sde: their midpoints' timesteps, see SecondOrderSchedulerTests and below; restart:
    // k-diffusion's, see SecondOrderSchedulerTests and RestartSchedulerTests; dpm-fast: its own plan, see
    // SecondOrderSchedulerTests and DpmFastSchedulerTests; unipc-a1111: A1111's own grid in continuous time, see
    // A1111UniPcSchedulerTests

    // 48 is a count where np.arange's trailing grid rounds an exact half differently from n - i*n/steps.
    private static readonly int[] StepCounts = [1, 7, 20, 48, 50];

    public static TheoryData<string, string, int, int> Cases()
    {
        var data = new TheoryData<string, string, int, int>();
        foreach (string name in Names)
        {
            foreach (string spacing in new[] { "leading", "linspace", "trailing" })
            {
                foreach (int offset in new[] { 0, 1 })
                {
                    foreach (int steps in StepCounts)
                    {
                        data.Add(name, spacing, offset, steps);
                    }
                }
            }
        }
        return data;
    }

    /// <summary>SD 1.x/2.x scheduler settings with the spacing and offset under test.</summary>
    private static SchedulerConfig Config(string? spacing, int offset, string prediction = "epsilon") =>
        Sd15SchedulerConfig.Value with { StepsOffset = offset, PredictionType = prediction, TimestepSpacing = spacing };

    private static DiffusersSchedules.Schedule Expected(Scheduler s, string name, string spacing, int offset, int steps)
    {
        int n = s.NumTrainTimesteps;
        float[] alphas = s.AlphasCumprod;
        return name switch
        {
            "ddim" => DiffusersSchedules.Ddim(n, steps, spacing, offset),
            "pndm" => DiffusersSchedules.Pndm(n, steps, spacing, offset),
            "euler" or "euler-a" or "lms" or "dpm++-3m-sde" or "euler-karras" or "lms-karras" or "dpm++-3m-sde-karras"
                or "euler-exponential" or "lms-exponential" or "dpm++-3m-sde-exponential" or "euler-beta" or "lms-beta" or "dpm++-3m-sde-beta"
                => DiffusersSchedules.Euler(alphas, steps, spacing, offset, RampOf(name)),
            // UniPC's set_timesteps is a copy of DPM-Solver's.
            "dpm++-2m" or "dpm++-2m-sde" or "unipc" or "dpm++-2m-karras" or "dpm++-2m-sde-karras" or "unipc-karras"
                or "dpm++-2m-exponential" or "dpm++-2m-sde-exponential" or "unipc-exponential" or "dpm++-2m-beta" or "dpm++-2m-sde-beta" or "unipc-beta"
                or "dpm++-2m-sde-heun" or "dpm++-2m-sde-heun-karras"
                => DiffusersSchedules.Dpm(alphas, steps, spacing, offset, RampOf(name)),
            "heun" or "heun-karras" or "heun-exponential" or "heun-beta" => DiffusersSchedules.Heun(alphas, steps, spacing, offset, RampOf(name)),
            "lcm" => DiffusersSchedules.Lcm(n, steps),
            _ => throw new ArgumentException(name),
        };
    }

    private static SigmaRamp RampOf(string name) =>
        name.EndsWith("-karras", StringComparison.Ordinal) ? SigmaRamp.Karras
        : name.EndsWith("-exponential", StringComparison.Ordinal) ? SigmaRamp.Exponential
        : name.EndsWith("-beta", StringComparison.Ordinal) ? SigmaRamp.Beta : SigmaRamp.Spaced;

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesDiffusersSetTimesteps(string name, string spacing, int offset, int steps)
    {
        Scheduler s = Scheduler.Create(name, Config(spacing, offset));
        s.SetTimesteps(steps);
        DiffusersSchedules.Schedule expected = Expected(s, name, spacing, offset, steps);

        Assert.Equal(Array.ConvertAll(expected.Timesteps, t => (float)t), s.Timesteps.ToArray());
        Assert.Equal(expected.Timesteps.Length, s.StepCount);
        if (expected.Sigmas is { } sigmas)
        {
            Assert.Equal(sigmas, s.Sigmas!.ToArray());
        }
        Assert.Equal(expected.InitNoiseSigma, s.InitNoiseSigma);
    }

    /// <summary>k-diffusion's two-call samplers make their first calls on Euler's levels at Euler's timesteps.</summary>
    [Theory]
    [InlineData("dpm++-2s-a", "euler")]
    [InlineData("dpm++-2s-a-karras", "euler-karras")]
    [InlineData("dpm++-sde", "euler")]
    [InlineData("dpm++-sde-karras", "euler-karras")]
    public void KDiffusionTwoCallSamplersRunTheirFirstCallsOnEulersLevels(string name, string euler)
    {
        foreach (string spacing in new[] { "leading", "linspace", "trailing" })
        {
            foreach (int steps in StepCounts)
            {
                Scheduler s = Scheduler.Create(name, Config(spacing, 1)), e = Scheduler.Create(euler, Config(spacing, 1));
                s.SetTimesteps(steps);
                e.SetTimesteps(steps);
                Assert.Equal(2 * steps - 1, s.StepCount);
                Assert.Equal(e.InitNoiseSigma, s.InitNoiseSigma);
                for (int k = 0; k < steps; k++)
                {
                    Assert.Equal(e.Timesteps[k], s.Timesteps[2 * k]);
                    Assert.Equal(e.Sigmas![k], s.Sigmas![2 * k]);
                }
                Assert.Equal(0f, s.Sigmas![^1]);
            }
        }
    }

    [Fact]
    public void SpacingArgumentOverridesTheConfig()
    {
        Scheduler s = Scheduler.Create("ddim", Config("leading", 1), TimestepSpacing.Trailing);
        s.SetTimesteps(4);
        Assert.Equal(TimestepSpacing.Trailing, s.Spacing);
        Assert.Equal(new[] { 999f, 749f, 499f, 249f }, s.Timesteps.ToArray());
    }

    [Fact]
    public void TrailingFollowsNumpyArangeRounding()
    {
        // np.arange(1000, 0, -1000/48)[3] is 937.4999999999999, not 937.5, so it rounds to 937 and the timestep is 936.
        double[] grid = DiffusersSchedules.Arange(1000, 0, -1000.0 / 48);
        Assert.Equal(937, Math.Round(grid[3], MidpointRounding.ToEven));
        Scheduler s = Scheduler.Create("ddim", Config("trailing", 0));
        s.SetTimesteps(48);
        Assert.Equal(936f, s.Timesteps[3]);
    }

    [Theory]
    [InlineData("ddim", 61)]
    [InlineData("euler", 103)]
    [InlineData("dpm++-2m", 121)]
    public void TrailingKeepsStepsTimestepsWhereNumpyAddsAMinusOne(string name, int steps)
    {
        // For these counts np.arange(1000, 0, -1000/steps) has steps + 1 entries, so diffusers appends timestep -1
        // (an index that wraps to the noisiest alpha). Sd keeps the first `steps`, which are diffusers' otherwise.
        Scheduler s = Scheduler.Create(name, Config("trailing", 0));
        s.SetTimesteps(steps);
        DiffusersSchedules.Schedule expected = Expected(s, name, "trailing", 0, steps);
        Assert.Equal(steps + 1, expected.Timesteps.Length);
        Assert.Equal(-1, expected.Timesteps[^1]);
        Assert.Equal(Array.ConvertAll(expected.Timesteps[..steps], t => (float)t), s.Timesteps.ToArray());
    }

    [Fact]
    public void LcmIgnoresSpacingAndOffsetLikeDiffusers()
    {
        foreach (string spacing in new[] { "leading", "linspace", "trailing" })
        {
            foreach (int offset in new[] { 0, 1 })
            {
                Scheduler s = Scheduler.Create("lcm", Config(spacing, offset));
                s.SetTimesteps(4);
                Assert.Equal(new[] { 999f, 759f, 499f, 259f }, s.Timesteps.ToArray());
            }
        }
    }

    [Fact]
    public void RefusesWhatDiffusersRefuses()
    {
        foreach (string name in Names)
        {
            // diffusers raises ValueError for an unknown timestep_spacing or prediction_type.
            Assert.ThrowsAny<ArgumentException>(() => Scheduler.Create(name, Config("uniform", 0)));
            Assert.ThrowsAny<ArgumentException>(() => Scheduler.Create(name, Config(null, 0, "x0")));
            Scheduler s = Scheduler.Create(name, Config(null, 1));
            Assert.ThrowsAny<ArgumentException>(() => s.SetTimesteps(0));
            Assert.ThrowsAny<ArgumentException>(() => s.SetTimesteps(1001));
        }
        // Leading spacing with steps_offset 1 begins 1000 steps at timestep 1000: DDIM and PNDM index
        // alphas_cumprod[1000] (an IndexError in diffusers); Euler and LMS interpolate, which clamps, and run.
        foreach (string name in new[] { "ddim", "pndm" })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Scheduler.Create(name, Config("leading", 1)).SetTimesteps(1000));
            Assert.Equal("steps", e.ParamName);
            Scheduler.Create(name, Config("leading", 1)).SetTimesteps(999);
        }
        foreach (string name in new[] { "euler", "euler-a" })
        {
            Scheduler.Create(name, Config("leading", 1)).SetTimesteps(1000);
        }
        // The clamp repeats the first noise level, and the multistep solvers divide by the gap between levels: diffusers
        // runs on into NaN, Sd refuses the step count. DPM++ spaces steps + 1 points, so 999 repeat too (timesteps 1000
        // and 999 both clamp to the last training sigma); 1000 linspace DPM++ steps round two timesteps to 500.
        foreach ((string name, TimestepSpacing? spacing, int refused, int runs) in new (string, TimestepSpacing?, int, int)[]
            { ("lms", TimestepSpacing.Leading, 1000, 999), ("dpm++-2m", TimestepSpacing.Leading, 999, 998), ("dpm++-2m", null, 1000, 999) })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Scheduler.Create(name, Config(spacing?.ToString().ToLowerInvariant(), 1)).SetTimesteps(refused));
            Assert.Equal("steps", e.ParamName);
            Assert.Contains("needs falling levels", e.Message);
            Scheduler.Create(name, Config(spacing?.ToString().ToLowerInvariant(), 1)).SetTimesteps(runs);
        }
        // PNDM's _get_prev_sample only knows epsilon and v; Euler ancestral raises NotImplementedError for sample.
        Assert.ThrowsAny<ArgumentException>(() => Scheduler.Create("pndm", Config(null, 1, "sample")));
        Assert.ThrowsAny<ArgumentException>(() => Scheduler.Create("euler-a", Config(null, 1, "sample")));
        // LCM picks its steps from a 50-step schedule: "num_inference_steps cannot be larger than original_inference_steps".
        Assert.ThrowsAny<ArgumentException>(() => Scheduler.Create("lcm", Config(null, 1)).SetTimesteps(51));
        Assert.ThrowsAny<ArgumentException>(() => Scheduler.Create("euler-karras-a", Config(null, 1)));
        // What diffusers has but Sd does not implement is NotSupportedException instead.
        Assert.Throws<NotSupportedException>(() => Scheduler.Create("pndm", Config(null, 1) with { SkipPrkSteps = false }));
        Assert.Throws<NotSupportedException>(() => Scheduler.Create("ddim", Config(null, 1) with { Thresholding = true }));
    }

    /// <summary>
    /// diffusers' Euler, Heun and DPM-Solver ramp their Karras sigmas between the config's sigma_min and sigma_max where it
    /// sets them (either alone too); LMS's ramp ignores them.
    /// </summary>
    [Theory]
    [InlineData(0.1, 10.0)]
    [InlineData(null, 20.0)]
    [InlineData(0.05, null)]
    public void KarrasRampsTakeTheConfigsEndsWhereDiffusersDoes(double? sigmaMin, double? sigmaMax)
    {
        SchedulerConfig ends = Config("trailing", 0) with { SigmaMin = sigmaMin, SigmaMax = sigmaMax };
        foreach (string name in new[] { "euler-karras", "dpm++-2m-karras", "lms-karras", "heun-karras" })
        {
            Scheduler s = Scheduler.Create(name, ends), plain = Scheduler.Create(name, Config("trailing", 0));
            s.SetTimesteps(12);
            plain.SetTimesteps(12);
            if (name == "lms-karras")
            {
                Assert.Equal(plain.Sigmas!.ToArray(), s.Sigmas!.ToArray());
                continue;
            }
            DiffusersSchedules.Schedule expected = name switch
            {
                "euler-karras" => DiffusersSchedules.Euler(s.AlphasCumprod, 12, "trailing", 0, SigmaRamp.Karras, sigmaMin, sigmaMax),
                // Heun's _convert_to_karras is a copy of Euler's.
                "heun-karras" => DiffusersSchedules.Heun(s.AlphasCumprod, 12, "trailing", 0, SigmaRamp.Karras, sigmaMin, sigmaMax),
                _ => DiffusersSchedules.Dpm(s.AlphasCumprod, 12, "trailing", 0, SigmaRamp.Karras, sigmaMin, sigmaMax),
            };
            Assert.Equal(expected.Sigmas!, s.Sigmas!.ToArray());
            Assert.Equal(Array.ConvertAll(expected.Timesteps, t => (float)t), s.Timesteps.ToArray());
            Assert.NotEqual(plain.Sigmas!.ToArray(), s.Sigmas!.ToArray());
            if (sigmaMax is { } max)
            {
                Assert.Equal((float)max, s.Sigmas![0]);
            }
        }
    }

    /// <summary>Every beta ramp takes the config's ends as diffusers' copies of _convert_to_beta do, LMS's too.</summary>
    [Theory]
    [InlineData(0.1, 10.0)]
    [InlineData(null, 20.0)]
    public void BetaRampsTakeTheConfigsEnds(double? sigmaMin, double? sigmaMax)
    {
        SchedulerConfig ends = Config("trailing", 0) with { SigmaMin = sigmaMin, SigmaMax = sigmaMax };
        foreach (string name in new[] { "euler-beta", "lms-beta", "heun-beta", "dpm++-2m-beta" })
        {
            Scheduler s = Scheduler.Create(name, ends);
            s.SetTimesteps(9);
            SigmaRamp beta = SigmaRamp.Beta;
            DiffusersSchedules.Schedule expected = name switch
            {
                "heun-beta" => DiffusersSchedules.Heun(s.AlphasCumprod, 9, "trailing", 0, beta, sigmaMin, sigmaMax),
                "dpm++-2m-beta" => DiffusersSchedules.Dpm(s.AlphasCumprod, 9, "trailing", 0, beta, sigmaMin, sigmaMax),
                _ => DiffusersSchedules.Euler(s.AlphasCumprod, 9, "trailing", 0, beta, sigmaMin, sigmaMax),
            };
            Assert.Equal(expected.Sigmas!, s.Sigmas!.ToArray());
            Assert.Equal(Array.ConvertAll(expected.Timesteps, t => (float)t), s.Timesteps.ToArray());
            Assert.Equal((float)sigmaMax!.Value, s.Sigmas![0]);
        }
    }

    [Theory]
    [InlineData("euler-karras", 10.0, 0.1)]
    [InlineData("euler-karras", 0.0, 10.0)]
    [InlineData("dpm++-2m-karras", 0.1, double.PositiveInfinity)]
    [InlineData("dpm++-2m-karras", double.NaN, 10.0)]
    [InlineData("euler-karras", 1e-50, 10.0)]
    [InlineData("dpm++-2m-karras", 0.1, 1e20)]
    public void KarrasEndsOutsideFloat32SamplingAreRefused(string name, double sigmaMin, double sigmaMax)
    {
        // Built in code (a loaded config is checked first, below): refused when the schedule is set, leaving it as it was.
        Scheduler s = Scheduler.Create(name, Config(null, 0) with { SigmaMin = sigmaMin, SigmaMax = sigmaMax });
        var e = Assert.Throws<ArgumentException>(() => s.SetTimesteps(10));
        Assert.Contains("1e9 >= sigma_max >= sigma_min >= 1e-10", e.Message);
        Assert.Equal(0, s.StepCount);
        string json = $$"""{"sigma_min": {{sigmaMin.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}}, "sigma_max": {{sigmaMax.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}}}""";
        if (double.IsFinite(sigmaMin) && double.IsFinite(sigmaMax) && (sigmaMin < 1e-10 || sigmaMax > 1e9))
        {
            var file = Assert.Throws<Sd.Loaders.InvalidFileException>(() => SchedulerConfig.From(JsonConfig.Parse("scheduler_config.json", System.Text.Encoding.UTF8.GetBytes(json))));
            Assert.Contains("must be a noise level in [1e-10, 1e9]", file.Message);
        }
    }

    [Fact]
    public void TheKarrasFlagReadsTheConfigsEndsToo()
    {
        // dpm++-2m with use_karras_sigmas runs the Karras ramp, ends included, as dpm++-2m-karras does.
        SchedulerConfig ends = Config("trailing", 0) with { SigmaMax = 10 };
        Scheduler flagged = Scheduler.Create("dpm++-2m", ends with { UseKarrasSigmas = true }), named = Scheduler.Create("dpm++-2m-karras", ends);
        flagged.SetTimesteps(8);
        named.SetTimesteps(8);
        Assert.Equal(named.Sigmas!.ToArray(), flagged.Sigmas!.ToArray());
        Assert.Equal(10f, flagged.Sigmas![0]);
    }

    [Fact]
    public void ConfigKarrasFlagSelectsKarrasForEulerLmsDpmAndHeun()
    {
        SchedulerConfig karras = Config(null, 1) with { UseKarrasSigmas = true };
        foreach ((string plain, string named) in new[] { ("euler", "euler-karras"), ("lms", "lms-karras"), ("dpm++-2m", "dpm++-2m-karras"), ("heun", "heun-karras") })
        {
            Scheduler a = Scheduler.Create(plain, karras), b = Scheduler.Create(named, Config(null, 1));
            a.SetTimesteps(9);
            b.SetTimesteps(9);
            Assert.Equal(b.Sigmas!.ToArray(), a.Sigmas!.ToArray());
            Assert.Equal(b.Timesteps.ToArray(), a.Timesteps.ToArray());
        }
    }
}
