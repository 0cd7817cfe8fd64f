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
    public void Betas_outside_a_variance_are_refused_naming_the_file(string json, string expected)
    {
        var e = Assert.Throws<InvalidFileException>(() => Parse(json));
        Assert.Contains("scheduler_config.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_schedule_whose_alphas_cumprod_underflows_is_refused()
    {
        SchedulerConfig config = Parse("""{"num_train_timesteps": 100000, "beta_schedule": "linear"}""");
        var e = Assert.Throws<ArgumentException>(() => Scheduler.Create("ddim", config));
        Assert.Contains("alphas_cumprod reaches 0 by its last training step (num_train_timesteps 100000, beta_schedule linear)", e.Message);
    }
}
