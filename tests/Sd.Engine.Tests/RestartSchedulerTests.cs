using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;

namespace Sd.Engine.Tests;

/// <summary>
/// Restart's plan over step counts the reference (SecondOrderSchedulerTests, Data/restart-reference.json) has no case
/// for: A1111's automatic restart list restarts once over 9 steps from 20 steps, twice over steps / 4 from 36, never
/// below 20; and its plans whose call counts differ (a restart from the finished sample, no restart at all).
/// </summary>
public sealed class RestartSchedulerTests
{
    [Theory]
    [InlineData(1, 0, 0)]
    [InlineData(19, 0, 0)]
    [InlineData(20, 1, 9)]
    [InlineData(35, 1, 9)]
    [InlineData(36, 2, 9)]
    [InlineData(37, 2, 9)]
    [InlineData(100, 2, 25)]
    [InlineData(1000, 2, 250)]
    public void Restarts_as_A1111s_automatic_list_plans(int steps, int restarts, int segmentSteps)
    {
        Scheduler s = Scheduler.Create("restart-karras", Sd15SchedulerConfig.Value);
        s.SetTimesteps(steps);
        Assert.Equal(2 * steps - 1, s.StepCount);
        IReadOnlyList<float> levels = s.Sigmas!; // per call: [from_0, to_0, from_1, to_1, ..., from_(n-1), 0]
        Assert.Equal(2 * steps, levels.Count);
        Assert.Equal(0f, levels[^1]);

        // A restart: a step that starts near 2 after one that ended near 0.1; its segment walks back down in
        // segmentSteps steps to the level it left.
        var jumps = new List<int>();
        for (int k = 0; k + 1 < steps; k++)
        {
            float to = levels[2 * k + 1], next = levels[2 * k + 2];
            if (next > 1.5f * to)
            {
                Assert.InRange(to, 0.05f, 0.15f);
                Assert.InRange(next, 1.5f, 2.5f);
                Assert.Equal(to, levels[2 * (k + segmentSteps) + 1], 1e-5f * to);
                jumps.Add(2 * k + 1);
            }
        }
        Assert.Equal(restarts, jumps.Count);

        // Each restart draws once, after the call it follows (the draw index is that call's step index).
        List<int> draws = RunAll(s);
        Assert.Equal(jumps, draws.Intersect(jumps));
        // A draw anywhere else could only be a segment's end rounded below the level it returns to (A1111 draws there
        // too); none was seen from 20 to 1000 steps, but the plan would draw for it.
        Assert.All(draws.Except(jumps), d => Assert.Equal(levels[d], levels[d + 1], 1e-5f * levels[d]));
    }

    [Fact]
    public void A1111s_plans_with_other_step_counts_run_as_A1111_runs_them()
    {
        // Lowest level 0.3: the level nearest 0.1 is the final 0, so the restart starts from the finished sample,
        // noised to the level nearest 2, and walks down to 0 again: two one-call steps to 0, 2 x 20 - 2 calls.
        Scheduler high = Scheduler.Create("restart-karras", Sd15SchedulerConfig.Value with { SigmaMin = 0.3 });
        high.SetTimesteps(20);
        Assert.Equal(38, high.StepCount);
        IReadOnlyList<float> levels = high.Sigmas!;
        int euler = 2 * 11 - 2; // the main ramp's 11 steps: 10 of two calls, then the one to 0
        Assert.True(levels[euler] > 0.29f && levels[euler + 1] > 1.5f, $"call {euler} at {levels[euler]}, then {levels[euler + 1]}");
        Assert.Equal([euler], RunAll(high)); // the restart's noise follows the Euler call: sqrt(high^2 - 0)
        // Its second calls still follow their first: after the Euler call, a second call out of order is refused.
        high.SetTimesteps(20);
        float[] sample = [1f, -1f], output = [0.1f, 0.2f];
        for (int i = 0; i <= euler; i++)
        {
            high.Step(output, i, sample, _ => [0.5f, -0.5f]);
        }
        Assert.Throws<InvalidOperationException>(() => high.Step(output, euler + 2, sample, null));

        // From 36 steps, twice: each restart ends at 0 again, one call fewer each, 2 x 36 - 3 calls; each restart's
        // noise follows a one-call step to 0.
        Scheduler twice = Scheduler.Create("restart-karras", Sd15SchedulerConfig.Value with { SigmaMin = 0.3 });
        twice.SetTimesteps(36);
        Assert.Equal(69, twice.StepCount);
        List<int> draws = RunAll(twice);
        Assert.Equal(2, draws.Count);
        Assert.All(draws, d => Assert.True(twice.Sigmas![d + 1] > 1.5f, $"draw after call {d}, then call {d + 1} at {twice.Sigmas[d + 1]}"));
        Assert.True(twice.Sigmas![draws[0]] > 0.29f); // the main ramp's step to 0 from its lowest level

        // One level throughout: none lies nearer 2 above the one nearest 0.1, so nothing restarts, and only the main
        // ramp's 30 - 9 steps run.
        Scheduler flat = Scheduler.Create("restart-karras", Sd15SchedulerConfig.Value with { SigmaMin = 0.1, SigmaMax = 0.1 });
        flat.SetTimesteps(30);
        Assert.Equal(2 * 21 - 1, flat.StepCount);

        // Simple's lowest level at 20 to 24 steps is the model's level 49 to 41 (0.223 to 0.202), nearer 0 than 0.1;
        // from 25 steps its plan is the usual one.
        Scheduler simple = Scheduler.Create("restart-simple", Sd15SchedulerConfig.Value);
        simple.SetTimesteps(20);
        Assert.Equal(38, simple.StepCount);
        simple.SetTimesteps(25);
        Assert.Equal(49, simple.StepCount);

        // A part-way start plans the steps left: 16 of 40 skipped leaves 24, which restart; 22 skipped leaves 18, which do not.
        Scheduler part = Scheduler.Create("restart", Sd15SchedulerConfig.Value);
        part.SetTimesteps(40, 2 * 22);
        Assert.Equal(79, part.StepCount);
        for (int i = 2 * 22; i + 1 < part.StepCount; i++)
        {
            Assert.True(part.Sigmas![i + 1] <= part.Sigmas[i], $"call {i + 1} rises");
        }
        part.SetTimesteps(40, 2 * 16);
        Assert.Contains(Enumerable.Range(2 * 16, 79 - 2 * 16 - 1), i => part.Sigmas![i + 1] > 1.5f * part.Sigmas[i]);
    }

    [Fact]
    public void A_pipeline_runs_its_restarts()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a boat", Steps = 20, Width = 64, Height = 64, Seed = 3, Scheduler = "restart" };
        using GenerateResult restart = SeededRuns.Counted(pipeline, request, out List<StepInfo> calls);
        Assert.Equal(39, calls.Count);

        // The restart's noise is drawn from the seed's generator: from the same initial latents, another seed ends
        // elsewhere, where 19 steps (Heun's levels, no restart) end the same.
        Assert.True(SeededRuns.SeedsDiffer(pipeline, request, 4));
        Assert.False(SeededRuns.SeedsDiffer(pipeline, request with { Steps = 19 }, 4));
    }

    /// <summary>Runs every call of the schedule on a small sample with a fixed model output; returns the draw indices.</summary>
    private static List<int> RunAll(Scheduler s)
    {
        var draws = new List<int>();
        float[] sample = [1f, -1f], output = [0.1f, 0.2f];
        for (int i = 0; i < s.StepCount; i++)
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
