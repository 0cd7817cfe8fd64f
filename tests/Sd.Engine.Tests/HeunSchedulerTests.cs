using System.Text.Json;
using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Loaders.Config;

namespace Sd.Engine.Tests;

/// <summary>
/// Heun (diffusers' HeunDiscreteScheduler), which the shared fixtures have no case for, against Data/heun-reference.json:
/// diffusers' own scheduler file (commit 0047da1, its package imports stubbed) run on PyTorch 1.13 as a pipeline runs
/// it, scale_model_input then step for every call, on SD 1.5's noise schedule with a [1, 4, 3, 5] sample (seed 0) and
/// model outputs drawn in call order (seed 7). Cases: epsilon with and without Karras sigmas, v_prediction,
/// clip_sample, and img2img's part-way start (set_timesteps(10), set_begin_index(4 x order), add_noise first).
/// </summary>
public sealed class HeunSchedulerTests
{
    public static TheoryData<string> Cases() => ["epsilon-5", "epsilon-karras-5", "vpred-4", "epsilon-clip-4", "img2img-10-start4", "img2img-karras-10-start4"];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_call_matches_diffusers(string name)
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "heun-reference.json")));
        JsonElement run = reference.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);
        bool karras = run.GetProperty("karras").GetBoolean();
        SchedulerConfig config = Sd15SchedulerConfig.Value with
        {
            PredictionType = run.GetProperty("prediction_type").GetString()!,
            ClipSample = run.TryGetProperty("clip_sample", out JsonElement clip) ? clip.GetBoolean() : null,
        };
        Scheduler scheduler = Scheduler.Create(karras ? "heun-karras" : "heun", config);
        int first = run.GetProperty("first").GetInt32();
        Assert.Equal(run.GetProperty("order").GetInt32(), scheduler.Order);
        scheduler.SetTimesteps(run.GetProperty("total").GetInt32(), first);
        float[] timesteps = Floats(run, "timesteps");
        if (karras)
        {
            // The timesteps of Karras sigmas come from a log-sigma table; diffusers takes numpy's float32 log, whose
            // x86 SIMD code is off by an ulp on a fifth of SD's table, Sd libm's (as for Euler and LMS). They move by
            // under 5e-7 relative; the sigmas, and so every step below, do not depend on them.
            for (int i = 0; i < timesteps.Length; i++)
            {
                Assert.True(Math.Abs(scheduler.Timesteps[i] - timesteps[i]) <= 1e-6 * timesteps[i], $"timestep {i}: {scheduler.Timesteps[i]} vs {timesteps[i]}");
            }
        }
        else
        {
            Assert.Equal(timesteps, scheduler.Timesteps.ToArray());
        }
        Assert.Equal(Floats(run, "sigmas"), scheduler.Sigmas!.ToArray());
        Assert.Equal((float)run.GetProperty("init_noise_sigma").GetDouble(), scheduler.InitNoiseSigma);

        JsonElement[] steps = run.GetProperty("steps").EnumerateArray().ToArray();
        Assert.Equal(scheduler.StepCount - first, steps.Length);
        float[] sample = Floats(steps[0], "sample");
        if (run.TryGetProperty("add_noise", out JsonElement noised))
        {
            // img2img noises the picture's latents to the first step's level, before any step.
            float[] output = new float[sample.Length];
            scheduler.AddNoise(Floats(noised, "original"), Floats(noised, "noise"), first, output);
            Assert.Equal(Floats(noised, "output"), output);
            Assert.Equal(output, sample);
        }
        for (int i = 0; i < steps.Length; i++)
        {
            int index = first + i;
            Assert.Equal(index % 2 == 0, steps[i].GetProperty("first_order").GetBoolean());
            Assert.Equal(timesteps[index], (float)steps[i].GetProperty("t").GetDouble());
            Assert.Equal(Floats(steps[i], "sample"), sample);
            float[] scaled = new float[sample.Length];
            scheduler.ScaleModelInput(index, sample, scaled);
            Assert.Equal(Floats(steps[i], "scaled_input"), scaled);
            scheduler.Step(Floats(steps[i], "model_output"), index, sample, _ => throw new InvalidOperationException("Heun draws no noise"));
            // Bit for bit: the same float32 operations in the same order.
            Assert.Equal(Floats(steps[i], "prev_sample"), sample);
        }
    }

    [Fact]
    public void A_run_starts_at_an_inference_steps_first_call_and_second_calls_follow_their_first()
    {
        Scheduler heun = Scheduler.Create("heun", Sd15SchedulerConfig.Value);
        Assert.Throws<ArgumentOutOfRangeException>(() => heun.SetTimesteps(4, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => heun.SetTimesteps(4, 10));
        heun.SetTimesteps(4, 8); // strength 0: no call left, as diffusers' timesteps[8:]
        Assert.Equal(7, heun.StepCount);

        heun.SetTimesteps(4, 2);
        float[] sample = [1f, -2f, 0.5f], output = [0.1f, 0.2f, -0.3f];
        Assert.Throws<ArgumentOutOfRangeException>(() => heun.Step(output, 1, sample, null));
        Assert.Throws<InvalidOperationException>(() => heun.Step(output, 3, sample, null));
        heun.Step(output, 2, sample, null);
        Assert.Throws<InvalidOperationException>(() => heun.Step([0.1f, 0.2f], 3, [1f, 2f], null));
        heun.Step(output, 3, sample, null);
        Assert.Throws<InvalidOperationException>(() => heun.Step(output, 5, sample, null)); // 4's second call, 4 not run
        heun.Step(output, 4, sample, null);
        heun.SetTimesteps(4, 4); // a new schedule forgets the pending first call
        Assert.Throws<InvalidOperationException>(() => heun.Step(output, 5, sample, null));
    }

    [Fact]
    public void A_pipeline_runs_every_call_and_img2img_starts_at_twice_the_skipped_steps()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a boat", Steps = 4, Width = 64, Height = 64, Seed = 3, Scheduler = "heun" };
        var calls = new List<StepInfo>();
        using GenerateResult full = pipeline.Generate(request, new SyncProgress(calls.Add));
        Assert.Equal(7, calls.Count); // 2 x 4 - 1
        Assert.All(calls, c => Assert.Equal(7, c.Total));
        using GenerateResult euler = pipeline.Generate(request with { Scheduler = "euler" });
        Assert.False(full.Latents.Span.SequenceEqual(euler.Latents.Span));

        // Strength 0.5 skips 2 of 4 steps: diffusers' timesteps[2 x order:], 3 calls from the first call of step 2.
        calls.Clear();
        using GenerateResult painted = pipeline.Generate(request with { InitImage = full.Image, Strength = 0.5f }, new SyncProgress(calls.Add));
        Assert.Equal(3, calls.Count);
        Assert.True(Tensors.Tensor.AllFinite(painted.Latents.Span));
    }

    private static float[] Floats(JsonElement element, string name) =>
        element.GetProperty(name).EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();
}
