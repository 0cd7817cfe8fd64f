using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Engine.Vae;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// Requests and arguments that must be refused, naming what is wrong, before any kernel sees them: an image size
/// whose latent count overflows an int once reached the latents' layout conversion as a short array, a timestep
/// past the schedule indexed past the alphas, and an image index past a batch read past the tensor.
/// </summary>
public sealed unsafe class HostileRequestTests
{
    private static readonly GenerateRequest Request = new() { Prompt = "p", Steps = 2, Width = 64, Height = 64, Seed = 1 };

    [Fact]
    public void Sizes_past_the_largest_side_are_refused_before_anything_is_allocated()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        // 32769 x 32768 latents x 4 channels wraps an int to 131072.
        var e = Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { Width = 262152, Height = 262144 }));
        Assert.Contains($"at most {StableDiffusionPipeline.MaxImageSide}, got 262152x262144", e.Message);
        Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { Width = StableDiffusionPipeline.MaxImageSide + 8 }));
    }

    [Fact]
    public void Guidance_must_be_finite_and_its_rescale_non_negative()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        Assert.Contains("guidance", Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { GuidanceScale = float.NaN })).Message);
        Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { GuidanceScale = float.PositiveInfinity }));
        Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { GuidanceRescale = -0.5f }));
        var e = Assert.Throws<ArithmeticException>(() => pipeline.Generate(Request with { GuidanceScale = 3e38f }));
        Assert.StartsWith("the latents overflowed float32 at step 1 of 2: guidance scale 3E+38", e.Message);
    }

    [Fact]
    public void Batch_counts_are_bounded()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.GenerateBatch(Request, StableDiffusionPipeline.MaxBatchCount + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.GenerateBatch(Request, 0));
    }

    [Theory]
    [InlineData("ddim")]
    [InlineData("pndm")]
    public void A_step_count_whose_schedule_passes_the_last_timestep_is_refused(string scheduler)
    {
        // SD 1.x's leading spacing (DDIM's and PNDM's default) with steps_offset 1 begins 1000 steps at timestep 1000,
        // one past the table.
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.Generate(Request with { Scheduler = scheduler, Steps = 1000 }));
        Assert.Contains("begin at timestep 1000, past the last of the 1000 training timesteps", e.Message);
    }

    [Fact]
    public void A_step_count_that_repeats_a_noise_level_is_refused_when_the_schedule_is_set()
    {
        // 1000 DPM++ steps space 1001 points over 999 timesteps and round two of them to 500. The multistep solver
        // divides by the gap between them; without the check this ran 500 steps, then overflowed.
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.Generate(Request with { Scheduler = "dpm++-2m", Steps = 1000 }));
        Assert.Contains("give steps 500 and 501 the noise levels", e.Message);
    }

    [Fact]
    public void An_img2img_run_starting_past_the_repeated_noise_level_runs()
    {
        // Strength 0.002 of 1000 steps runs the last 2, past the repeated pair, as diffusers does; strength 0.6 runs
        // over it and is refused.
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        using Tensor picture = Tensor.Allocate([1, 64, 64, 3]);
        GenerateRequest img2img = Request with { Scheduler = "dpm++-2m", Steps = 1000, InitImage = picture };
        using GenerateResult result = pipeline.Generate(img2img with { Strength = 0.002 });
        Assert.True(float.IsFinite(result.Image.Data[0]));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.Generate(img2img with { Strength = 0.6 }));
        Assert.Contains("give steps 500 and 501 the noise levels", e.Message);
    }

    [Fact]
    public void An_image_index_past_the_batch_is_refused()
    {
        using Tensor image = Tensor.Allocate([1, 2, 2, 3]);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageConversion.ToRgb8(image, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageConversion.ToRgb8(image, -1));
        Assert.Equal(12, ImageConversion.ToRgb8(image, 0).Pixels.Length);
    }

    [Fact]
    public void Empty_inputs_are_refused_naming_the_argument()
    {
        using ModelSource demo = ModelSource.Demo();
        using var unet = new UNet2DConditionModel(DemoModel.UNet, demo.Weights(ModelComponent.Unet));
        int width = DemoModel.UNet.CrossAttentionDim[0];
        using Tensor noImages = Tensor.Allocate([0, 8, 8, 4]);
        using Tensor sample = Tensor.Allocate([1, 8, 8, 4]);
        using Tensor noTokens = Tensor.Allocate([1, 0, width]);
        using Tensor context = Tensor.Allocate([1, 7, width]);
        using Tensor output = Tensor.Allocate([1, 8, 8, 4]);
        Assert.Equal("sample", Assert.Throws<ArgumentException>(() => unet.Forward(noImages, [1f], context, output)).ParamName);
        Assert.Equal("context", Assert.Throws<ArgumentException>(() => unet.Forward(sample, [1f], noTokens, output)).ParamName);
        using var vae = new AutoencoderKL(DemoModel.Vae, demo.Weights(ModelComponent.Vae));
        using Tensor noRows = Tensor.Allocate([1, 0, 8, 4]);
        using Tensor image = Tensor.Allocate([1, 0, 64, 3]);
        Assert.Equal("latents", Assert.Throws<ArgumentException>(() => vae.Decode(noRows, image)).ParamName);
    }

    [Fact]
    public void A_text_context_width_per_block_is_not_supported()
    {
        // One context buffer feeds every block; a wider block would read its rows past the buffer's end.
        using ModelSource demo = ModelSource.Demo();
        var config = DemoModel.UNet with { CrossAttentionDim = [DemoModel.UNet.CrossAttentionDim[0], .. Enumerable.Repeat(1024, DemoModel.UNet.CrossAttentionDim.Length - 1)] };
        var e = Assert.Throws<NotSupportedException>(() => new UNet2DConditionModel(config, demo.Weights(ModelComponent.Unet)).Dispose());
        Assert.Contains("per-block cross_attention_dim", e.Message);
    }

    [Theory]
    [InlineData("timestep_post_act")]
    [InlineData("time_embedding_act_fn")]
    public void An_activation_on_the_time_embedding_is_not_supported(string key)
    {
        // Neither adds weights, so only the config tells: running without it would be silently wrong.
        using ModelSource demo = ModelSource.Demo();
        UNetConfig config = key == "timestep_post_act" ? DemoModel.UNet with { TimestepPostAct = "mish" } : DemoModel.UNet with { TimeEmbeddingActFn = "mish" };
        var e = Assert.Throws<NotSupportedException>(() => new UNet2DConditionModel(config, demo.Weights(ModelComponent.Unet)).Dispose());
        Assert.Contains($"{key} 'mish'", e.Message);
        using var dir = new TempDirectory();
        string json = dir.WriteText("config.json", $$"""{"{{key}}": "mish", "time_cond_proj_dim": 256}""");
        UNetConfig loaded = UNetConfig.Load(json);
        Assert.Equal("mish", key == "timestep_post_act" ? loaded.TimestepPostAct : loaded.TimeEmbeddingActFn);
        Assert.Equal(256, loaded.TimeCondProjDim);
        File.WriteAllText(json, """{"time_cond_proj_dim": 3}""");
        Assert.Contains("time_cond_proj_dim must be at least 4", Assert.Throws<InvalidFileException>(() => UNetConfig.Load(json)).Message);
    }

    [Fact]
    public void A_downsampler_padded_only_right_and_bottom_is_not_supported()
    {
        // diffusers' downsample_padding 0 pads (0, 1, 0, 1): odd sizes would shrink differently from the 1 Sd runs.
        using ModelSource demo = ModelSource.Demo();
        var e = Assert.Throws<NotSupportedException>(() => new UNet2DConditionModel(DemoModel.UNet with { DownsamplePadding = 0 }, demo.Weights(ModelComponent.Unet)).Dispose());
        Assert.Contains("downsample_padding 0", e.Message);
    }

    [Fact]
    public void A_null_request_or_latents_an_img2img_run_would_ignore_are_refused()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        Assert.Equal("request", Assert.Throws<ArgumentNullException>(() => pipeline.Generate(null!)).ParamName);
        using Tensor picture = Tensor.Allocate([1, 64, 64, 3]);
        var e = Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { InitImage = picture, InitialLatents = new float[4 * 8 * 8] }));
        Assert.Contains("img2img (an init image without a mask) starts from the picture", e.Message);
        Assert.Equal([1, 4, 8, 8], pipeline.InitialLatentsShape(64, 64));
        float[] latents = new float[4 * 8 * 8];
        latents[5] = float.NaN;
        Assert.Contains("hold NaN at 5; they must be finite", Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { InitialLatents = latents })).Message);
    }

    [Fact]
    public void A_disposed_tensor_and_its_reshapes_refuse_their_memory()
    {
        Tensor tensor = Tensor.Allocate([2, 3]);
        Tensor reshaped = tensor.Reshape([6]);
        tensor.Dispose();
        Assert.Throws<ObjectDisposedException>(() => tensor.Span[0]);
        Assert.Throws<ObjectDisposedException>(() => (nint)reshaped.Data);
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        Tensor picture = Tensor.Allocate([1, 64, 64, 3]);
        picture.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pipeline.Generate(Request with { InitImage = picture }));
    }

    [Fact]
    public void Tensor_axes_and_views_are_checked()
    {
        using Tensor tensor = Tensor.Allocate([2, 3]);
        Assert.Equal(3, tensor.Dim(-1));
        Assert.Equal("axis", Assert.Throws<ArgumentOutOfRangeException>(() => tensor.Dim(2)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => tensor.Dim(-3));
        Assert.Throws<ArgumentNullException>(() => Tensor.View(null, [1]));
    }

    [Fact]
    public void Picture_conversions_refuse_null()
    {
        Assert.Equal("picture", Assert.Throws<ArgumentNullException>(() => ImageConversion.FromPng(null!)).ParamName);
        Assert.Equal("picture", Assert.Throws<ArgumentNullException>(() => ImageConversion.MaskFromPng(null!)).ParamName);
        Assert.Equal("image", Assert.Throws<ArgumentNullException>(() => ImageConversion.ToRgb8(null!, 0)).ParamName);
    }

    [Theory]
    [InlineData("ddim")]
    [InlineData("pndm")]
    [InlineData("euler")]
    [InlineData("euler-a")]
    [InlineData("lms")]
    [InlineData("dpm++-2m")]
    [InlineData("heun")]
    [InlineData("dpm2")]
    [InlineData("dpm2-a")]
    [InlineData("dpm++-2s-a")]
    [InlineData("dpm++-sde")]
    [InlineData("dpm++-3m-sde")]
    [InlineData("dpm++-2m-sde-heun")]
    [InlineData("restart")]
    [InlineData("dpm-fast")]
    [InlineData("unipc-a1111")]
    [InlineData("lcm")]
    public void Scheduler_calls_check_the_step_and_the_lengths(string name)
    {
        Scheduler scheduler = Scheduler.Create(name, new SchedulerConfig { SkipPrkSteps = true });
        float[] four = new float[4], two = new float[2];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.AddNoise(four, four, 0, four));
        Assert.Contains("call SetTimesteps first", e.Message);
        scheduler.SetTimesteps(5);
        int past = scheduler.StepCount;
        Assert.Equal("stepIndex", Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.AddNoise(four, four, past, four)).ParamName);
        Assert.Equal("noise", Assert.Throws<ArgumentException>(() => scheduler.AddNoise(four, two, 0, four)).ParamName);
        Assert.Equal("original", Assert.Throws<ArgumentException>(() => scheduler.AddNoise(two, four, 0, four)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.ScaleModelInput(past));
        Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.ScaleModelInput(-1, four, four));
        Assert.Equal("sample", Assert.Throws<ArgumentException>(() => scheduler.ScaleModelInput(0, two, four)).ParamName);
        scheduler.AddNoise(four, four, past - 1, four);
        scheduler.ScaleModelInput(0, four, four);
    }

    [Fact]
    public void Models_used_after_Dispose_throw_instead_of_reading_freed_weights()
    {
        using ModelSource demo = ModelSource.Demo();
        var unet = new UNet2DConditionModel(DemoModel.UNet, demo.Weights(ModelComponent.Unet));
        int width = DemoModel.UNet.CrossAttentionDim[0];
        using Tensor sample = Tensor.Allocate([1, 8, 8, 4]);
        using Tensor context = Tensor.Allocate([1, 7, width]);
        using Tensor output = Tensor.Allocate([1, 8, 8, 4]);
        unet.Forward(sample, [1f], context, output);
        unet.Dispose();
        Assert.Throws<ObjectDisposedException>(() => unet.Forward(sample, [1f], context, output));
        Assert.Equal(0, unet.RunBufferBytes); // refused before planning buffers again

        var vae = new AutoencoderKL(DemoModel.Vae, demo.Weights(ModelComponent.Vae));
        using Tensor image = Tensor.Allocate([1, 8 * vae.Factor, 8 * vae.Factor, 3]);
        vae.Decode(sample, image);
        vae.Dispose();
        Assert.Throws<ObjectDisposedException>(() => vae.Decode(sample, image));

        var clip = new Sd.Engine.Text.ClipTextModel(demo.TextEncoder!, demo.Weights(ModelComponent.TextEncoder));
        long[] ids = [1, 2, 3];
        clip.Encode(ids, 1).Dispose();
        clip.Dispose();
        Assert.Throws<ObjectDisposedException>(() => clip.Encode(ids, 1).Dispose());
    }

    [Fact]
    public void A_pipeline_used_after_Dispose_throws()
    {
        var pipeline = StableDiffusionPipeline.LoadDemo();
        pipeline.Generate(Request).Dispose();
        pipeline.Dispose();
        pipeline.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pipeline.Generate(Request));
    }

    [Fact]
    public void Disposing_a_pipeline_stops_a_generation_on_another_thread_before_freeing_its_weights()
    {
        var pipeline = StableDiffusionPipeline.LoadDemo();
        using var stepped = new ManualResetEventSlim();
        var progress = new SyncProgress(_ => stepped.Set());
        Task<GenerateResult> running = Task.Run(() => pipeline.Generate(Request with { Steps = 1000, Scheduler = "euler" }, progress));
        Assert.True(stepped.Wait(TimeSpan.FromMinutes(1)), "the generation never reported a step");
        pipeline.Dispose();
        var e = Assert.Throws<AggregateException>(() => running.Wait(TimeSpan.FromMinutes(1)));
        Assert.StartsWith("the pipeline was disposed while it generated", Assert.IsType<ObjectDisposedException>(e.InnerException).Message);
        Assert.True(pipeline.IsFreed);
    }

    [Fact]
    public void Dispose_does_not_wait_for_a_call_whose_callback_waits_for_the_disposing_thread()
    {
        // A UI disposing its pipeline while the progress callback Invokes onto the UI thread: a Dispose that waited for
        // the call would never return.
        var pipeline = StableDiffusionPipeline.LoadDemo();
        using var inCallback = new ManualResetEventSlim();
        using var disposed = new ManualResetEventSlim();
        var progress = new SyncProgress(_ =>
        {
            inCallback.Set();
            disposed.Wait(TimeSpan.FromMinutes(1));
        });
        Task<GenerateResult> running = Task.Run(() => pipeline.Generate(Request with { Steps = 1000, Scheduler = "euler" }, progress));
        Assert.True(inCallback.Wait(TimeSpan.FromMinutes(1)), "the generation never reported a step");
        var disposing = new Thread(pipeline.Dispose);
        disposing.Start();
        Assert.True(disposing.Join(TimeSpan.FromSeconds(30)), "Dispose waited for the call");
        Assert.False(pipeline.IsFreed); // the call is still in its callback
        disposed.Set();
        Assert.Throws<AggregateException>(() => running.Wait(TimeSpan.FromMinutes(1)));
        Assert.True(pipeline.IsFreed);
    }

    [Fact]
    public void A_module_called_from_two_threads_runs_one_call_at_a_time()
    {
        // The calls share the module's run buffers: run together, one overwrote the other's activations (wrong
        // outputs) or freed them for its own shape (a crash).
        using ModelSource demo = ModelSource.Demo();
        using var unet = new UNet2DConditionModel(DemoModel.UNet, demo.Weights(ModelComponent.Unet));
        int width = DemoModel.UNet.CrossAttentionDim[0];
        float[] Run(int side)
        {
            using Tensor sample = Tensor.Allocate([1, side, side, 4]);
            for (int i = 0; i < sample.Length; i++) sample.Data[i] = MathF.Sin(i * 0.37f + side);
            using Tensor context = Tensor.Allocate([1, 7, width]);
            for (int i = 0; i < context.Length; i++) context.Data[i] = MathF.Cos(i * 0.11f);
            using Tensor output = Tensor.Allocate([1, side, side, 4]);
            unet.Forward(sample, [500f], context, output);
            return output.Span.ToArray();
        }
        float[] small = Run(8), large = Run(16);
        int mismatches = 0;
        var threads = new[] { 8, 16 }.Select(side => new Thread(() =>
        {
            for (int i = 0; i < 10; i++)
            {
                if (!Run(side).AsSpan().SequenceEqual(side == 8 ? small : large)) Interlocked.Increment(ref mismatches);
            }
        })).ToArray();
        foreach (Thread thread in threads) thread.Start();
        foreach (Thread thread in threads) Assert.True(thread.Join(TimeSpan.FromMinutes(2)), "a call never finished");
        Assert.Equal(0, mismatches);
    }

    [Fact]
    public void A_pipeline_disposed_or_called_again_from_its_own_progress_callback_fails_cleanly()
    {
        using (var pipeline = StableDiffusionPipeline.LoadDemo())
        {
            var nested = new SyncProgress(_ => pipeline.Generate(Request).Dispose());
            var e = Assert.Throws<InvalidOperationException>(() => pipeline.Generate(Request, nested));
            Assert.StartsWith("the pipeline was called from inside its own call", e.Message);
            pipeline.Generate(Request).Dispose(); // still usable
        }
        var disposing = StableDiffusionPipeline.LoadDemo(null, new PipelineOptions { Memory = PipelineMemory.Sequential });
        var disposeInCallback = new SyncProgress(_ =>
        {
            disposing.Dispose();
            Assert.False(disposing.IsFreed); // not under the running call
        });
        Assert.Throws<ObjectDisposedException>(() => disposing.GenerateBatch(Request, 2, disposeInCallback));
        Assert.True(disposing.IsFreed); // by the call, as it left
        Assert.Throws<ObjectDisposedException>(() => disposing.Generate(Request));
    }
}
