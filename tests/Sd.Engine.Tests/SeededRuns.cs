using Sd.Engine.Pipelines;

namespace Sd.Engine.Tests;

/// <summary>
/// Demo-pipeline runs for scheduler tests: from fixed initial latents, for where a scheduler's noise comes from, and
/// part-way starts from a picture.
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
    /// Inpaints the top half of <paramref name="picture"/> (64x64) at <paramref name="strength"/> with a 4-channel UNet,
    /// which blends the picture back after each call, noised to the next call's level; returns how many calls ran,
    /// after checking the latents stayed finite.
    /// </summary>
    public static int InpaintingCalls(StableDiffusionPipeline pipeline, GenerateRequest request, Tensors.Tensor picture, double strength)
    {
        var calls = new List<StepInfo>();
        using Tensors.Tensor mask = Tensors.Tensor.Allocate([1, 64, 64, 1]);
        mask.Span[..(64 * 32)].Fill(1f);
        using GenerateResult inpainted = pipeline.Generate(request with { InitImage = picture, Mask = mask, Strength = strength }, new SyncProgress(calls.Add));
        Assert.True(Tensors.Tensor.AllFinite(inpainted.Latents.Span));
        return calls.Count;
    }
}
