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
        string dir = Fixtures.Path($"{model}/ref/txt2img/{caseName}");
        // Python's json writes -Infinity (DPM's final sigma), which System.Text.Json rejects; no field used here needs it.
        string metaText = File.ReadAllText(Path.Combine(dir, "meta.json")).Replace("-Infinity", "null").Replace("Infinity", "null").Replace("NaN", "null");
        using JsonDocument meta = JsonDocument.Parse(metaText);
        JsonElement m = meta.RootElement;
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path($"{model}/model"));
        var request = new GenerateRequest
        {
            Prompt = m.GetProperty("prompt").GetString()!,
            NegativePrompt = m.TryGetProperty("negative_prompt", out JsonElement neg) && neg.ValueKind == JsonValueKind.String ? neg.GetString()! : "",
            Steps = m.GetProperty("steps").GetInt32(),
            GuidanceScale = m.GetProperty("guidance_scale").GetSingle(),
            Width = m.GetProperty("width").GetInt32(),
            Height = m.GetProperty("height").GetInt32(),
            Scheduler = scheduler,
            InitialLatents = NpyFile.Read(Path.Combine(dir, "initial_latents.npy")).ToFloat32(),
            Noise = new FileNoise(dir),
        };
        using GenerateResult result = pipeline.Generate(request);

        string latentsPath = Path.Combine(Path.GetTempPath(), $"sd-pipe-{Guid.NewGuid():N}.npy");
        try
        {
            NpyTensors.WriteNhwcAsNchw(result.Latents, latentsPath);
            float[] expected = NpyFile.Read(Path.Combine(dir, "final_latents.npy")).ToFloat32();
            output.WriteLine(Compare.AssertClose(expected, NpyFile.Read(latentsPath).ToFloat32(), 1e-3, $"{model}/{caseName} final latents"));
        }
        finally
        {
            File.Delete(latentsPath);
        }
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
        string dir = Fixtures.Path($"{model}/ref/img2img/{caseName}");
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "meta.json")).Replace("-Infinity", "null").Replace("Infinity", "null").Replace("NaN", "null"));
        JsonElement m = meta.RootElement;
        using Tensor image01 = NpyTensors.ReadNchwAsNhwc(Path.Combine(dir, "image01.npy"));
        for (int i = 0; i < image01.Length; i++) image01.Span[i] = 2 * image01.Span[i] - 1; // the pipeline's preprocessing
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path($"{model}/model"));
        using GenerateResult result = pipeline.Generate(new GenerateRequest
        {
            Prompt = m.GetProperty("prompt").GetString()!,
            NegativePrompt = m.GetProperty("negative_prompt").GetString()!,
            Steps = m.GetProperty("steps").GetInt32(),
            Strength = m.GetProperty("strength").GetSingle(),
            GuidanceScale = m.GetProperty("guidance_scale").GetSingle(),
            Width = m.GetProperty("width").GetInt32(),
            Height = m.GetProperty("height").GetInt32(),
            Scheduler = scheduler,
            InitImage = image01,
            Noise = new FileNoise(dir),
        });
        string latentsPath = Path.Combine(Path.GetTempPath(), $"sd-img2img-{Guid.NewGuid():N}.npy");
        try
        {
            NpyTensors.WriteNhwcAsNchw(result.Latents, latentsPath);
            float[] expected = NpyFile.Read(Path.Combine(dir, "final_latents.npy")).ToFloat32();
            output.WriteLine(Compare.AssertClose(expected, NpyFile.Read(latentsPath).ToFloat32(), 1e-3, $"{model}/{caseName} final latents"));
        }
        finally
        {
            File.Delete(latentsPath);
        }
    }

    [FixtureTheory]
    [InlineData("tiny", "ddim_6_s1.0", "ddim")]
    [InlineData("tiny", "euler_8_s0.75", "euler")]
    [InlineData("small", "ddim_6_s1.0", "ddim")]
    public void Inpaint_reproduces_diffusers(string model, string caseName, string scheduler)
    {
        string dir = Fixtures.Path($"{model}/ref/inpaint/{caseName}");
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "meta.json")).Replace("-Infinity", "null").Replace("Infinity", "null").Replace("NaN", "null"));
        JsonElement m = meta.RootElement;
        using Tensor image = NpyTensors.ReadNchwAsNhwc(Path.Combine(dir, "image01.npy"));
        for (int i = 0; i < image.Length; i++) image.Span[i] = 2 * image.Span[i] - 1;
        using Tensor mask = NpyTensors.ReadNchwAsNhwc(Path.Combine(dir, "mask.npy"));
        string latentsFile = Path.Combine(dir, "initial_latents.npy");
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path($"{model}/model"));
        using GenerateResult result = pipeline.Generate(new GenerateRequest
        {
            Prompt = m.GetProperty("prompt").GetString()!,
            NegativePrompt = m.GetProperty("negative_prompt").GetString()!,
            Steps = m.GetProperty("steps").GetInt32(),
            Strength = m.GetProperty("strength").GetSingle(),
            GuidanceScale = m.GetProperty("guidance_scale").GetSingle(),
            Width = m.GetProperty("width").GetInt32(),
            Height = m.GetProperty("height").GetInt32(),
            Scheduler = scheduler,
            InitImage = image,
            Mask = mask,
            InitialLatents = File.Exists(latentsFile) ? NpyFile.Read(latentsFile).ToFloat32() : null,
            Noise = new FileNoise(dir),
        });
        string latentsPath = Path.Combine(Path.GetTempPath(), $"sd-inpaint-{Guid.NewGuid():N}.npy");
        try
        {
            NpyTensors.WriteNhwcAsNchw(result.Latents, latentsPath);
            float[] expected = NpyFile.Read(Path.Combine(dir, "final_latents.npy")).ToFloat32();
            output.WriteLine(Compare.AssertClose(expected, NpyFile.Read(latentsPath).ToFloat32(), 1e-3, $"{model}/{caseName} final latents"));
        }
        finally
        {
            File.Delete(latentsPath);
        }
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

    private sealed class SyncProgress(Action<StepInfo> report) : IProgress<StepInfo>
    {
        public void Report(StepInfo value) => report(value);
    }
}
