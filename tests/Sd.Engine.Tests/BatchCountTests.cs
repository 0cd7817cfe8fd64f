using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;

namespace Sd.Engine.Tests;

/// <summary>
/// Batch count on the built-in demo model (no fixtures needed): image i of a batch is exactly the single run with seed
/// Seed + i, whatever the memory mode, and the batch-only rules are enforced.
/// </summary>
public sealed class BatchCountTests
{
    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a lighthouse", NegativePrompt = "fog", Steps = 3, Width = 64, Height = 48, Scheduler = "dpm++-2m", Seed = 100,
    };

    private static byte[] Rgb(GenerateResult result) => ImageConversion.ToRgb8(result.Image, 0).Pixels;

    [Theory]
    [InlineData(PipelineMemory.Resident)]
    [InlineData(PipelineMemory.Sequential)]
    public void Image_i_of_a_batch_is_the_single_run_with_seed_plus_i(PipelineMemory memory)
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions { Memory = memory });
        var reports = new List<StepInfo>();
        IReadOnlyList<GenerateResult> batch = pipeline.GenerateBatch(Request, 3, new SyncProgress(reports.Add));
        try
        {
            Assert.Equal(3, batch.Count);
            for (int i = 0; i < batch.Count; i++)
            {
                using GenerateResult alone = pipeline.Generate(Request with { Seed = Request.Seed + (ulong)i });
                Assert.Equal(Request.Seed + (ulong)i, batch[i].Seed);
                Assert.True(alone.Latents.Span.SequenceEqual(batch[i].Latents.Span), $"image {i}: latents differ from the single run");
                Assert.Equal(Rgb(alone), Rgb(batch[i]));
            }
            Assert.NotEqual(Rgb(batch[0]), Rgb(batch[1]));
            // Every image reports its own steps, in order, with its index.
            Assert.Equal(9, reports.Count);
            for (int r = 0; r < reports.Count; r++)
            {
                Assert.Equal((r / 3, 3, r % 3 + 1, 3), (reports[r].Image, reports[r].Images, reports[r].Step, reports[r].Total));
            }
            // The prompt is encoded once, for the whole batch.
            Assert.True(batch[0].TextEncoding > TimeSpan.Zero);
            Assert.Equal(TimeSpan.Zero, batch[1].TextEncoding);
            if (memory == PipelineMemory.Sequential)
            {
                // Each component is loaded once per batch: by the first image that needs it, never by the others.
                Assert.True(batch[0].Loading > TimeSpan.Zero);
                Assert.Equal(TimeSpan.Zero, batch[1].Loading);
                Assert.Equal(TimeSpan.Zero, batch[2].Loading);
            }
        }
        finally
        {
            foreach (GenerateResult result in batch) result.Dispose();
        }
    }

    [Fact]
    public void A_batch_of_img2img_reuses_the_picture_with_each_seed()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions { Memory = PipelineMemory.Sequential });
        using GenerateResult source = pipeline.Generate(Request);
        GenerateRequest img2img = Request with { InitImage = source.Image, Strength = 0.6, Seed = 5 };
        IReadOnlyList<GenerateResult> batch = pipeline.GenerateBatch(img2img, 2);
        try
        {
            using GenerateResult second = pipeline.Generate(img2img with { Seed = 6 });
            Assert.True(second.Latents.Span.SequenceEqual(batch[1].Latents.Span));
            Assert.Equal(TimeSpan.Zero, batch[1].Loading);
        }
        finally
        {
            foreach (GenerateResult result in batch) result.Dispose();
        }
    }

    /// <summary>The picture is VAE-encoded once per batch: each image's own posterior draw from the shared moments.</summary>
    [Fact]
    public void A_batch_of_inpainting_equals_its_single_runs()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        using GenerateResult source = pipeline.Generate(Request);
        using Tensor mask = Tensor.Allocate([1, Request.Height, Request.Width, 1]);
        for (int y = 0; y < Request.Height; y++)
        {
            for (int x = 0; x < Request.Width; x++) mask.Span[y * Request.Width + x] = x < Request.Width / 2 ? 1f : 0f;
        }
        GenerateRequest inpaint = Request with { InitImage = source.Image, Mask = mask, Strength = 0.75, Seed = 9 };
        IReadOnlyList<GenerateResult> batch = pipeline.GenerateBatch(inpaint, 3);
        try
        {
            for (int i = 0; i < batch.Count; i++)
            {
                using GenerateResult alone = pipeline.Generate(inpaint with { Seed = 9 + (ulong)i });
                Assert.True(alone.Latents.Span.SequenceEqual(batch[i].Latents.Span), $"image {i}: latents differ from the single run");
            }
        }
        finally
        {
            foreach (GenerateResult result in batch) result.Dispose();
        }
    }

    [Fact]
    public void Bad_batch_requests_are_refused_before_any_work()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        ArgumentOutOfRangeException zero = Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.GenerateBatch(Request, 0));
        Assert.Equal("count", zero.ParamName);
        ArgumentException latents = Assert.Throws<ArgumentException>(() => pipeline.GenerateBatch(Request with { InitialLatents = new float[4 * 6 * 8] }, 2));
        Assert.Contains("batch count of 2", latents.Message);
        Assert.Throws<ArgumentException>(() => pipeline.GenerateBatch(Request with { Noise = new TorchNoise(1) }, 2));
    }
}
