using Sd.Engine.Pipelines;

namespace Sd.Engine.Tests;

/// <summary>
/// Demo-pipeline runs for scheduler tests: counted by their UNet calls, from fixed initial latents (for where a
/// scheduler's noise comes from), and part-way starts from a picture.
/// </summary>
internal static class SeededRuns
{
    /// <summary>
    /// Whether <paramref name="request"/> (64x64) run from the same initial latents (sin(i) x 14, about the scale of
    /// noise at the top level) with its seed and with <paramref name="otherSeed"/> ends at different latents: whether
    /// its scheduler draws noise from the seed's generator.
    /// </summary>
    public static bool SeedsDiffer(StableDiffusionPipeline pipeline, GenerateRequest request, ulong otherSeed)
    {
        float[] latents = new float[4 * 8 * 8];
        for (int i = 0; i < latents.Length; i++)
        {
            latents[i] = MathF.Sin(i) * 14f;
        }
        GenerateRequest given = request with { InitialLatents = latents };
        using GenerateResult first = pipeline.Generate(given), second = pipeline.Generate(given with { Seed = otherSeed });
        return !first.Latents.Span.SequenceEqual(second.Latents.Span);
    }

    /// <summary>
    /// Runs <paramref name="request"/> and checks that its latents stayed finite; <paramref name="calls"/> are its
    /// progress reports, one per UNet call.
    /// </summary>
    public static GenerateResult Counted(StableDiffusionPipeline pipeline, GenerateRequest request, out List<StepInfo> calls)
    {
        var reports = new List<StepInfo>();
        GenerateResult result = pipeline.Generate(request, new SyncProgress(reports.Add));
        if (!Tensors.Tensor.AllFinite(result.Latents.Span))
        {
            result.Dispose();
            Assert.Fail($"{request.Scheduler}: the latents are not all finite");
        }
        calls = reports;
        return result;
    }

    /// <summary>
    /// Inpaints the top half of <paramref name="picture"/> (64x64) at <paramref name="strength"/> with a 4-channel UNet,
    /// which blends the picture back after each call, noised to the next call's level; returns how many calls ran,
    /// after checking the latents stayed finite.
    /// </summary>
    public static int InpaintingCalls(StableDiffusionPipeline pipeline, GenerateRequest request, Tensors.Tensor picture, double strength)
    {
        using Tensors.Tensor mask = Tensors.Tensor.Allocate([1, 64, 64, 1]);
        mask.Span[..(64 * 32)].Fill(1f);
        using GenerateResult inpainted = Counted(pipeline, request with { InitImage = picture, Mask = mask, Strength = strength }, out List<StepInfo> calls);
        return calls.Count;
    }
}
