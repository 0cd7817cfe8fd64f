using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// Inpainting with a 9-channel UNet (latents, mask, masked-picture latents): the pipeline must give the final latents
/// of <see cref="InpaintReference"/>, diffusers' algorithm transcribed step by step, in every case of the generator
/// draw order (strength 1 or below, latents drawn or given); and the inputs no UNet width allows are refused.
/// The picture is non-square and the mask has values either side of 0.5, so a transposed size or a missed
/// binarization shows.
/// </summary>
public sealed class InpaintUNetTests(InpaintModels models, ITestOutputHelper output) : IClassFixture<InpaintModels>
{
    internal const int Width = 48, Height = 32;

    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a red cube on a table", NegativePrompt = "blurry", Steps = 8, GuidanceScale = 7.5f,
        Width = Width, Height = Height, Seed = 1234,
    };

    [FixtureTheory]
    [InlineData("euler-a", 1f, false)]
    [InlineData("ddim", 0.75f, false)]
    [InlineData("euler-a", 0.75f, false)]
    [InlineData("euler-a", 0.75f, true)]
    [InlineData("heun", 0.75f, false)] // starts at call 2k
    [InlineData("dpm2-karras", 0.5f, true)]
    [InlineData("ddim", 0.75f, false, MaskedLatents.Noise)] // A1111's latent noise
    [InlineData("euler-a", 0.75f, false, MaskedLatents.Zeros)] // and latent nothing
    public void A_9_channel_unet_gives_diffusers_latents(string scheduler, float strength, bool givenLatents, MaskedLatents fill = MaskedLatents.Picture)
    {
        using Tensor picture = Picture();
        using Tensor mask = Mask();
        float[]? latents = null;
        if (givenLatents)
        {
            latents = new float[4 * (Height / 2) * (Width / 2)];
            new TorchNoise(99).Next(latents);
        }
        GenerateRequest request = Request with
        {
            Scheduler = scheduler, Strength = strength, InitialLatents = latents, InitImage = picture, Mask = mask, MaskedLatents = fill,
        };
        string model = models.PathFor(9);
        float[] expected = InpaintReference.FinalLatents(model, request, picture, mask);

        using var pipeline = StableDiffusionPipeline.Load(model);
        using GenerateResult result = pipeline.Generate(request);

        // The same operations in the same order: only float rounding may differ.
        output.WriteLine(Compare.AssertClose(expected, result.Latents.Span, 1e-6, $"{scheduler} strength {strength} latents given {givenLatents} {fill}"));
    }

    /// <summary>A batch encodes the picture and the masked picture once: every image equals its single run.</summary>
    [FixtureFact]
    public void A_batch_of_9_channel_inpainting_equals_its_single_runs()
    {
        using Tensor picture = Picture();
        using Tensor mask = Mask();
        GenerateRequest request = Request with { Scheduler = "euler-a", Strength = 0.75, InitImage = picture, Mask = mask, Steps = 3 };
        using var pipeline = StableDiffusionPipeline.Load(models.PathFor(9));
        IReadOnlyList<GenerateResult> batch = pipeline.GenerateBatch(request, 2);
        try
        {
            for (int i = 0; i < batch.Count; i++)
            {
                using GenerateResult alone = pipeline.Generate(request with { Seed = request.Seed + (ulong)i });
                Assert.True(alone.Latents.Span.SequenceEqual(batch[i].Latents.Span), $"image {i}: latents differ from the single run");
            }
        }
        finally
        {
            foreach (GenerateResult result in batch) result.Dispose();
        }
    }

    [FixtureFact]
    public void Inputs_no_unet_width_allows_are_refused_with_clear_errors()
    {
        using Tensor picture = Picture();
        using Tensor mask = Mask();
        using Tensor smallMask = Tensor.Allocate([1, Height / 2, Width / 2, 1]);
        using var nine = StableDiffusionPipeline.Load(models.PathFor(9));
        ArgumentException wrongMask = Assert.Throws<ArgumentException>(() => nine.Generate(Request with { InitImage = picture, Mask = smallMask }));
        Assert.Contains($"the mask must be [1, {Height}, {Width}, 1]", wrongMask.Message);
        ArgumentException noMask = Assert.Throws<ArgumentException>(() => nine.Generate(Request with { InitImage = picture }));
        Assert.Contains("an inpainting UNet: give an init image and a mask", noMask.Message);
        Assert.Throws<ArgumentException>(() => nine.Generate(Request));
        ArgumentException noStep = Assert.Throws<ArgumentException>(() => nine.Generate(Request with { InitImage = picture, Mask = mask, Strength = 0.1 }));
        Assert.Contains("leaves no step of 8", noStep.Message);

        using var five = StableDiffusionPipeline.Load(models.PathFor(5));
        NotSupportedException wrongWidth = Assert.Throws<NotSupportedException>(() => five.Generate(Request with { InitImage = picture, Mask = mask }));
        Assert.Contains("inpainting needs a UNet with 4 input channels (latents) or 9", wrongWidth.Message);
        Assert.Contains("this one takes 5", wrongWidth.Message);
    }

    /// <summary>A seeded picture in [-1, 1], NHWC [1, Height, Width, 3].</summary>
    internal static Tensor Picture() => RandomTensors.Uniform([1, Height, Width, 3], 7);

    /// <summary>A mask of tenths from 0 to 1 in a diagonal pattern, NHWC [1, Height, Width, 1].</summary>
    internal static Tensor Mask()
    {
        Tensor mask = Tensor.Allocate([1, Height, Width, 1]);
        for (int y = 0; y < Height; y++)
        {
            for (int x = 0; x < Width; x++) mask.Span[y * Width + x] = (x * 7 + y * 3) % 11 / 10f;
        }
        return mask;
    }
}
