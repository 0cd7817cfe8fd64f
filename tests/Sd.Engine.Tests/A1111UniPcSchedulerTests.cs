using System.Text.Json;
using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;

namespace Sd.Engine.Tests;

/// <summary>
/// A1111's UniPC (<see cref="A1111UniPcScheduler"/>) against Data/unipc-a1111-reference.py/.json: A1111's unipc with
/// uni_pc.py's UniPC restated call by call on PyTorch 1.13, on SD 1.5's training table with a [1, 4, 3, 5] sample
/// (seed 0) and model outputs drawn in call order (seed 7); cases of 3 to 30 steps (A1111's call counts: 4, 5, 8,
/// 10, 20, 31), v and x0 prediction, and img2img starts (the picture noised first, from seed 42).
/// </summary>
public sealed class A1111UniPcSchedulerTests
{
    [Theory]
    [InlineData("epsilon-20")]
    [InlineData("epsilon-30")]
    [InlineData("epsilon-7")]
    [InlineData("epsilon-3")]
    [InlineData("epsilon-5")]
    [InlineData("vpred-10")]
    [InlineData("sample-6")]
    [InlineData("img2img-20-start8")]
    [InlineData("img2img-10-start7")]
    [InlineData("img2img-vpred-30-start9")]
    public void Every_call_matches_its_reference(string name)
    {
        using var reference = ReferenceData.Json("unipc-a1111-reference.json");
        JsonElement run = reference.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);
        Scheduler s = Scheduler.Create("unipc-a1111", Sd15SchedulerConfig.Value with { PredictionType = run.GetProperty("prediction_type").GetString()! });
        int first = run.GetProperty("first").GetInt32(), steps = run.GetProperty("total").GetInt32();
        s.SetTimesteps(steps, first);
        // Every model time is exact: the same float32 linspace and (t - 1/1000) * 1000.
        Assert.Equal(Floats(run, "timesteps"), s.Timesteps.ToArray());
        Assert.Equal(1f, s.InitNoiseSigma);
        JsonElement[] calls = run.GetProperty("steps").EnumerateArray().ToArray();
        Assert.Equal(s.StepCount - first, calls.Length);
        float[] sample = Floats(calls[0], "sample"), previous = sample;
        ReferenceRuns.CheckAddNoise(s, run, first, sample); // A1111's training step g_k, see below
        for (int i = 0; i < calls.Length; i++)
        {
            int index = first + i;
            Assert.Equal(Floats(calls[i], "sample"), sample);
            float[] expected = Floats(calls[i], "prev_sample");
            // A call's rounding is relative to what it adds up: the samples it corrects and predicts from, its result.
            float scale = new[] { 1f, sample.Max(Math.Abs), previous.Max(Math.Abs), expected.Max(Math.Abs) }.Max();
            previous = (float[])sample.Clone();
            s.Step(Floats(calls[i], "model_output"), index, sample, _ => throw new InvalidOperationException("UniPC draws no noise"));
            for (int j = 0; j < expected.Length; j++)
            {
                Assert.True(Math.Abs(sample[j] - expected[j]) <= 1e-6f * scale, $"call {index}, value {j}: {sample[j]} vs {expected[j]} (scale {scale})");
            }
            expected.CopyTo(sample, 0); // the next call starts from the reference's sample
        }
        ReferenceRuns.CheckFreeRun(s, calls, steps, first, _ => null);
    }

    [Fact]
    public void It_runs_a1111s_call_count_and_at_least_three_calls()
    {
        Scheduler s = Scheduler.Create("unipc-a1111", Sd15SchedulerConfig.Value);
        for (int steps = 1; steps <= 1000; steps++)
        {
            if (steps <= 2)
            {
                var e = Assert.Throws<ArgumentOutOfRangeException>(() => s.SetTimesteps(steps));
                Assert.Contains("at least 3", e.Message);
                continue;
            }
            s.SetTimesteps(steps);
            int stride = 1000 / steps;
            Assert.Equal((1000 + stride - 1) / stride, s.StepCount); // len(range(0, 1000, 1000 // steps))
            Assert.Equal(999f, s.Timesteps[0]);
            Assert.True(s.Timesteps[^1] > 0f);
        }
        s.SetTimesteps(30);
        Assert.Equal(31, s.StepCount);
        s.SetTimesteps(400);
        Assert.Equal(500, s.StepCount);

        // A part-way start runs the steps left (A1111's t_enc), from A1111's t_start: g_(k-1) = (k - 1) 50 + 1 at 20 steps.
        s.SetTimesteps(20, 8);
        Assert.Equal(20, s.StepCount);
        Assert.Equal(551f, s.Timesteps[8], 1e-3f);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.SetTimesteps(20, 18)); // 2 calls
        Assert.Equal(8, s.FirstStep); // a refused schedule leaves the last one
        s.SetTimesteps(20, 17);
        Assert.Equal(3, s.StepCount - s.FirstStep);
        s.SetTimesteps(20, 20); // strength 0: nothing to run
        Assert.Equal(20, s.StepCount);
    }

    [Fact]
    public void A_part_way_start_noises_to_a1111s_grid_step_and_later_calls_to_their_own_time()
    {
        Scheduler s = Scheduler.Create("unipc-a1111", Sd15SchedulerConfig.Value);
        s.SetTimesteps(20, 8); // 12 calls from model time 551; the picture noised to training step 601
        float a = s.AlphasCumprod[601];
        float[] signal = new float[1], noise = new float[1];
        s.AddNoise([1f], [0f], 8, signal);
        s.AddNoise([0f], [1f], 8, noise);
        Assert.Equal(MathF.Sqrt(a), signal[0]);
        Assert.Equal(MathF.Sqrt(1f - a), noise[0]);

        // Inpainting's known region at call 9: the variance-preserving level of that call's time, below the start's.
        s.AddNoise([1f], [0f], 9, signal);
        s.AddNoise([0f], [1f], 9, noise);
        Assert.Equal(1f, signal[0] * signal[0] + noise[0] * noise[0], 1e-6f);
        Assert.True(noise[0] < MathF.Sqrt(1f - a));
    }

    [Fact]
    public void A_call_follows_the_one_before_it()
    {
        Scheduler s = Scheduler.Create("unipc-a1111", Sd15SchedulerConfig.Value);
        s.SetTimesteps(5);
        float[] sample = [1f, -1f], output = [0.1f, 0.2f];
        var e = Assert.Throws<InvalidOperationException>(() => s.Step(output, 1, sample, null));
        Assert.Contains("call 1 corrects the update call 0 predicted", e.Message);
        s.Step(output, 0, sample, null);
        Assert.Throws<InvalidOperationException>(() => s.Step(output, 2, sample, null));
        Assert.Throws<InvalidOperationException>(() => s.Step([1f, 2f, 3f], 1, new float[3], null));
        s.Step(output, 1, sample, null);
        s.SetTimesteps(5, 2); // a new schedule starts afresh at its first call
        Assert.Throws<InvalidOperationException>(() => s.Step(output, 3, sample, null));
        s.Step(output, 2, sample, null);
        s.Step(output, 3, sample, null);
        s.Step(output, 4, sample, null);
        Assert.True(float.IsFinite(sample[0]) && float.IsFinite(sample[1]));
        Assert.Throws<ArgumentException>(() => Scheduler.Create("unipc-a1111-karras", Sd15SchedulerConfig.Value)); // no schedule types
    }

    [Fact]
    public void A_zero_terminal_snr_schedule_starts_at_its_floor()
    {
        // rescale_betas_zero_snr ends at alphas_cumprod 2^-24, as for Sd's other samplers on continuous levels: t = 1 has
        // a sliver of signal, so x0 is finite.
        Scheduler s = Scheduler.Create("unipc-a1111", Sd15SchedulerConfig.Value with { RescaleBetasZeroSnr = true, PredictionType = "v_prediction" });
        Assert.Equal(1f / (1 << 24), s.AlphasCumprod[^1]);
        s.SetTimesteps(10);
        float[] sample = [1f, -1f], output = [0.5f, -0.25f];
        for (int i = 0; i < s.StepCount; i++)
        {
            s.Step(output, i, sample, null);
            Assert.True(float.IsFinite(sample[0]) && float.IsFinite(sample[1]), $"call {i}");
        }
    }

    [Fact]
    public void A_pipeline_runs_a1111s_calls_for_txt2img_img2img_and_inpainting()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = new GenerateRequest { Prompt = "a boat", Steps = 7, Width = 64, Height = 64, Seed = 3, Scheduler = "unipc-a1111" };
        using GenerateResult full = SeededRuns.Counted(pipeline, request, out List<StepInfo> calls);
        Assert.Equal(8, calls.Count); // len(range(0, 1000, 142))
        using GenerateResult diffusers = pipeline.Generate(request with { Scheduler = "unipc" });
        Assert.False(full.Latents.Span.SequenceEqual(diffusers.Latents.Span));

        using GenerateResult painted = SeededRuns.Counted(pipeline, request with { InitImage = full.Image, Strength = 0.5 }, out calls);
        Assert.Equal(3, calls.Count); // int(7 x 0.5)
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.Generate(request with { InitImage = full.Image, Strength = 0.3 }));
        Assert.Contains("higher strength", e.Message); // 2 calls
        Assert.Equal(5, SeededRuns.InpaintingCalls(pipeline, request, full.Image, 0.75)); // int(7 x 0.75)
    }

    /// <summary>
    /// UniPC's weight systems R rho = b (R's row i the ratios to the power i, b = [0.3, -0.2, 0.1]) solved in float32
    /// as torch.linalg.solve does (PyTorch 1.13 on LAPACK): the whole R factored transposed, R[:-1, :-1] as it is,
    /// with partial pivoting. The weights are torch's, bit for bit; on these ratios LU without pivoting differs in the
    /// last bits (on a third of random ratios only do they agree).
    /// </summary>
    [Theory]
    [InlineData(-1.6819183826446533f, -4.548170566558838f, false, new[] { 0.4062626361846924f, -0.10626263916492462f })]
    [InlineData(-1.7839030027389526f, -2.1583125591278076f, false, new[] { 1.1951991319656372f, -0.8951990604400635f })]
    [InlineData(-1.1419448852539062f, -2.5849263668060303f, true, new[] { 0.3211037516593933f, -0.05238225683569908f, 0.03127851337194443f })]
    [InlineData(-2.534796953201294f, -3.9396345615386963f, true, new[] { 0.33626246452331543f, -0.1394069641828537f, 0.10314451903104782f })]
    public void Weights_solve_their_systems_as_torch_does(float r1, float r2, bool contiguous, float[] expected)
    {
        float[] rks = [r1, r2, 1f];
        float[] rho = new[] { 0.3f, -0.2f, 0.1f }[..expected.Length];
        UniPcWeights.Solve(rks, rho, contiguous);
        Assert.Equal(expected, rho);
    }

    private static float[] Floats(JsonElement e, string name) => ReferenceRuns.Floats(e, name);
}
