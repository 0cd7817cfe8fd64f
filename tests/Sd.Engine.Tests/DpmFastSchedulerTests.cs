using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;

namespace Sd.Engine.Tests;

/// <summary>
/// DPM fast's plan over step counts the reference (SecondOrderSchedulerTests, Data/dpm-fast-reference.json) has no case
/// for, and the runs k-diffusion refuses: n calls as steps of orders 3, ..., 3, n mod 3 (or 2, 1), equal spans in log
/// sigma from the model's top level to its lowest, one noise draw per step but the last.
/// </summary>
public sealed class DpmFastSchedulerTests
{
    [Theory]
    [InlineData(1, new[] { 1 })]
    [InlineData(2, new[] { 2 })]
    [InlineData(3, new[] { 2, 1 })]
    [InlineData(4, new[] { 3, 1 })]
    [InlineData(6, new[] { 3, 2, 1 })]
    [InlineData(20, new[] { 3, 3, 3, 3, 3, 3, 2 })]
    [InlineData(150, null)] // 49 steps of 3, then 2 and 1
    public void Steps_of_orders_three_then_the_rest_spend_one_call_each(int steps, int[]? orders)
    {
        orders ??= [.. Enumerable.Repeat(3, 49), 2, 1];
        Scheduler s = Scheduler.Create("dpm-fast", Sd15SchedulerConfig.Value);
        s.SetTimesteps(steps);
        Assert.Equal(steps, s.StepCount);
        Assert.Equal(1, s.Order);
        float[] table = s.TrainingSigmas();
        Assert.Equal(table[^1], s.InitNoiseSigma);
        IReadOnlyList<float> levels = s.Sigmas!; // per call, then the level the run ends at
        Assert.Equal(steps + 1, levels.Count);
        Assert.Equal(table[^1], levels[0], 1e-6f * table[^1]);
        Assert.Equal(table[0], levels[^1], 1e-6f * table[0]);

        // Each step draws once, after its last call, but the run's last step; its calls fall, and the next step starts
        // higher than its last call or level with it (the ancestral step ends below the next step's level, and the
        // noise lifts the sample back to it).
        var expected = new List<int>();
        int call = 0;
        foreach (int order in orders)
        {
            for (int i = call + 1; i < call + order; i++)
            {
                Assert.True(levels[i] < levels[i - 1], $"{steps} steps: call {i} does not fall");
            }
            call += order;
            if (call < steps)
            {
                Assert.True(levels[call] >= levels[call - 1] * (1 - 1e-6f), $"{steps} steps: step at call {call} starts below the last");
                expected.Add(call - 1);
            }
        }
        Assert.Equal(steps, call);
        Assert.Equal(expected, RunAll(s));
    }

    [Fact]
    public void A_run_from_the_first_step_spans_the_models_levels_whatever_the_schedule()
    {
        // A1111's txt2img passes the model's ends; its schedule type matters only where img2img starts.
        Scheduler plain = Scheduler.Create("dpm-fast", Sd15SchedulerConfig.Value), karras = Scheduler.Create("dpm-fast-karras", Sd15SchedulerConfig.Value);
        Scheduler trailing = Scheduler.Create("dpm-fast", Sd15SchedulerConfig.Value with { TimestepSpacing = "trailing" });
        foreach (Scheduler s in (Scheduler[])[plain, karras, trailing])
        {
            s.SetTimesteps(10);
        }
        Assert.Equal(plain.Sigmas!.ToArray(), karras.Sigmas!.ToArray());
        Assert.Equal(plain.Sigmas!.ToArray(), trailing.Sigmas!.ToArray());
        plain.SetTimesteps(10, 3);
        karras.SetTimesteps(10, 3);
        Assert.NotEqual(plain.Sigmas![3], karras.Sigmas![3]);
    }

    [Fact]
    public void A_part_way_run_of_one_call_is_refused_as_k_diffusion_refuses_it()
    {
        Scheduler s = Scheduler.Create("dpm-fast", Sd15SchedulerConfig.Value);
        s.SetTimesteps(10, 4);
        float[] levels = s.Sigmas!.ToArray();
        // The last step's level is the run's last: from there to itself there is no span (k-diffusion's ValueError).
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => s.SetTimesteps(10, 9));
        Assert.Contains("DPM fast: a run of 1 call from noise level", e.Message);
        Assert.Contains("has no span", e.Message);
        Assert.Equal(levels, s.Sigmas!.ToArray()); // the refused schedule changed nothing
        Assert.Equal(4, s.FirstStep);
        s.SetTimesteps(10, 10); // strength 0: no call at all
        Assert.Equal(10, s.StepCount);
        s.SetTimesteps(10, 8);
        Assert.Empty(RunAll(s, 8)); // two calls, one step of order 2, the last: no draw
    }

    [Fact]
    public void A_part_way_start_noises_its_picture_to_the_schedules_level()
    {
        // A1111's img2img noises to sigma_sched[0], and its first call is made at exp(-(-log of it)), an ulp above at
        // step 3 of 10 (2.9183083 -> 2.918308).
        Scheduler euler = Scheduler.Create("euler", Sd15SchedulerConfig.Value), s = Scheduler.Create("dpm-fast", Sd15SchedulerConfig.Value);
        euler.SetTimesteps(10);
        s.SetTimesteps(10, 3);
        float level = euler.Sigmas![3];
        Assert.NotEqual(level, s.Sigmas![3]);
        Assert.Equal(level, s.Sigmas[3], 1e-6f * level);
        float[] noised = new float[1];
        s.AddNoise([0f], [1f], 3, noised);
        Assert.Equal(level, noised[0]);
    }

    [Fact]
    public void A_steps_later_calls_follow_its_first()
    {
        Scheduler s = Scheduler.Create("dpm-fast", Sd15SchedulerConfig.Value);
        s.SetTimesteps(4); // calls 0, 1, 2 are one step of order 3
        float[] sample = [1f, -1f], output = [0.1f, 0.2f];
        var e = Assert.Throws<InvalidOperationException>(() => s.Step(output, 1, sample, null));
        Assert.Contains("call 1 continues the step call 0 began", e.Message);
        s.Step(output, 0, sample, null);
        Assert.Throws<InvalidOperationException>(() => s.Step(output, 2, sample, null));
        s.Step(output, 1, sample, null);
        Assert.Throws<InvalidOperationException>(() => s.Step([1f, 2f, 3f], 2, new float[3], null));
        Assert.Throws<ArgumentNullException>(() => s.Step(output, 2, sample, null)); // the step's noise needs a source
    }

    [Fact]
    public void A_pipeline_runs_its_calls_with_the_seeds_noise()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a boat", Steps = 7, Width = 64, Height = 64, Seed = 3, Scheduler = "dpm-fast" };
        using GenerateResult result = SeededRuns.Counted(pipeline, request, out List<StepInfo> calls);
        Assert.Equal(7, calls.Count);
        Assert.True(SeededRuns.SeedsDiffer(pipeline, request, 4)); // its noise comes from the seed's generator
    }

    /// <summary>Runs the schedule's calls from <paramref name="first"/> on a small sample; returns the draw indices.</summary>
    private static List<int> RunAll(Scheduler s, int first = 0)
    {
        var draws = new List<int>();
        float[] sample = [1f, -1f], output = [0.1f, 0.2f];
        for (int i = first; i < s.StepCount; i++)
        {
            s.Step(output, i, sample, index =>
            {
                draws.Add(index);
                return [0.5f, -0.5f];
            });
        }
        Assert.True(float.IsFinite(sample[0]) && float.IsFinite(sample[1]));
        return draws;
    }
}
