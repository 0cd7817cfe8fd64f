using System.Text.Json;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// Whole txt2img runs against diffusers: from the prompt text, the fixture's initial latents and its recorded noise
/// draws, the final latents (relative L2 &lt;= 1e-3) and the image (max abs &lt;= 2/255) must match.
/// </summary>
public sealed class PipelineTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, string> Cases() => new()
    {
        { "tiny", "ddim_6", "ddim" },
        { "tiny", "ddim_6_nocfg", "ddim" },
        { "tiny", "ddim_6_noneg", "ddim" },
        { "tiny", "pndm_6", "pndm" },
        { "tiny", "eulerdiscrete_6", "euler" },
        { "tiny", "eulerancestral_6", "euler-a" },
        { "tiny", "dpmsolvermultistep_6", "dpm++-2m" },
        { "tiny", "dpmsolvermultistepkarras_6", "dpm++-2m-karras" },
        { "tiny", "lmsdiscrete_6", "lms" },
        { "tiny", "lcm_4", "lcm" },
        { "small", "ddim_6", "ddim" },
        { "small", "dpmsolvermultistepkarras_6", "dpm++-2m-karras" },
    };

    [FixtureTheory]
    [MemberData(nameof(Cases))]
    public void Txt2img_reproduces_diffusers(string model, string caseName, string scheduler)
    {
        (string dir, JsonDocument meta) = LoadCase("txt2img", model, caseName);
        using JsonDocument _ = meta;
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path($"{model}/model"));
        using GenerateResult result = pipeline.Generate(RequestFor(dir, meta.RootElement, scheduler));
        AssertFinalLatents(result, dir, $"{model}/{caseName}");
        float[] image = NpyFile.Read(Path.Combine(dir, "image.npy")).ToFloat32(); // NHWC in [0, 1]
        double worst = 0;
        for (int i = 0; i < image.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(ImageConversion.ToUnit(result.Image.Span[i]) - image[i]));
        }
        output.WriteLine($"{model}/{caseName} image max abs {worst * 255:F3}/255");
        Assert.True(worst <= 2.0 / 255, $"image differs by {worst * 255:F2}/255");
    }

    [FixtureTheory]
    [InlineData("tiny", "ddim_10_s0.6", "ddim")]
    [InlineData("tiny", "euler_10_s0.6", "euler")]
    [InlineData("small", "ddim_10_s0.6", "ddim")]
    public void Img2img_reproduces_diffusers(string model, string caseName, string scheduler)
    {
        (string dir, JsonDocument meta) = LoadCase("img2img", model, caseName);
        using JsonDocument _ = meta;
        using Tensor picture = Picture(dir);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path($"{model}/model"));
        using GenerateResult result = pipeline.Generate(RequestFor(dir, meta.RootElement, scheduler) with { InitImage = picture });
        AssertFinalLatents(result, dir, $"{model}/{caseName}");
    }

    [FixtureTheory]
    [InlineData("tiny", "ddim_6_s1.0", "ddim")]
    [InlineData("tiny", "euler_8_s0.75", "euler")]
    [InlineData("small", "ddim_6_s1.0", "ddim")]
    public void Inpaint_reproduces_diffusers(string model, string caseName, string scheduler)
    {
        (string dir, JsonDocument meta) = LoadCase("inpaint", model, caseName);
        using JsonDocument _ = meta;
        using Tensor picture = Picture(dir);
        using Tensor mask = NpyTensors.ReadNchwAsNhwc(Path.Combine(dir, "mask.npy"));
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path($"{model}/model"));
        using GenerateResult result = pipeline.Generate(RequestFor(dir, meta.RootElement, scheduler) with { InitImage = picture, Mask = mask });
        AssertFinalLatents(result, dir, $"{model}/{caseName}");
    }

    [Fact]
    public void Guidance_rescale_follows_diffusers_rescale_noise_cfg()
    {
        // std(text) = 1.2910, std(cfg) = 2.5820 (unbiased): rescaled = cfg / 2; 0.7 * rescaled + 0.3 * cfg.
        float[] guided = [2, 4, 6, 8];
        StableDiffusionPipeline.RescaleGuidance(guided, [1, 2, 3, 4], 0.7f);
        Assert.Equal([1.3f, 2.6f, 3.9f, 5.2f], guided, (a, b) => Math.Abs(a - b) < 1e-5f);
        float[] unchanged = [2, 4, 6, 8];
        StableDiffusionPipeline.RescaleGuidance(unchanged, [1, 2, 3, 4], 0f);
        Assert.Equal([2f, 4f, 6f, 8f], unchanged);
    }

    [FixtureFact]
    public void The_logger_hears_the_load_every_step_and_a_truncated_prompt()
    {
        var logger = new ListLogger();
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"), logger: logger);
        string longPrompt = string.Join(" ", Enumerable.Repeat("castle", 90));
        using GenerateResult _ = pipeline.Generate(new GenerateRequest { Prompt = longPrompt, Steps = 3, Width = 64, Height = 64, Scheduler = "ddim" });
        Assert.Contains(logger.Lines, l => l.StartsWith("Information: Loaded", StringComparison.Ordinal));
        Assert.Contains(logger.Lines, l => l.StartsWith("Warning: The prompt is longer", StringComparison.Ordinal) && l.Contains("15 tokens were dropped"));
        Assert.Equal(3, logger.Lines.Count(l => l.StartsWith("Debug: Step", StringComparison.Ordinal)));
    }

    private sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Lines { get; } = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state,
            Exception? exception, Func<TState, Exception?, string> formatter) => Lines.Add($"{logLevel}: {formatter(state, exception)}");
    }

    [FixtureFact]
    public void Bad_sizes_are_refused_and_cancellation_stops_between_steps()
    {
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        Assert.Throws<ArgumentException>(() => pipeline.Generate(new GenerateRequest { Width = 63, Height = 64, Scheduler = "ddim" }));
        using var cancel = new CancellationTokenSource();
        var progress = new SyncProgress(info => { if (info.Step == 2) cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            pipeline.Generate(new GenerateRequest { Width = 64, Height = 64, Steps = 6, Scheduler = "ddim" }, progress, cancel.Token));
    }

    /// <summary>A fixture case's folder and meta.json (Python's -Infinity/NaN literals nulled for System.Text.Json).</summary>
    private static (string Dir, JsonDocument Meta) LoadCase(string kind, string model, string caseName)
    {
        string dir = Fixtures.Path($"{model}/ref/{kind}/{caseName}");
        string text = File.ReadAllText(Path.Combine(dir, "meta.json")).Replace("-Infinity", "null").Replace("Infinity", "null").Replace("NaN", "null");
        return (dir, JsonDocument.Parse(text));
    }

    /// <summary>The request a case describes (prompts, steps, guidance, size, strength) with its recorded noise.</summary>
    private static GenerateRequest RequestFor(string dir, JsonElement m, string scheduler) => new()
    {
        Prompt = m.GetProperty("prompt").GetString()!,
        NegativePrompt = m.TryGetProperty("negative_prompt", out JsonElement neg) && neg.ValueKind == JsonValueKind.String ? neg.GetString()! : "",
        Steps = m.GetProperty("steps").GetInt32(),
        Strength = m.TryGetProperty("strength", out JsonElement strength) ? strength.GetSingle() : 1f,
        GuidanceScale = m.GetProperty("guidance_scale").GetSingle(),
        Width = m.GetProperty("width").GetInt32(),
        Height = m.GetProperty("height").GetInt32(),
        Scheduler = scheduler,
        InitialLatents = File.Exists(Path.Combine(dir, "initial_latents.npy")) ? NpyFile.Read(Path.Combine(dir, "initial_latents.npy")).ToFloat32() : null,
        Noise = new FileNoise(dir),
    };

    /// <summary>The case's picture, mapped from [0, 1] to [-1, 1] as the pipelines preprocess it.</summary>
    private static Tensor Picture(string dir)
    {
        Tensor image = NpyTensors.ReadNchwAsNhwc(Path.Combine(dir, "image01.npy"));
        for (int i = 0; i < image.Length; i++) image.Span[i] = 2 * image.Span[i] - 1;
        return image;
    }

    private void AssertFinalLatents(GenerateResult result, string dir, string label)
    {
        float[] expected = NpyFile.Read(Path.Combine(dir, "final_latents.npy")).ToFloat32();
        output.WriteLine(Compare.AssertClose(expected, NpyTensors.ToNchw(result.Latents), 1e-3, $"{label} final latents"));
    }
}
