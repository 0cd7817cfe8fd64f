using System.Text;
using Sd.Engine.Schedulers;
using Sd.Loaders;
using Sd.Loaders.Config;

namespace Sd.Engine.Tests;

/// <summary>
/// Scheduler configs that load but cannot drive a schedule: each is refused with a typed exception naming the
/// setting, where it used to index outside alphas_cumprod or the training sigmas, or fail mid-generation as an
/// overflow blamed on the guidance scale.
/// </summary>
public sealed class DegenerateScheduleTests
{
    private static SchedulerConfig Parse(string json) =>
        SchedulerConfig.From(JsonConfig.Parse("scheduler_config.json", Encoding.UTF8.GetBytes(json)));

    [Theory]
    [InlineData(1)]
    [InlineData(49)]
    public void Lcm_needs_its_50_step_schedule(int trainSteps)
    {
        SchedulerConfig config = Parse($$"""{"num_train_timesteps": {{trainSteps}}, "steps_offset": 0}""");
        var e = Assert.Throws<ArgumentException>(() => Scheduler.Create("lcm", config));
        Assert.Contains($"needs num_train_timesteps >= 50; the scheduler config has {trainSteps}", e.Message);
    }

    [Theory]
    [InlineData("euler-karras")]
    [InlineData("dpm++-2m-karras")]
    [InlineData("lms-karras")]
    public void Karras_sigmas_need_two_training_steps(string name)
    {
        Scheduler scheduler = Scheduler.Create(name, Parse("""{"num_train_timesteps": 1, "steps_offset": 0}"""));
        var e = Assert.Throws<ArgumentException>(() => scheduler.SetTimesteps(1));
        Assert.Contains("1 training timestep(s)", e.Message);
    }

    [Theory]
    [InlineData("""{"beta_start": 2}""", "beta_start must be a noise variance in [0, 1), found 2")]
    [InlineData("""{"beta_end": -0.5}""", "beta_end must be a noise variance in [0, 1), found -0.5")]
    [InlineData("""{"beta_end": 1}""", "beta_end must be a noise variance in [0, 1), found 1")]
    [InlineData("""{"beta_schedule": "cosine"}""", "beta_schedule 'cosine' is not one of linear, scaled_linear, squaredcos_cap_v2")]
    [InlineData("""{"num_train_timesteps": 3, "trained_betas": [0.1, 1.5, 0.2]}""", "trained_betas[1] must be a noise variance in [0, 1), found 1.5")]
    [InlineData("""{"num_train_timesteps": 2, "trained_betas": [-0.1, 0.2]}""", "trained_betas[0] must be a noise variance")]
    [InlineData("""{"beta_start": 0}""", "beta_start 0 adds no noise in float32 (1 - beta rounds to 1)")]
    [InlineData("""{"beta_start": 1e-30}""", "beta_start 1E-30 adds no noise in float32")]
    [InlineData("""{"beta_end": 0}""", "beta_end 0 adds no noise in float32")]
    [InlineData("""{"num_train_timesteps": 2, "trained_betas": [0, 0.2]}""", "trained_betas[0] 0 adds no noise in float32")]
    [InlineData("""{"num_train_timesteps": 3, "trained_betas": [0.1, 0, 0.2]}""", "trained_betas[1] 0 adds no noise in float32")]
    public void Betas_outside_a_variance_are_refused_naming_the_file(string json, string expected)
    {
        var e = Assert.Throws<InvalidFileException>(() => Parse(json));
        Assert.Contains("scheduler_config.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void The_smallest_noisy_beta_loads_and_the_cosine_schedule_ignores_beta_start()
    {
        // 3e-8 is the round number just past 2^-25, below which 1 - beta rounds to 1 in float32.
        Scheduler.Create("euler-karras", Parse("""{"beta_start": 3e-8}""")).SetTimesteps(20);
        Assert.Contains("at least 3E-08", Assert.Throws<InvalidFileException>(() => Parse("""{"beta_start": 2.98e-8}""")).Message);
        Scheduler.Create("euler", Parse("""{"beta_schedule": "squaredcos_cap_v2", "beta_start": 0}""")).SetTimesteps(20);
    }

    [Fact]
    public void Dpm_2s_a_refuses_a_step_whose_ancestral_step_ends_at_zero()
    {
        // Karras from 14.6 down to sigma_min 0.002 in 2 steps: the first step falls by 1.4e-4, below 2^-12, so
        // from^2 - to^2 rounds to from^2 and sigma_down to 0, where k-diffusion takes a one-call Euler step.
        Scheduler scheduler = Scheduler.Create("dpm++-2s-a-karras", Sd15SchedulerConfig.Value with { SigmaMin = 0.002 });
        scheduler.SetTimesteps(10); // smaller falls are fine
        float[] levels = scheduler.Sigmas!.ToArray();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(2));
        Assert.Contains("step 1 of 2 falls from noise level", e.Message);

        // The refused schedule changed nothing: the 10-step one still runs, its second steps' coefficients included.
        Assert.Equal(10, scheduler.InferenceSteps);
        Assert.Equal(19, scheduler.StepCount);
        Assert.Equal(levels, scheduler.Sigmas!.ToArray());
        float[] sample = [1f, -2f], output = [0.5f, 0.25f];
        for (int i = 0; i < scheduler.StepCount; i++)
        {
            scheduler.Step(output, i, sample, _ => [0.1f, -0.1f]);
        }
        Assert.True(float.IsFinite(sample[0]) && float.IsFinite(sample[1]));
    }

    [Theory]
    [InlineData("lms", 2)]
    [InlineData("dpm++-2m", 50)]
    [InlineData("dpm++-3m-sde", 2)]
    [InlineData("dpm++-sde", 2)]
    public void Multistep_solvers_refuse_steps_that_repeat_a_noise_level(string name, int trainSteps)
    {
        // 2 training steps, leading spacing and steps_offset 1 put LMS's two steps on timesteps 2 and 1, and 2 clamps
        // to 1; 50 DPM++ steps over 50 training steps space 51 points over 49 timesteps. diffusers (and
        // k-diffusion, for the DPM++ SDEs) divides by zero.
        Scheduler scheduler = Scheduler.Create(name, Parse($$"""{"num_train_timesteps": {{trainSteps}}, "steps_offset": 1, "timestep_spacing": "{{(name == "dpm++-2m" ? "linspace" : "leading")}}"}"""));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(trainSteps));
        Assert.Contains("needs falling levels", e.Message);
        Assert.Equal(0, scheduler.InferenceSteps);
    }

    [Theory]
    [InlineData("dpm++-2m", 499, 500)]
    [InlineData("lms", 0, 2)]
    public void A_run_starting_past_a_repeated_noise_level_is_set(string name, int pair, int firstRunnable)
    {
        const int steps = 1000;
        // 1000 linspace DPM++ steps give indices 499 and 500 the same level; 1000 leading LMS steps clamp indices 0
        // and 1 of the stock SD config (steps_offset 1). img2img starting past the repeat never divides by it, but
        // LMS's first coefficients divide by gaps to the levels before the run, so a start at index 1 does (NaN in
        // diffusers too) and index 2 is the first that runs.
        var config = new SchedulerConfig { StepsOffset = 1, TimestepSpacing = name == "lms" ? "leading" : "linspace" };
        Scheduler scheduler = Scheduler.Create(name, config);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(steps, firstRunnable - 1));
        Assert.Contains($"give steps {pair + 1} and {pair + 2} the noise levels", e.Message);
        Assert.Equal(0, scheduler.InferenceSteps);
        scheduler.SetTimesteps(steps, firstRunnable);
        Assert.Equal(firstRunnable, scheduler.FirstStep);
        float[] sample = [1f, -2f, 0.5f, 3f], output = [0.1f, 0.2f, -0.3f, 0.4f];
        var early = Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.Step(output, firstRunnable - 1, sample, null));
        Assert.Equal("stepIndex", early.ParamName);
        for (int step = firstRunnable; step < firstRunnable + 4; step++)
        {
            scheduler.Step(output, step, sample, null);
        }
        Assert.All(sample, v => Assert.True(float.IsFinite(v)));
        // A refused start leaves the schedule and its first step as they were.
        Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(steps, 0));
        Assert.Equal(firstRunnable, scheduler.FirstStep);
        Assert.Equal("firstStep", Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(steps, steps + 1)).ParamName);
        Assert.Equal("firstStep", Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(steps, -1)).ParamName);
    }

    [Theory]
    [InlineData("0.165", "9.890482E-39")]
    [InlineData("0.081", "7.822872E-19")]
    public void A_schedule_whose_last_noise_level_overflows_float32_math_is_refused(string betaEnd, string reached)
    {
        // Both products stay above 0, but sqrt((1 - a) / a) is infinite for the first and past 1e9 for the second,
        // whose fourth power Euler ancestral overflows: every sigma scheduler turned the latents into NaN.
        var e = Assert.Throws<InvalidFileException>(() => Parse($$"""{"beta_start": 0.0001, "beta_end": {{betaEnd}}, "beta_schedule": "linear"}"""));
        Assert.Contains($"alphas_cumprod falls to {reached} by training step 999", e.Message);
        Assert.Contains("at least 1E-18 is needed", e.Message);
    }

    [Theory]
    [InlineData("""{"beta_start": 0.0001, "beta_end": 0.0805, "beta_schedule": "linear"}""", 20)]
    [InlineData("""{"beta_schedule": "squaredcos_cap_v2"}""", 3)]
    [InlineData("""{"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 100000}""", 50)]
    public void Euler_ancestral_stays_finite_down_the_steepest_schedules(string json, int steps)
    {
        // The cosine schedule's first trailing step of three falls from sigma 2e4 to 5.6: Euler ancestral's
        // sigma_to^2 - sigma_up^2 then rounds a hair below 0, and its root was NaN (as in diffusers). The first
        // schedule ends just above the smallest alphas_cumprod allowed, at sigma 9.9e8.
        Scheduler scheduler = Scheduler.Create("euler-a", Parse(json) with { TimestepSpacing = "trailing" });
        scheduler.SetTimesteps(steps);
        float[] sample = [1f, -2f, 0.5f, 3f], output = [0.1f, 0.2f, -0.3f, 0.4f];
        for (int step = 0; step < scheduler.StepCount; step++)
        {
            scheduler.Step(output, step, sample, _ => [0.3f, -0.1f, 0.2f, 0.5f]);
            Assert.All(sample, v => Assert.True(float.IsFinite(v), $"step {step}: {v}"));
        }
    }

    [Fact]
    public void A_schedule_whose_alphas_cumprod_underflows_is_refused()
    {
        const string expected = "alphas_cumprod falls to 0 by training step 99999 (num_train_timesteps 100000, beta_schedule linear)";
        var file = Assert.Throws<InvalidFileException>(() => Parse("""{"num_train_timesteps": 100000, "beta_schedule": "linear"}"""));
        Assert.Contains("scheduler_config.json", file.Message);
        Assert.Contains(expected, file.Message);
        // A config built in code skips the file's checks; the scheduler computing the schedule refuses it.
        var code = new SchedulerConfig { NumTrainTimesteps = 100_000, BetaSchedule = "linear" };
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => Scheduler.Create("ddim", code)).Message);
    }
}
