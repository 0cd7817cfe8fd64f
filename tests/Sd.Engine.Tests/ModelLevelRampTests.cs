using System.Text.Json;
using Sd.Engine.Schedulers;
using static Sd.Engine.Tests.SigmaRampReference;

namespace Sd.Engine.Tests;

/// <summary>
/// The ramps on the model's own levels, A1111's Simple, Normal and SGM Uniform schedule types, against A1111's
/// schedulers on k-diffusion's DiscreteSchedule run on PyTorch over diffusers' float32 SD table
/// (Data/sigma-ramps-reference.json), and as the sigma samplers run them.
/// </summary>
public sealed class ModelLevelRampTests
{
    /// <summary>SD 1.5's training sigmas as the schedulers compute them, ascending.</summary>
    private static float[] SdTable() => Scheduler.Create("euler", Sd15SchedulerConfig.Value).TrainingSigmas();

    /// <summary>
    /// The reference's run of <paramref name="steps"/>: Simple's, or Normal's (SGM Uniform's) over SD's whole range or
    /// 0.1..10; its levels (<see cref="SigmaRampReference.Levels"/>) and "times", A1111's training time of each.
    /// </summary>
    private static JsonElement A1111Case(string ramp, int steps, bool sgm = false, bool modelEnds = true)
    {
        foreach (JsonElement c in Cases(ramp))
        {
            if (c.GetProperty("steps").GetInt32() == steps
                && (ramp == "simple" || (c.GetProperty("sgm").GetBoolean() == sgm && (c.GetProperty("sigma_max").GetDouble() != 10) == modelEnds)))
            {
                return c;
            }
        }
        throw new ArgumentException($"no {ramp} case of {steps} steps");
    }

    /// <summary>The reference's table is the engine's: the same float32 ends, so the cases below start from the same levels.</summary>
    [Fact]
    public void The_reference_runs_on_the_engines_sd_table()
    {
        float[] table = SdTable();
        Assert.Equal((float)Root.GetProperty("sd_sigma_min").GetDouble(), table[0]);
        Assert.Equal((float)Root.GetProperty("sd_sigma_max").GetDouble(), table[^1]);
    }

    /// <summary>Every (1000 / steps)-th training sigma from the top, to the bit, 1 to 1000 steps (999: a stride a hair over 1).</summary>
    [Fact]
    public void Simple_levels_are_A1111s()
    {
        float[] table = SdTable();
        int cases = 0;
        foreach (JsonElement c in Cases("simple"))
        {
            int steps = c.GetProperty("steps").GetInt32();
            float[] actual = Array.ConvertAll(SigmaRamps.Of(SigmaRamp.Simple, 0, 0, steps, table), v => (float)v);
            AssertUlps(Levels(c)[..^1], actual, 0);
            cases++;
        }
        Assert.Equal(11, cases);
    }

    /// <summary>
    /// The float32 linspace of training times and log-sigma blend, to the bit, over SD's range and 0.1..10, 1 to 1000
    /// steps: even the top level is exp(log sigma_max), 14.614643 for SD's 14.614645, as A1111 samples it.
    /// </summary>
    [Fact]
    public void Normal_and_sgm_uniform_levels_are_A1111s()
    {
        float[] table = SdTable();
        int cases = 0;
        foreach (JsonElement c in Cases("normal"))
        {
            double min = c.GetProperty("sigma_min").GetDouble(), max = c.GetProperty("sigma_max").GetDouble();
            int steps = c.GetProperty("steps").GetInt32();
            SigmaRamp ramp = c.GetProperty("sgm").GetBoolean() ? SigmaRamp.SgmUniform : SigmaRamp.Normal;
            float[] actual = Array.ConvertAll(SigmaRamps.Of(ramp, min, max, steps, table), v => (float)v);
            AssertUlps(Levels(c)[..^1], actual, 0);
            cases++;
        }
        Assert.Equal(44, cases);
        Assert.Equal(14.614643f, Levels(A1111Case("normal", 20))[0]);
    }

    /// <summary>
    /// The samplers run A1111's levels and a final 0 over the model's whole range whatever the spacing (A1111 has
    /// none); each call's timestep is its level's training time, unrounded for Euler's family, as A1111 feeds its
    /// model, and rounded for the multistep solvers. Simple's levels are the model's own: their times are whole.
    /// </summary>
    [Theory]
    [InlineData("euler-normal", "leading", 20)]
    [InlineData("lms-normal", "trailing", 10)]
    [InlineData("euler-sgm-uniform", "linspace", 7)]
    [InlineData("dpm++-2m-sgm-uniform", "leading", 20)]
    [InlineData("unipc-normal", "linspace", 3)]
    [InlineData("euler-simple", "leading", 30)]
    [InlineData("euler-simple", "linspace", 1000)] // every training sigma: each maps back to its own whole timestep
    [InlineData("dpm++-2m-simple", "trailing", 20)]
    [InlineData("dpm++-3m-sde-simple", "linspace", 7)]
    public void Samplers_run_A1111s_levels(string name, string spacing, int steps)
    {
        Scheduler s = Scheduler.Create(name, Sd15SchedulerConfig.Value with { TimestepSpacing = spacing });
        s.SetTimesteps(steps);
        JsonElement c = s.Ramp == SigmaRamp.Simple ? A1111Case("simple", steps) : A1111Case("normal", steps, s.Ramp == SigmaRamp.SgmUniform);
        AssertRunsRamp(s, steps, Levels(c), 0, Doubles(c.GetProperty("times")));
        for (int i = 0; i < steps && s.Ramp == SigmaRamp.Simple; i++)
        {
            Assert.Equal(999 - (int)(i * 1000.0 / steps), s.Timesteps[i]);
        }
    }

    /// <summary>
    /// Normal and SGM Uniform take a config's sigma_min/sigma_max as the other ramps do (A1111's settings'
    /// overrides of the model's); Simple picks the model's levels and takes none.
    /// </summary>
    [Fact]
    public void Normal_takes_the_configs_ends_and_simple_none()
    {
        var ends = Sd15SchedulerConfig.Value with { SigmaMin = 0.1, SigmaMax = 10 };
        foreach ((string name, bool sgm) in (ReadOnlySpan<(string, bool)>)[("euler-normal", false), ("dpm++-2m-sgm-uniform", true), ("heun-sgm-uniform", true)])
        {
            Scheduler s = Scheduler.Create(name, ends);
            s.SetTimesteps(10);
            float[] expected = Levels(A1111Case("normal", 10, sgm, modelEnds: false)), actual = s.Sigmas!.ToArray();
            // Heun's list holds its second calls' levels too: step k's level (k >= 1) is the pair at 2k - 1 and 2k.
            for (int k = 0; k < 10; k++)
            {
                Assert.Equal(expected[k], actual[s.Order == 1 || k == 0 ? k : 2 * k - 1]);
            }
        }
        foreach (string name in (string[])["euler-simple", "dpm++-2m-simple"])
        {
            Scheduler s = Scheduler.Create(name, ends with { UseKarrasSigmas = true });
            s.SetTimesteps(10);
            Assert.Equal(Levels(A1111Case("simple", 10)), s.Sigmas!.ToArray());
        }
    }

    [Fact]
    public void The_model_level_ramps_need_the_models_levels()
    {
        foreach (SigmaRamp ramp in (SigmaRamp[])[SigmaRamp.Simple, SigmaRamp.Normal, SigmaRamp.SgmUniform])
        {
            var e = Assert.Throws<ArgumentException>(() => SigmaRamps.Of(ramp, 0.1, 10, 5));
            Assert.Contains("training sigmas", e.Message);
            Assert.Throws<ArgumentException>(() => SigmaRamps.Of(ramp, 0.1, 10, 5, [1f]));
        }
    }
}
