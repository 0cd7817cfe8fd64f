using Sd.Engine.Pipelines;

namespace Sd.Engine.Tests;

/// <summary>Demo-pipeline runs from fixed initial latents, for tests of where a scheduler's noise comes from.</summary>
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
}
