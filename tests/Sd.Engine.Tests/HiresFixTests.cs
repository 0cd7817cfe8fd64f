using System.Text.Json;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Engine.Vae;
using Sd.Kernels.Elementwise;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Layout;

namespace Sd.Engine.Tests;

/// <summary>
/// AUTOMATIC1111's hires fix against its passes written out: the txt2img loop (<see cref="GuidedLoop"/>), the latents
/// upscaled by the bilinear resize or the upscaler asked for (checked against PyTorch in the kernel tests), then the second pass as A1111's
/// setup_img2img_steps lays it out (a schedule of int(steps / min(strength, 0.999)), its last steps run), noised by
/// the first draw of a fresh generator of the seed, whose later draws the scheduler takes; prompt editing counting on
/// from the first pass (a fraction of 1.5 switches halfway through the second).
/// </summary>
public sealed unsafe class HiresFixTests : IDisposable
{
    private readonly ModelSource _demo = ModelSource.Demo();

    public void Dispose() => _demo.Dispose();

    /// <param name="total">The second pass's schedule, int(steps / min(strength, 0.999)) as Python computes it.</param>
    [Theory]
    [InlineData("euler", 0.7, null, 5)] // 4 steps at 0.7: the last 4 of a 5-step schedule
    [InlineData("euler-a", 0.5, 3, 6)] // the ancestral draws continue the second pass's generator
    [InlineData("heun", 0.35, 3, 8)] // two calls per step: 5 calls from call 10 of an 8-step schedule
    [InlineData("euler", 0.4, 20, 50)] // a float32 0.4 would make 49
    [InlineData("euler-a", 0.5, 2, 4, false)] // no editing: the second pass reuses the first's encoded texts
    public void The_passes_match_a1111s_written_out(string scheduler, double strength, int? hiresSteps, int total, bool edited = true)
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = GuidedLoop.Request(edited ? "a [red boat:green tree:1.5]" : "a red boat", "blurry", 4, scheduler, 5) with
        {
            Hires = new HiresFix { Width = 128, Height = 96, Strength = strength, Steps = hiresSteps },
        };
        var progress = new List<StepInfo>();
        using GenerateResult result = pipeline.Generate(request, new SyncProgress(progress.Add));

        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        GuidedLoop.Bank bank = GuidedLoop.Encode(_demo, [.. new[] { "blurry", "a red boat", "a green tree" }.Select(t => tokenizer.Tokenize(t, request.PromptSyntax))]);
        Func<int, int>[] Lengths(Func<int, int>[] rows) => [.. rows.Select(row => (Func<int, int>)(call => bank.Lengths[row(call)]))];
        // The first pass reads the first text throughout: 1.5 x its steps is past its end.
        Func<int, int>[] firstRows = [_ => 0, _ => 1];
        float[] first = GuidedLoop.Latents(_demo, request, bank, firstRows, Lengths(firstRows), [1.0]);

        const int h = 12, w = 16;
        var upscaled = new float[h * w * 4];
        fixed (float* src = first, dst = upscaled)
        {
            Interpolation.Resize(src, dst, 1, 8, 8, h, w, 4, InterpolationMode.Bilinear);
        }
        Scheduler second = Scheduler.Create(scheduler, _demo.Scheduler!);
        int steps = hiresSteps ?? 4;
        second.SetTimesteps(total, (total - steps) * second.Order);
        var noise = new TorchNoise(request.Seed);
        float[] latents = new float[upscaled.Length];
        second.AddNoise(upscaled, GuidedLoop.Draw(noise, h, w), second.FirstStep, latents);
        // (1.5 - 1) x the second pass's steps x the step multiplier; call c reads the first text while c <= that.
        int switchAt = (int)(0.5 * steps * second.Order);
        Func<int, int>[] secondRows = [_ => 0, call => call <= switchAt || !edited ? 1 : 2];
        GuidedLoop.Run(_demo, request, bank, secondRows, Lengths(secondRows), [1.0], second, latents, h, w, noise);

        Assert.Equal(latents, result.Latents.Span.ToArray());
        Assert.Equal([1, 96, 128, 3], result.Image.Shape.ToArray());
        int calls = 4 * second.Order - (second.Order - 1) + second.StepCount - second.FirstStep;
        Assert.Equal(Enumerable.Range(1, calls), progress.Select(p => p.Step));
        Assert.All(progress, p => Assert.Equal(calls, p.Total));
        Assert.True(progress.Zip(progress.Skip(1)).All(p => p.Second.Elapsed >= p.First.Elapsed)); // one clock over both passes
    }

    [Fact]
    public void The_second_pass_may_have_its_own_scheduler_prompts_and_upscaler()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = GuidedLoop.Request("a red boat", "blurry", 3, "euler", 7) with
        {
            Hires = new HiresFix
            {
                Width = 96, Height = 64, Strength = 0.6, Steps = 2, Scheduler = "heun", Prompt = "a green tree", NegativePrompt = "grainy",
                Upscaler = InterpolationMode.BicubicAntialiased,
            },
        };
        using GenerateResult result = pipeline.Generate(request);

        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        GuidedLoop.Bank bank = GuidedLoop.Encode(_demo, [.. new[] { "blurry", "a red boat", "grainy", "a green tree" }.Select(t => tokenizer.Tokenize(t, request.PromptSyntax))]);
        Func<int, int>[] Lengths(Func<int, int>[] rows) => [.. rows.Select(row => (Func<int, int>)(call => bank.Lengths[row(call)]))];
        Func<int, int>[] firstRows = [_ => 0, _ => 1], secondRows = [_ => 2, _ => 3];
        float[] first = GuidedLoop.Latents(_demo, request, bank, firstRows, Lengths(firstRows), [1.0]);
        var upscaled = new float[8 * 12 * 4];
        fixed (float* src = first, dst = upscaled)
        {
            Interpolation.Resize(src, dst, 1, 8, 8, 8, 12, 4, InterpolationMode.BicubicAntialiased);
        }
        Scheduler heun = Scheduler.Create("heun", _demo.Scheduler!);
        heun.SetTimesteps(3, 1 * 2); // int(2 / 0.6) = 3 steps, the last 2: from call 2
        var noise = new TorchNoise(request.Seed);
        float[] latents = new float[upscaled.Length];
        heun.AddNoise(upscaled, GuidedLoop.Draw(noise, 8, 12), heun.FirstStep, latents);
        GuidedLoop.Run(_demo, request, bank, secondRows, Lengths(secondRows), [1.0], heun, latents, 8, 12, noise);
        Assert.Equal(latents, result.Latents.Span.ToArray());

        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Hires = request.Hires! with { Scheduler = "fastest" } }));
        Assert.Contains("the hires fix's scheduler: unknown scheduler 'fastest'", e.Message);
        e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Hires = request.Hires! with { Upscaler = (InterpolationMode)6 } }));
        Assert.Contains("the hires fix's upscaler 6 is none of Bilinear, BilinearAntialiased, Bicubic", e.Message);
        e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Scheduler = "bogus" }));
        Assert.StartsWith("unknown scheduler 'bogus'", e.Message); // the first pass's, not blamed on the hires fix
    }

    /// <summary>
    /// The written-out first pass of a request for "a red boat" against "blurry", and the encoded texts, rows and
    /// lengths both passes read.
    /// </summary>
    private (GuidedLoop.Bank Bank, Func<int, int>[] Rows, Func<int, int>[] Lengths, float[] First) RedBoatFirstPass(GenerateRequest request)
    {
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        GuidedLoop.Bank bank = GuidedLoop.Encode(_demo, [.. new[] { "blurry", "a red boat" }.Select(t => tokenizer.Tokenize(t, request.PromptSyntax))]);
        Func<int, int>[] rows = [_ => 0, _ => 1];
        Func<int, int>[] lengths = [.. rows.Select(row => (Func<int, int>)(call => bank.Lengths[row(call)]))];
        return (bank, rows, lengths, GuidedLoop.Latents(_demo, request, bank, rows, lengths, [1.0]));
    }

    /// <summary>
    /// A cover size: the latents are upscaled to it, then cropped to the hires size, centred with the smaller half of an
    /// odd excess first (A1111's samples[..., ty // 2 : H - (ty + 1) // 2, tx // 2 : W - (tx + 1) // 2]); a cover size
    /// given by halves, below the size or off the VAE's grid is refused.
    /// </summary>
    [Fact]
    public void A_cover_size_is_upscaled_to_and_cropped_centred()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = GuidedLoop.Request("a red boat", "blurry", 2, "euler", 9) with
        {
            Hires = new HiresFix { Width = 88, Height = 64, CoverWidth = 128, CoverHeight = 72, Strength = 0.5, Steps = 2 },
        };
        using GenerateResult result = pipeline.Generate(request);

        (GuidedLoop.Bank bank, Func<int, int>[] rows, Func<int, int>[] lengths, float[] first) = RedBoatFirstPass(request);
        var covering = new float[9 * 16 * 4];
        fixed (float* src = first, dst = covering)
        {
            Interpolation.Resize(src, dst, 1, 8, 8, 9, 16, 4, InterpolationMode.Bilinear);
        }
        // 16 - 11 = 5 latents of excess width: 2 cut on the left, 3 on the right; 9 - 8 = 1 of height: 0 on top.
        var cropped = new float[8 * 11 * 4];
        for (int y = 0; y < 8; y++)
        {
            Array.Copy(covering, (y * 16 + 2) * 4, cropped, y * 11 * 4, 11 * 4);
        }
        Scheduler euler = Scheduler.Create("euler", _demo.Scheduler!);
        euler.SetTimesteps(4, 2); // int(2 / 0.5) = 4 steps, the last 2
        var noise = new TorchNoise(request.Seed);
        float[] latents = new float[cropped.Length];
        euler.AddNoise(cropped, GuidedLoop.Draw(noise, 8, 11), euler.FirstStep, latents);
        GuidedLoop.Run(_demo, request, bank, rows, lengths, [1.0], euler, latents, 8, 11, noise);
        Assert.Equal(latents, result.Latents.Span.ToArray());
        Assert.Equal([1, 64, 88, 3], result.Image.Shape.ToArray());

        foreach (HiresFix bad in new[] { request.Hires! with { CoverHeight = null }, request.Hires! with { CoverWidth = 80 }, request.Hires! with { CoverHeight = 70 } })
        {
            var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Hires = bad }));
            Assert.Contains("the hires fix's cover size must be given whole (width and height), multiples of 8 from 88x64", e.Message);
        }
    }

    /// <summary>
    /// An image upscaler (A1111's "Lanczos", "None", "Nearest"): the first pass decoded, made 8-bit and resized as A1111 does
    /// (<see cref="ImageUpscaling"/>, checked against Pillow), encoded again and its posterior sampled with a fresh
    /// generator's first draw, scaled, cropped from the cover size, then noised by another fresh one's first draw, as
    /// with a latent upscaler (A1111's ImageRNG); a latent upscaler beside it is refused.
    /// </summary>
    [Theory]
    [InlineData(ImageUpscaler.Lanczos)]
    [InlineData(ImageUpscaler.None)]
    [InlineData(ImageUpscaler.Nearest)]
    public void An_image_upscaler_resizes_the_decoded_first_pass(ImageUpscaler upscaler)
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = CheckPictureUpscaler(pipeline, new HiresFix { ImageUpscaler = upscaler }, decoded => ImageUpscaling.Upscale(decoded, 88, 88, upscaler));

        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Hires = request.Hires! with { Upscaler = InterpolationMode.Bicubic } }));
        Assert.Contains($"the hires fix has an image upscaler ({upscaler}) and a latent one (Bicubic)", e.Message);
        e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Hires = request.Hires! with { ImageUpscaler = (ImageUpscaler)3 } }));
        Assert.Contains("the hires fix's image upscaler 3 is none of Lanczos, None, Nearest", e.Message);
    }

    /// <summary>
    /// An ESRGAN model upscaler (the x4 network of esrgan-reference.json, tiles of 16 pixels overlapping by 4) takes the
    /// image upscalers' path with the model's passes in Upscaler.upscale (64 -> 256 -> Lanczos to 88); beside an image
    /// or latent upscaler it is refused.
    /// </summary>
    [Fact]
    public void A_model_upscaler_runs_on_the_decoded_first_pass()
    {
        using var folder = new Sd.Loaders.Tests.TempDirectory();
        using JsonDocument reference = ReferenceData.Json("esrgan-reference.json");
        using var model = Upscaling.EsrganUpscaler.Load(EsrganUpscalerTests.WriteModel(reference.RootElement.GetProperty("cases")[0], folder.Path), 16, 4);
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = CheckPictureUpscaler(pipeline, new HiresFix { ModelUpscaler = model }, decoded => ImageUpscaling.Upscale(decoded, 88, 88, model));

        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Hires = request.Hires! with { ImageUpscaler = ImageUpscaler.Lanczos } }));
        Assert.Contains($"the hires fix has a model upscaler ({model.Name}) and an image one (Lanczos)", e.Message);
        e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Hires = request.Hires! with { Upscaler = InterpolationMode.Nearest } }));
        Assert.Contains("and a latent one (Nearest)", e.Message);
    }

    /// <summary>
    /// The 88x88-covering hires pass of the red-boat request with <paramref name="upscaler"/>'s picture upscaler, against
    /// the same steps written out with <paramref name="upscale"/>; returns the request.
    /// </summary>
    private GenerateRequest CheckPictureUpscaler(StableDiffusionPipeline pipeline, HiresFix upscaler, Func<Tensor, Tensor> upscale)
    {
        GenerateRequest request = GuidedLoop.Request("a red boat", "blurry", 2, "euler", 13) with
        {
            Hires = upscaler with { Width = 88, Height = 64, CoverWidth = 88, CoverHeight = 88, Strength = 0.5, Steps = 2 },
        };
        using GenerateResult result = pipeline.Generate(request);

        (GuidedLoop.Bank bank, Func<int, int>[] rows, Func<int, int>[] lengths, float[] first) = RedBoatFirstPass(request);
        float scaling = (float)DemoModel.Vae.ScalingFactor;
        using var vae = new AutoencoderKL(DemoModel.Vae, _demo.Weights(ModelComponent.Vae));
        using Tensor latents8 = Tensor.Allocate([1, 8, 8, 4]), decoded = Tensor.Allocate([1, 64, 64, 3]);
        for (int i = 0; i < first.Length; i++) latents8.Span[i] = first[i] / scaling;
        vae.Decode(latents8, decoded);
        using Tensor picture = upscale(decoded);
        using Tensor mean = Tensor.Allocate([1, 11, 11, 4]), logvar = Tensor.Allocate([1, 11, 11, 4]), sample = Tensor.Allocate([1, 11, 11, 4]);
        vae.Encode(picture, mean, logvar);
        using Tensor draw = Tensor.Allocate([1, 11, 11, 4]);
        GuidedLoop.Draw(new TorchNoise(request.Seed), 11, 11).CopyTo(draw.Span);
        AutoencoderKL.SamplePosterior(mean, logvar, draw, sample);
        // 11 - 8 = 3 latents of excess height: 1 cut on top, 2 at the bottom.
        var cropped = new float[8 * 11 * 4];
        for (int i = 0; i < cropped.Length; i++) cropped[i] = sample.Span[11 * 4 + i] * scaling;
        Scheduler euler = Scheduler.Create("euler", _demo.Scheduler!);
        euler.SetTimesteps(4, 2);
        float[] start = new float[cropped.Length];
        var noise = new TorchNoise(request.Seed);
        euler.AddNoise(cropped, GuidedLoop.Draw(noise, 8, 11), euler.FirstStep, start);
        GuidedLoop.Run(_demo, request, bank, rows, lengths, [1.0], euler, start, 8, 11, noise);
        Assert.Equal(start, result.Latents.Span.ToArray());
        return request;
    }

    /// <summary>Strengths are doubles, as the Python floats of diffusers and A1111: int(20 x 0.7) is 14 steps.</summary>
    [Fact]
    public void Img2img_runs_the_steps_a_python_float_strength_gives()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = GuidedLoop.Request("a red boat", "", 20, "euler", 2);
        using GenerateResult picture = pipeline.Generate(request with { Steps = 1 });
        using GenerateResult painted = SeededRuns.Counted(pipeline, request with { InitImage = picture.Image, Strength = 0.7 }, out List<StepInfo> calls);
        Assert.Equal(14, calls.Count); // a float32 0.7 (0.69999999) would run 13
    }

    [Fact]
    public void A_batch_reproduces_each_image_alone_by_its_seed()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = GuidedLoop.Request("a red boat", "", 3, "euler-a", 9) with { Hires = new HiresFix { Width = 96, Height = 96 } };
        IReadOnlyList<GenerateResult> batch = pipeline.GenerateBatch(request, 2);
        try
        {
            using GenerateResult alone = pipeline.Generate(request with { Seed = 10 });
            Assert.True(alone.Latents.Span.SequenceEqual(batch[1].Latents.Span));
            Assert.False(batch[0].Latents.Span.SequenceEqual(batch[1].Latents.Span));
            Assert.True(Tensor.AllFinite(batch[0].Image.Span));
        }
        finally
        {
            foreach (GenerateResult result in batch) result.Dispose();
        }
    }

    [Theory]
    [InlineData(100, 64, 0.7, null, "positive multiples of 8")]
    [InlineData(128, 128, 0.0, null, "strength must be in (0, 1]")]
    [InlineData(128, 128, 1.5, null, "strength must be in (0, 1]")]
    [InlineData(128, 128, double.NaN, null, "strength must be in (0, 1]")]
    [InlineData(128, 128, 0.5, 600, "a schedule of 1200 steps")]
    [InlineData(128, 128, 0.5, 0, "0 steps")]
    public void A_hires_fix_the_passes_cannot_run_is_refused_before_any_work(int width, int height, double strength, int? steps, string expected)
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = GuidedLoop.Request("a boat", "", 4, "euler", 1) with
        {
            Hires = new HiresFix { Width = width, Height = height, Strength = strength, Steps = steps },
        };
        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(request));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_hires_fix_follows_txt2img_only()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        using Tensor picture = Tensor.Allocate([1, 64, 64, 3]);
        GenerateRequest request = GuidedLoop.Request("a boat", "", 4, "euler", 1) with
        {
            InitImage = picture, Hires = new HiresFix { Width = 128, Height = 128 },
        };
        Assert.Contains("follows a txt2img pass", Assert.Throws<ArgumentException>(() => pipeline.Validate(request)).Message);
    }
}
