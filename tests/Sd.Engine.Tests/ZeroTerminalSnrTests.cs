using System.Text;
using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Loaders;
using Sd.Loaders.Config;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// rescale_betas_zero_snr (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed"): the
/// training schedule stretched so its last step is pure noise, as diffusers 0.27 builds it, and what each scheduler
/// class does with that end. Checked against the paper's algorithm restated in float64, no diffusers fixture.
/// </summary>
public sealed class ZeroTerminalSnrTests(ITestOutputHelper output)
{
    private static SchedulerConfig Sd15(string prediction = "epsilon", string spacing = "trailing") => Sd15SchedulerConfig.Value with
    {
        StepsOffset = 0,
        SetAlphaToOne = null, // DDIM's default, true
        PredictionType = prediction,
        TimestepSpacing = spacing,
        RescaleBetasZeroSnr = true,
    };

    /// <summary>Algorithm 1 in float64: sqrt(alphas_cumprod) shifted to end at 0 and scaled to start where it did.</summary>
    private static double[] Rescaled(float[] alphasCumprod)
    {
        double first = Math.Sqrt(alphasCumprod[0]), last = Math.Sqrt(alphasCumprod[^1]);
        return Array.ConvertAll(alphasCumprod, a =>
        {
            double root = (Math.Sqrt(a) - last) * first / (first - last);
            return root * root;
        });
    }

    [Fact]
    public void The_rescaled_schedule_follows_the_papers_algorithm_and_ends_at_zero()
    {
        float[] original = NoiseSchedule.AlphasCumprod(Sd15(), rescaleZeroTerminalSnr: false);
        float[] rescaled = NoiseSchedule.AlphasCumprod(Sd15(), rescaleZeroTerminalSnr: true);
        double[] expected = Rescaled(original);
        double worst = 0;
        for (int i = 0; i < rescaled.Length; i++) worst = Math.Max(worst, Math.Abs(rescaled[i] - expected[i]));
        output.WriteLine($"zero-terminal-SNR alphas_cumprod against float64: max abs {worst:E2}");
        Assert.True(worst < 5e-7, $"largest difference {worst}");
        Assert.Equal(0f, rescaled[^1]);
        Assert.Equal(original[0], rescaled[0], 1e-7f);
        Assert.True(rescaled[^2] > 0f && rescaled[^2] < 1e-4f, $"the step before the end: {rescaled[^2]}");
    }

    /// <summary>
    /// The table as diffusers 0.27.2's rescale_zero_terminal_snr and torch.cumprod compute it on PyTorch 1.13 (Debian's
    /// python3-torch 1.13.1, AVX2 kernels), sampled at seven steps as float32 bit patterns: the float32 steps are
    /// PyTorch's to the bit, for SD's scaled_linear schedule and the linear one.
    /// </summary>
    [Theory]
    [InlineData("scaled_linear", 0.00085, 0.012, new[] { 1065338955, 1065323579, 1059522407, 1047973268, 994181909, 877874419, 0 })]
    [InlineData("linear", 0.0001, 0.02, new[] { 1065351538, 1065349514, 1057281036, 1033509554, 953685602, 831570903, 0 })]
    public void The_rescaled_schedule_is_pytorchs_bit_for_bit(string schedule, double betaStart, double betaEnd, int[] bits)
    {
        int[] steps = [0, 1, 250, 500, 900, 998, 999];
        float[] table = NoiseSchedule.AlphasCumprod(new SchedulerConfig { BetaSchedule = schedule, BetaStart = betaStart, BetaEnd = betaEnd }, rescaleZeroTerminalSnr: true);
        for (int i = 0; i < steps.Length; i++)
        {
            Assert.Equal(BitConverter.Int32BitsToSingle(bits[i]), table[steps[i]]);
        }
    }

    /// <summary>
    /// DDIM and LCM keep the end at 0; Euler, Euler ancestral and DPM-Solver raise it to 2^-24 (noise level 4096) as
    /// diffusers does, and so do k-diffusion's samplers, which run on Euler's levels; PNDM, LMS, Heun and DPM2 have no
    /// such setting in diffusers, which ignores the key, and so does Sd.
    /// </summary>
    [Theory]
    [InlineData("ddim", 0f)]
    [InlineData("lcm", 0f)]
    [InlineData("euler", 1f / (1 << 24))]
    [InlineData("euler-a", 1f / (1 << 24))]
    [InlineData("dpm++-2m", 1f / (1 << 24))]
    [InlineData("dpm++-2s-a", 1f / (1 << 24))]
    [InlineData("dpm++-sde", 1f / (1 << 24))]
    [InlineData("dpm++-3m-sde", 1f / (1 << 24))]
    [InlineData("pndm", float.NaN)]
    [InlineData("lms", float.NaN)]
    [InlineData("heun", float.NaN)]
    [InlineData("dpm2-a", float.NaN)]
    public void Each_scheduler_ends_the_schedule_as_its_diffusers_class_does(string name, float end)
    {
        Scheduler scheduler = Scheduler.Create(name, Sd15("v_prediction"));
        float[] rescaled = NoiseSchedule.AlphasCumprod(Sd15(), rescaleZeroTerminalSnr: true);
        if (float.IsNaN(end))
        {
            Assert.Equal(NoiseSchedule.AlphasCumprod(Sd15(), rescaleZeroTerminalSnr: false), scheduler.AlphasCumprod);
            return;
        }
        Assert.Equal(rescaled[..^1], scheduler.AlphasCumprod[..^1]);
        Assert.Equal(end, scheduler.AlphasCumprod[^1]);
        scheduler.SetTimesteps(10);
        Assert.Equal(999f, scheduler.Timesteps[0]);
        if (scheduler.Sigmas is { } sigmas)
        {
            // sqrt((1 - 2^-24) / 2^-24) in float32, as diffusers' sigma table holds it.
            Assert.Equal(MathF.Sqrt((1f - end) / end), sigmas[0]);
            Assert.Equal(4096f, sigmas[0], 1e-3f);
        }
    }

    /// <summary>At the pure-noise step DDIM's v-prediction gives x0 = -v and eps = x (sqrt(a) = 0, sqrt(1 - a) = 1).</summary>
    [Fact]
    public void Ddim_steps_from_pure_noise_with_a_v_prediction()
    {
        Scheduler ddim = Scheduler.Create("ddim", Sd15("v_prediction") with { ClipSample = false });
        ddim.SetTimesteps(4);
        Assert.Equal([999f, 749f, 499f, 249f], ddim.Timesteps);
        float[] sample = [0.9f, -3f, 0.2f, 5f], v = [0.1f, 0.5f, -0.7f, -1.2f];
        double aPrev = ddim.AlphasCumprod[749];
        var expected = new double[sample.Length];
        for (int i = 0; i < sample.Length; i++)
        {
            expected[i] = Math.Sqrt(aPrev) * -v[i] + Math.Sqrt(1 - aPrev) * sample[i];
        }
        ddim.Step(v, 0, sample, null);
        output.WriteLine(Compare.AssertClose(Array.ConvertAll(expected, v => (float)v), sample, 1e-6, "DDIM step at zero SNR"));
    }

    /// <summary>
    /// An epsilon model's x0 divides by sqrt(alphas_cumprod), which is 0 at the last training step for DDIM and LCM.
    /// Unclipped, a schedule that reaches it is refused naming why (diffusers returns NaN latents), and a refused
    /// schedule leaves the previous one in place; one that starts later, or a spacing that stops short, runs.
    /// </summary>
    [Theory]
    [InlineData("ddim")]
    [InlineData("lcm")]
    public void An_unclipped_epsilon_model_is_refused_the_pure_noise_step(string name)
    {
        Scheduler scheduler = Scheduler.Create(name, Sd15() with { ClipSample = false });
        scheduler.SetTimesteps(4, firstStep: 1);
        float[] before = [.. scheduler.Timesteps];
        var e = Assert.Throws<ArgumentException>(() => scheduler.SetTimesteps(5));
        Assert.Contains("step 1 runs at timestep 999", e.Message);
        Assert.Contains("v_prediction", e.Message);
        Assert.Equal(before, scheduler.Timesteps);
        Assert.Equal(1, scheduler.FirstStep);
        if (name == "ddim")
        {
            Scheduler leading = Scheduler.Create(name, Sd15(spacing: "leading") with { ClipSample = false, StepsOffset = 1 });
            leading.SetTimesteps(4);
            Assert.Equal(751f, leading.Timesteps[0]);
        }
    }

    /// <summary>
    /// With clip_sample on (DDIM's default) the infinite x0 of the pure-noise step is clamped to the clip range, as
    /// diffusers' torch.clamp does, and the step stays finite: sqrt(a_prev) * +-range + sqrt(1 - a_prev) * eps.
    /// </summary>
    [Fact]
    public void A_clipped_epsilon_ddim_step_from_pure_noise_is_finite_as_in_diffusers()
    {
        Scheduler ddim = Scheduler.Create("ddim", Sd15());
        ddim.SetTimesteps(4);
        float[] sample = [0.9f, -3f, 0.2f], eps = [0.1f, 0.5f, -0.7f];
        double aPrev = ddim.AlphasCumprod[749];
        var expected = new float[sample.Length];
        for (int i = 0; i < sample.Length; i++)
        {
            expected[i] = (float)(Math.Sqrt(aPrev) * Math.Sign(sample[i] - eps[i]) + Math.Sqrt(1 - aPrev) * eps[i]);
        }
        ddim.Step(eps, 0, sample, null);
        output.WriteLine(Compare.AssertClose(expected, sample, 1e-6, "clipped DDIM step at zero SNR"));
    }

    /// <summary>
    /// img2img at strength 1 noises the picture at the first timestep: pure noise for DDIM (alphas_cumprod 0), the
    /// picture plus 4096 x the noise for Euler (its floored end).
    /// </summary>
    [Fact]
    public void Noising_at_the_last_training_step_is_pure_noise_or_the_floored_level()
    {
        float[] picture = [0.5f, -0.25f], noise = [1f, -2f], noised = new float[2];
        Scheduler ddim = Scheduler.Create("ddim", Sd15("v_prediction"));
        ddim.SetTimesteps(4);
        ddim.AddNoise(picture, noise, 0, noised);
        Assert.Equal(noise, noised);
        Scheduler euler = Scheduler.Create("euler", Sd15("v_prediction"));
        euler.SetTimesteps(4);
        euler.AddNoise(picture, noise, 0, noised);
        Assert.Equal(picture[0] + noise[0] * euler.Sigmas![0], noised[0]);
        Assert.Equal(4096f, euler.Sigmas[0], 1e-3f);
    }

    [Theory]
    [InlineData("\"num_train_timesteps\": 1", "rescale_betas_zero_snr needs a noise schedule whose alphas_cumprod falls")]
    // The first beta, above the smallest noisy one, rounds to 0 once rescaled: a first step without noise.
    [InlineData("\"beta_start\": 1.40770805e-7, \"beta_end\": 0.04007", "rescale_betas_zero_snr leaves the first training step without noise")]
    public void A_schedule_that_cannot_be_rescaled_is_refused_when_the_config_loads(string settings, string expected)
    {
        string json = $"{{{settings}, \"rescale_betas_zero_snr\": true}}";
        var e = Assert.Throws<InvalidFileException>(() => SchedulerConfig.From(JsonConfig.Parse("scheduler_config.json", Encoding.UTF8.GetBytes(json))));
        Assert.Contains(expected, e.Message);
        SchedulerConfig.From(JsonConfig.Parse("scheduler_config.json", Encoding.UTF8.GetBytes($"{{{settings}}}")));
    }

    /// <summary>
    /// The paper's recipe in the pipeline (DDIM, trailing spacing, v-prediction, guidance rescale 0.7) on the tiny
    /// fixture model with a zero-terminal-SNR scheduler config: the run starts from pure noise and stays finite, and the
    /// rescale changes it.
    /// </summary>
    [FixtureTheory]
    [InlineData("ddim")]
    [InlineData("euler-a")]
    [InlineData("dpm++-2m")]
    public void The_pipeline_runs_a_zero_terminal_snr_schedule(string scheduler)
    {
        using var dir = new TempDirectory();
        string rescaled = dir.File("zero-snr"), plain = dir.File("plain");
        foreach ((string path, bool zeroSnr) in new[] { (rescaled, true), (plain, false) })
        {
            TinyVariant.WriteWithSchedulerEntry(path, "\"clip_sample\": false",
                $"\"clip_sample\": false, \"prediction_type\": \"v_prediction\", \"timestep_spacing\": \"trailing\", \"rescale_betas_zero_snr\": {(zeroSnr ? "true" : "false")}");
        }
        var request = new GenerateRequest { Prompt = "a bright window", Steps = 4, Scheduler = scheduler, GuidanceRescale = 0.7f, Width = 32, Height = 32, Seed = 3 };
        using var zeroSnrPipeline = StableDiffusionPipeline.Load(rescaled);
        using var plainPipeline = StableDiffusionPipeline.Load(plain);
        using GenerateResult withZeroSnr = zeroSnrPipeline.Generate(request);
        using GenerateResult without = plainPipeline.Generate(request);
        Assert.True(Tensors.Tensor.AllFinite(withZeroSnr.Latents.Span));
        Assert.True(Compare.RelativeL2(without.Latents.Span, withZeroSnr.Latents.Span) > 1e-3, "the rescale changed nothing");
    }
}
