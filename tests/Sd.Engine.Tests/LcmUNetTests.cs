using System.Runtime.InteropServices;
using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// The tiny fixture model as an LCM-distilled UNet (time_cond_proj_dim, a random time_embedding.cond_proj), and the
/// same model with that projection folded into linear_1's bias for one guidance scale: cond_proj adds W c to the
/// timestep features before linear_1, so linear_1(s + W c) = linear_1(s) + W1 W c, and the two must agree.
/// </summary>
public sealed class LcmModels : IDisposable
{
    public const int ConditionDim = 16;
    public const float Guidance = 8f;

    private readonly TempDirectory _dir = new();
    private readonly Lazy<(string Lcm, string Folded)> _paths;

    public LcmModels() => _paths = new(Write);

    /// <summary>The LCM-distilled variant.</summary>
    public string Lcm => _paths.Value.Lcm;

    /// <summary>A plain UNet computing what <see cref="Lcm"/> computes when conditioned on <see cref="Guidance"/>.</summary>
    public string Folded => _paths.Value.Folded;

    private (string, string) Write()
    {
        long[] condShape = [32, ConditionDim]; // cond_proj: condition -> the 32 timestep features of the tiny UNet
        float[] condProj = TinyVariant.RandomWeights(condShape, seed: 4242);
        string lcm = _dir.File("lcm");
        TinyVariant.Write(lcm, config => TinyVariant.Replace(config, "\"time_cond_proj_dim\": null", $"\"time_cond_proj_dim\": {ConditionDim}"),
            new Dictionary<string, (long[], float[])> { ["time_embedding.cond_proj.weight"] = (condShape, condProj) });

        using SafetensorsFile tiny = SafetensorsFile.Open(Path.Combine(Fixtures.Path("tiny/model"), TinyVariant.UNetWeights));
        float[] w1 = Floats(tiny, "time_embedding.linear_1.weight"), b1 = Floats(tiny, "time_embedding.linear_1.bias");
        float[] c = GuidanceScaleEmbedding.Compute(Guidance, ConditionDim);
        var projected = new double[32];
        for (int i = 0; i < 32; i++)
            for (int k = 0; k < ConditionDim; k++)
                projected[i] += (double)condProj[i * ConditionDim + k] * c[k];
        var folded = new float[b1.Length];
        for (int o = 0; o < b1.Length; o++)
        {
            double sum = b1[o];
            for (int i = 0; i < 32; i++) sum += (double)w1[o * 32 + i] * projected[i];
            folded[o] = (float)sum;
        }
        string foldedPath = _dir.File("folded");
        TinyVariant.Write(foldedPath, config => config,
            new Dictionary<string, (long[], float[])> { ["time_embedding.linear_1.bias"] = ([b1.Length], folded) });
        return (lcm, foldedPath);
    }

    private static float[] Floats(SafetensorsFile file, string name) =>
        MemoryMarshal.Cast<byte, float>(file.GetBytes(file.Tensors.First(t => t.Name == name))).ToArray();

    public void Dispose() => _dir.Dispose();
}

public sealed class LcmUNetTests(LcmModels models, ITestOutputHelper output) : IClassFixture<LcmModels>
{
    [Theory]
    [InlineData(8f, 256)]
    [InlineData(1.5f, 16)]
    [InlineData(1f, 7)] // w - 1 = 0: sines 0, cosines 1; odd widths end in a 0
    [InlineData(-2f, 4)]
    public void The_guidance_embedding_follows_diffusers_float32_steps(float guidance, int dim)
    {
        float[] row = GuidanceScaleEmbedding.Compute(guidance, dim);
        Assert.Equal(dim, row.Length);
        // diffusers' steps, each rounded to float32 as torch rounds it, with exp, sin and cos in double.
        float w = (float)(guidance - 1.0) * 1000f;
        int half = dim / 2;
        float step = (float)Math.Log(10000.0) / (half - 1);
        for (int i = 0; i < half; i++)
        {
            float angle = w * (float)Math.Exp(i * -step);
            // A last-bit difference in exp moves the angle by one of its own last bits.
            double allowed = Math.Abs(angle) * Math.Pow(2, -22) + 1e-6;
            Assert.True(Math.Abs(row[i] - Math.Sin(angle)) <= allowed, $"sin {i}: {row[i]} against {Math.Sin(angle)}");
            Assert.True(Math.Abs(row[half + i] - Math.Cos(angle)) <= allowed, $"cos {i}: {row[half + i]} against {Math.Cos(angle)}");
        }
        if (dim % 2 == 1)
        {
            Assert.Equal(0f, row[^1]);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => GuidanceScaleEmbedding.Compute(guidance, 3));
        Assert.Equal("guidanceScale", Assert.Throws<ArgumentOutOfRangeException>(() => GuidanceScaleEmbedding.Compute(3e38f, dim)).ParamName);
        Assert.Throws<ArgumentException>(() => GuidanceScaleEmbedding.Compute(float.NaN, dim));
    }

    [FixtureFact]
    public void The_condition_is_projected_into_the_timestep_features()
    {
        using UNetCase unetCase = UNetCase.Load("tiny", "t500");
        using UNet2DConditionModel lcm = LoadUNet(models.Lcm);
        using UNet2DConditionModel folded = LoadUNet(models.Folded);
        float[] condition = GuidanceScaleEmbedding.Compute(LcmModels.Guidance, LcmModels.ConditionDim);

        float[] expected = unetCase.Run(folded);
        float[] conditioned = unetCase.Run(lcm, condition);
        output.WriteLine(Compare.AssertClose(expected, conditioned, 1e-5, "LCM UNet against the folded bias"));
        // One row per image: each image as if run with its row for the whole batch (the halves of t500 differ, and
        // kernels compute an image's rows the same at any batch size, so bit for bit).
        float[] other = GuidanceScaleEmbedding.Compute(3f, LcmModels.ConditionDim);
        float[] perImage = unetCase.Run(lcm, [.. condition, .. other]);
        int half = perImage.Length / 2;
        Assert.True(perImage.AsSpan(0, half).SequenceEqual(conditioned.AsSpan(0, half)), "image 0 did not get its own row");
        Assert.True(perImage.AsSpan(half).SequenceEqual(unetCase.Run(lcm, other).AsSpan(half)), "image 1 did not get its own row");
        // Without a condition cond_proj is skipped, as diffusers skips it: the fixture's own prediction.
        output.WriteLine(Compare.AssertClose(unetCase.Expected, unetCase.Run(lcm), 1e-4, "LCM UNet without a condition against diffusers' tiny UNet"));
        Assert.True(Compare.RelativeL2(expected, unetCase.Run(lcm)) > 1e-3, "the condition changed nothing");
    }

    [FixtureFact]
    public void A_condition_is_refused_where_it_cannot_apply()
    {
        using UNetCase unetCase = UNetCase.Load("tiny", "t500");
        using UNet2DConditionModel lcm = LoadUNet(models.Lcm);
        using UNet2DConditionModel plain = LoadUNet(models.Folded);
        float[] condition = GuidanceScaleEmbedding.Compute(LcmModels.Guidance, LcmModels.ConditionDim);
        Assert.Contains("only LCM-distilled UNets", Assert.Throws<ArgumentException>(() => unetCase.Run(plain, condition)).Message);
        Assert.Contains("one row of 16 values", Assert.Throws<ArgumentException>(() => unetCase.Run(lcm, condition[..15])).Message);
        condition[3] = float.NaN;
        Assert.Contains("NaN", Assert.Throws<ArgumentException>(() => unetCase.Run(lcm, condition)).Message);
    }

    /// <summary>
    /// The pipeline runs an LCM-distilled UNet as diffusers does: no classifier-free guidance (batch 1, the negative
    /// prompt unused), the UNet conditioned on the guidance scale at every step. So it must give the folded model's
    /// latents at guidance 1, where the pipeline does not guide either.
    /// </summary>
    [FixtureTheory]
    [InlineData("lcm")]
    [InlineData("euler-a")]
    public void The_pipeline_conditions_an_lcm_unet_on_the_scale_instead_of_guiding(string scheduler)
    {
        var request = new GenerateRequest { Prompt = "a lighthouse at dusk", Steps = 4, Scheduler = scheduler, Width = 32, Height = 32, Seed = 7 };
        using var lcm = StableDiffusionPipeline.Load(models.Lcm);
        using var folded = StableDiffusionPipeline.Load(models.Folded);
        using GenerateResult expected = folded.Generate(request with { GuidanceScale = 1 });
        using GenerateResult actual = lcm.Generate(request with { GuidanceScale = LcmModels.Guidance, NegativePrompt = "fog" });
        output.WriteLine(Compare.AssertClose(expected.Latents.Span, actual.Latents.Span, 1e-5, $"{scheduler}: LCM pipeline against the folded model"));
        using GenerateResult guided = folded.Generate(request with { GuidanceScale = LcmModels.Guidance });
        Assert.True(Compare.RelativeL2(guided.Latents.Span, actual.Latents.Span) > 1e-3, "the LCM run matches a guided run");
    }

    /// <summary>
    /// A request that names no scheduler, step count or guidance runs the model's: 4 steps of lcm for a latent
    /// consistency model (an LCM-distilled UNet, or a plain one whose scheduler config is LCMScheduler's, as an LCM-LoRA
    /// merge is saved), 20 of euler-a for the rest; guidance 7.5, but 1 (none) for an LCM-LoRA merge.
    /// </summary>
    [FixtureFact]
    public void A_request_without_a_scheduler_or_steps_runs_the_models_default()
    {
        using var lcm = StableDiffusionPipeline.Load(models.Lcm);
        using var plain = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        Assert.Equal(("lcm", 4, 7.5f), (lcm.DefaultScheduler, lcm.DefaultSteps, lcm.DefaultGuidanceScale));
        Assert.Equal(("euler-a", 20, 7.5f), (plain.DefaultScheduler, plain.DefaultSteps, plain.DefaultGuidanceScale));
        GenerateRequest filled = lcm.WithModelDefaults(new GenerateRequest { Steps = 6 });
        Assert.Equal(("lcm", 6, 7.5f), (filled.Scheduler, filled.Steps, filled.GuidanceScale));

        var request = new GenerateRequest { Prompt = "a lighthouse at dusk", Width = 32, Height = 32, Seed = 7 };
        int total = 0;
        using GenerateResult byDefault = lcm.Generate(request, new SyncProgress(info => total = info.Total));
        using GenerateResult given = lcm.Generate(request with { Scheduler = "lcm", Steps = 4, GuidanceScale = 7.5f });
        using GenerateResult euler = lcm.Generate(request with { Scheduler = "euler-a", Steps = 4 });
        Assert.Equal(4, total);
        Assert.True(byDefault.Latents.Span.SequenceEqual(given.Latents.Span), "the default run differs from lcm's 4 steps");
        Assert.True(Compare.RelativeL2(euler.Latents.Span, byDefault.Latents.Span) > 1e-3, "the default run matches euler-a's");

        using var dir = new TempDirectory();
        string merged = dir.File("lcm-lora-merge");
        TinyVariant.WriteWithSchedulerEntry(merged, "\"PNDMScheduler\"", "\"LCMScheduler\"");
        using var mergedPipeline = StableDiffusionPipeline.Load(merged);
        // An LCM-LoRA merge samples without classifier-free guidance by default.
        Assert.Equal(("lcm", 4, 1f), (mergedPipeline.DefaultScheduler, mergedPipeline.DefaultSteps, mergedPipeline.DefaultGuidanceScale));
    }

    private static UNet2DConditionModel LoadUNet(string path)
    {
        using ModelSource model = ModelSource.Open(path);
        return new UNet2DConditionModel(model.UNet!, model.Weights(ModelComponent.Unet));
    }
}
