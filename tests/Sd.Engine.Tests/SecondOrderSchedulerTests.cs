using System.Text.Json;
using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Loaders.Config;

namespace Sd.Engine.Tests;

/// <summary>
/// The second-order samplers, which the shared fixtures have no case for:
/// - Heun (diffusers' HeunDiscreteScheduler, Data/heun-reference.json, diffusers commit 0047da1);
/// - DPM2 (KDPM2DiscreteScheduler, Data/kdpm2-reference.json, commit 013e60c);
/// - DPM2 a (KDPM2AncestralDiscreteScheduler, Data/kdpm2a-reference.json, commit 013e60c, with the noise its step
///   draws at every call from a generator seeded 42);
/// - DPM++ 2S a (k-diffusion's sample_dpmpp_2s_ancestral at commit 686dbad, which diffusers has no class for,
///   Data/dpmpp2sa-reference.json: driven by a recording model that scales inputs and predicts the data as diffusers'
///   Euler does, its noise drawn from a generator seeded 42, its levels Euler's, taken from diffusers' Heun);
/// - DPM++ SDE (sample_dpmpp_sde from the same file, Data/dpmppsde-reference.json, driven the same way, with Sd's
///   Brownian increments written out in the generator in place of k-diffusion's torchsde tree);
/// - Restart (A1111's restart_sampler with its automatic restart list, Data/restart-reference.py/.json: driven the same
///   way on a [1, 4, 1, 2] sample, its noise drawn after the call each restart follows; a part-way start planned anew
///   over the steps left, as A1111's img2img plans it; trailing spacing's 20 steps restart from the finished sample);
/// - and, by the same harness, DPM++ 3M SDE, a one-call multistep sampler (sample_dpmpp_3m_sde as A1111's k-diffusion
///   pin has it, Data/dpmpp3msde-reference.json, a plain noise draw per step), and DPM fast, whose steps take one to
///   three calls (sample_dpm_fast with eta 1, Data/dpm-fast-reference.py/.json: a run from the first step spans the
///   model's levels, a part-way start the schedule's levels from its own down to the last above 0, as A1111 runs them).
/// The references are the projects' own files (package imports stubbed) run on PyTorch 1.13 as a pipeline runs them,
/// scale_model_input then step for every call, on SD 1.5's noise schedule with a [1, 4, 3, 5] sample (seed 0) and
/// model outputs drawn in call order (seed 7). Cases: epsilon with and without Karras sigmas, v_prediction, Heun's
/// clip_sample, DPM++ 2S a's sample prediction and 25 steps, and img2img's part-way start (set_timesteps(10),
/// set_begin_index(4 x order), add_noise first).
/// </summary>
public sealed class SecondOrderSchedulerTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string name in new[] { "epsilon-5", "epsilon-karras-5", "vpred-4", "img2img-10-start4", "img2img-karras-10-start4" })
        {
            data.Add("heun", name);
            data.Add("dpm2", name);
        }
        foreach (string name in new[] { "epsilon-5", "epsilon-karras-5", "vpred-4", "img2img-10-start4" })
        {
            data.Add("dpm2-a", name);
        }
        foreach (string name in new[] { "epsilon-5", "epsilon-karras-5", "vpred-4", "sample-4", "img2img-10-start4", "epsilon-karras-25" })
        {
            data.Add("dpm++-2s-a", name);
            data.Add("dpm++-sde", name);
            data.Add("dpm++-3m-sde", name);
        }
        data.Add("heun", "epsilon-clip-4");
        foreach (string name in new[] { "epsilon-10", "epsilon-9", "epsilon-1", "epsilon-karras-8", "vpred-5", "sample-4", "epsilon-25", "img2img-10-start4", "img2img-karras-20-start6", "img2img-trailing-12-start2" })
        {
            data.Add("dpm-fast", name);
        }
        foreach (string name in new[] { "epsilon-10", "epsilon-karras-25", "vpred-20", "epsilon-40", "img2img-40-start16", "img2img-20-start8", "trailing-20", "trailing-karras-36", "img2img-trailing-30-start8", "img2img-trailing-24-start4" })
        {
            data.Add("restart", name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_call_matches_its_reference(string scheduler, string name)
    {
        string file = scheduler switch
        {
            "heun" => "heun-reference.json",
            "dpm2" => "kdpm2-reference.json",
            "dpm2-a" => "kdpm2a-reference.json",
            "dpm++-2s-a" => "dpmpp2sa-reference.json",
            "dpm++-sde" => "dpmppsde-reference.json",
            "restart" => "restart-reference.json",
            "dpm-fast" => "dpm-fast-reference.json",
            _ => "dpmpp3msde-reference.json",
        };
        using var reference = ReferenceData.Json(file);
        JsonElement run = reference.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);
        bool karras = run.GetProperty("karras").GetBoolean();
        SchedulerConfig config = Sd15SchedulerConfig.Value with
        {
            PredictionType = run.GetProperty("prediction_type").GetString()!,
            ClipSample = run.TryGetProperty("clip_sample", out JsonElement clip) ? clip.GetBoolean() : null,
            TimestepSpacing = run.TryGetProperty("timestep_spacing", out JsonElement spacing) ? spacing.GetString() : null,
        };
        Scheduler s = Scheduler.Create(karras ? scheduler + "-karras" : scheduler, config);
        int first = run.GetProperty("first").GetInt32();
        Assert.Equal(run.GetProperty("order").GetInt32(), s.Order);
        s.SetTimesteps(run.GetProperty("total").GetInt32(), first);
        float[] timesteps = Floats(run, "timesteps");
        Assert.Equal(timesteps.Length, s.StepCount);
        for (int i = 0; i < timesteps.Length; i++)
        {
            // Exact, but for the timesteps of levels that are not training timesteps (Karras sigmas, DPM2's midpoints):
            // diffusers maps them back through a log-sigma table from numpy's float32 log, whose x86 SIMD code is off by
            // an ulp on a fifth of SD's table, and Sd takes libm's (as for Euler and LMS). They move by under 5e-7
            // relative; the sigmas, and so every step below, do not depend on them.
            // Restart's are k-diffusion's sigma_to_t of each level, from libm's log on both sides: exact.
            bool tabled = scheduler is not ("restart" or "dpm-fast") && (karras || (s.Order == 2 && scheduler != "heun" && i % 2 == 1));
            Assert.True(tabled ? Math.Abs(s.Timesteps[i] - timesteps[i]) <= 1e-6 * timesteps[i] : s.Timesteps[i] == timesteps[i],
                $"timestep {i}: {s.Timesteps[i]} vs {timesteps[i]}");
        }
        float[] sigmas = Floats(run, "sigmas");
        Assert.Equal(sigmas.Length, s.Sigmas!.Count);
        for (int i = 0; i < sigmas.Length; i++)
        {
            // DPM++ 2S a's and SDE's second calls run at exp(-s), which torch takes from its vectorized exp (SLEEF's,
            // within an ulp) and Sd from libm's: within 1e-6 relative. Every other level is exact.
            bool midpoint = scheduler is "dpm++-2s-a" or "dpm++-sde" && i % 2 == 1;
            Assert.True(midpoint ? Math.Abs(s.Sigmas[i] - sigmas[i]) <= 1e-6 * sigmas[i] : s.Sigmas[i] == sigmas[i],
                $"sigma {i}: {s.Sigmas[i]} vs {sigmas[i]}");
        }
        Assert.Equal((float)run.GetProperty("init_noise_sigma").GetDouble(), s.InitNoiseSigma);

        JsonElement[] steps = run.GetProperty("steps").EnumerateArray().ToArray();
        Assert.Equal(s.StepCount - first, steps.Length);
        float[] sample = Floats(steps[0], "sample"), previous = sample;
        ReferenceRuns.CheckAddNoise(s, run, first, sample);
        for (int i = 0; i < steps.Length; i++)
        {
            int index = first + i;
            // Restart's calls alternate too, but for a step to 0 before its last (a restart from the finished sample).
            if (scheduler != "restart")
            {
                Assert.Equal(index % s.Order == 0, steps[i].GetProperty("first_order").GetBoolean());
            }
            Assert.Equal(Floats(steps[i], "sample"), sample);
            float[] scaled = new float[sample.Length];
            s.ScaleModelInput(index, sample, scaled);
            AssertMatches(scheduler, Floats(steps[i], "scaled_input"), scaled, null, $"call {index}'s input");
            // A step's rounding is relative to what it adds up: the samples it starts from (a second call redoes the
            // first's step from that call's sample) and its result.
            float scale = new[] { 1f, sample.Max(Math.Abs), previous.Max(Math.Abs), Floats(steps[i], "prev_sample").Max(Math.Abs) }.Max();
            previous = (float[])sample.Clone();
            int draws = 0;
            s.Step(Floats(steps[i], "model_output"), index, sample, drawIndex =>
            {
                // DPM2 a draws at every call, as diffusers' step (the first call's draw unused); the others never.
                Assert.Equal(index, drawIndex);
                draws++;
                return Floats(steps[i], "noise");
            });
            Assert.Equal(steps[i].TryGetProperty("noise", out _) ? 1 : 0, draws);
            AssertMatches(scheduler, Floats(steps[i], "prev_sample"), sample, scale, $"call {index}'s step");
            Floats(steps[i], "prev_sample").CopyTo(sample, 0); // the next call starts from the reference's sample
        }
        ReferenceRuns.CheckFreeRun(s, steps, run.GetProperty("total").GetInt32(), first, i => _ => Floats(steps[i], "noise"));
    }

    /// <summary>
    /// Heun: bit for bit, the same float32 operations in the same order. DPM2's and DPM2 a's midpoint levels are
    /// exp(mean of logs) in float32, which torch takes from numpy's and its own vectorized log and exp and Sd from
    /// libm's, an ulp apart on some levels (DPM2: 3 of the 29 here; DPM2 a: 1 of the 20): a model input within 1e-6
    /// relative (one division), a step within 1e-6 of its scale (<paramref name="scale"/>: the largest magnitude it adds
    /// up, as a value that cancels to near 0 keeps its operands' rounding: DPM2 a's v-prediction call 1 ends at -1.2e-4
    /// from samples near 17, 1.9e-6 off), bit for bit everywhere else on this machine. DPM++ 2S a's midpoint levels
    /// and coefficients, and DPM++ SDE's, come from torch's vectorized exp and expm1 (SLEEF's, within an ulp), Sd's from
    /// libm's exp and an expm1 in double: 1.9e-7 (2S a) and 2.0e-7 (SDE) of the scale seen, 156 and 150 of 184 checks bit
    /// for bit. DPM fast's levels are exact (libm's exp and log on both sides) and its coefficients differ only by expm1
    /// (torch takes libm's float expm1f for a 0-dim tensor): 1.5e-7 of the scale seen, 5159 of its 5520 step values bit
    /// for bit, every model input exact.
    /// </summary>
    private static void AssertMatches(string scheduler, float[] expected, float[] actual, float? scale, string what)
    {
        if (scheduler is "heun" or "restart")
        {
            Assert.Equal(expected, actual);
            return;
        }
        for (int j = 0; j < expected.Length; j++)
        {
            float bound = 1e-6f * (scale ?? Math.Max(1f, Math.Abs(expected[j])));
            Assert.True(Math.Abs(actual[j] - expected[j]) <= bound, $"{what}, value {j}: {actual[j]} vs {expected[j]} (bound {bound})");
        }
    }

    [Theory]
    [InlineData("heun")]
    [InlineData("dpm2-karras")]
    [InlineData("dpm2-a")]
    [InlineData("dpm++-2s-a")]
    [InlineData("dpm++-sde-karras")]
    [InlineData("restart")]
    public void A_run_starts_at_an_inference_steps_first_call_and_second_calls_follow_their_first(string name)
    {
        Scheduler heun = Scheduler.Create(name, Sd15SchedulerConfig.Value);
        Assert.Throws<ArgumentOutOfRangeException>(() => heun.SetTimesteps(4, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => heun.SetTimesteps(4, 10));
        heun.SetTimesteps(4, 8); // strength 0: no call left, as diffusers' timesteps[8:]
        Assert.Equal(7, heun.StepCount);

        heun.SetTimesteps(4, 2);
        float[] sample = [1f, -2f, 0.5f], output = [0.1f, 0.2f, -0.3f];
        Func<int, float[]> noise = _ => [0.5f, -1f, 2f];
        Assert.Throws<ArgumentOutOfRangeException>(() => heun.Step(output, 1, sample, noise));
        Assert.Throws<InvalidOperationException>(() => heun.Step(output, 3, sample, noise));
        heun.Step(output, 2, sample, noise);
        Assert.Throws<InvalidOperationException>(() => heun.Step([0.1f, 0.2f], 3, [1f, 2f], noise));
        heun.Step(output, 3, sample, noise);
        Assert.Throws<InvalidOperationException>(() => heun.Step(output, 5, sample, noise)); // 4's second call, 4 not run
        heun.Step(output, 4, sample, noise);
        heun.SetTimesteps(4, 4); // a new schedule forgets the pending first call
        Assert.Throws<InvalidOperationException>(() => heun.Step(output, 5, sample, noise));
        // DPM2's and DPM2 a's steps raise NotImplementedError for sample prediction in diffusers.
        Assert.Throws<ArgumentException>(() => Scheduler.Create("dpm2", Sd15SchedulerConfig.Value with { PredictionType = "sample" }));
        Assert.Throws<ArgumentException>(() => Scheduler.Create("dpm2-a", Sd15SchedulerConfig.Value with { PredictionType = "sample" }));
    }

    [Fact]
    public void Dpm_3m_sde_visits_its_steps_in_order_and_a_new_schedule_starts_its_history_afresh()
    {
        Scheduler s = Scheduler.Create("dpm++-3m-sde", Sd15SchedulerConfig.Value);
        s.SetTimesteps(5);
        float[] sample = [1f, -2f, 0.5f], output = [0.1f, 0.2f, -0.3f];
        Func<int, float[]> noise = _ => [0.5f, -1f, 2f];
        s.Step(output, 0, sample, noise);
        Assert.Throws<InvalidOperationException>(() => s.Step(output, 2, sample, noise));
        s.Step(output, 1, sample, noise);
        s.SetTimesteps(5, 3); // img2img: the history starts empty at step 3
        s.Step(output, 3, sample, noise);
        float sigma = s.Sigmas![4];
        float[] expected = [sample[0] - sigma * output[0], sample[1] - sigma * output[1], sample[2] - sigma * output[2]];
        int draws = 0;
        s.Step(output, 4, sample, _ => { draws++; return [0f, 0f, 0f]; });
        Assert.Equal(0, draws); // the last step, to sigma 0, returns the data prediction and draws nothing
        Assert.Equal(expected, sample);
    }

    [Theory]
    [InlineData("heun")]
    [InlineData("dpm2")]
    [InlineData("dpm2-a")]
    [InlineData("dpm++-2s-a-karras")]
    [InlineData("dpm++-sde")]
    [InlineData("restart-karras")]
    public void A_pipeline_runs_every_call_and_img2img_starts_at_twice_the_skipped_steps(string scheduler)
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a boat", Steps = 4, Width = 64, Height = 64, Seed = 3, Scheduler = scheduler };
        using GenerateResult full = SeededRuns.Counted(pipeline, request, out List<StepInfo> calls);
        Assert.Equal(7, calls.Count); // 2 x 4 - 1
        Assert.All(calls, c => Assert.Equal(7, c.Total));
        using GenerateResult euler = pipeline.Generate(request with { Scheduler = "euler" });
        Assert.False(full.Latents.Span.SequenceEqual(euler.Latents.Span));

        // Strength 0.5 skips 2 of 4 steps: diffusers' timesteps[2 x order:], 3 calls from the first call of step 2.
        using GenerateResult painted = SeededRuns.Counted(pipeline, request with { InitImage = full.Image, Strength = 0.5 }, out calls);
        Assert.Equal(3, calls.Count);

        // Strength 0 skips every step (call 8 of 7): the picture's latents, no call.
        using GenerateResult kept = SeededRuns.Counted(pipeline, request with { InitImage = full.Image, Strength = 0 }, out calls);
        Assert.Empty(calls);

        // Inpainting at strength 0.75 skips 1 step, so 5 calls from call 2.
        Assert.Equal(5, SeededRuns.InpaintingCalls(pipeline, request, full.Image, 0.75));
    }

    private static float[] Floats(JsonElement element, string name) => ReferenceRuns.Floats(element, name);
}
