using Sd.Engine.Pipelines;
using Sd.Loaders.Png;

namespace Sd.Engine.Tests;

/// <summary>What the tests of steered generations (ControlNets, T2I-Adapters) share.</summary>
internal static class SteeredRuns
{
    /// <summary>The final latents of <paramref name="request"/>.</summary>
    public static float[] Latents(StableDiffusionPipeline pipeline, GenerateRequest request)
    {
        using GenerateResult result = pipeline.Generate(request);
        return result.Latents.Span.ToArray();
    }

    /// <summary>A seeded random RGB picture.</summary>
    public static PngImage Picture(int width, int height, int seed)
    {
        var pixels = new byte[width * height * 3];
        new Random(seed).NextBytes(pixels);
        return new PngImage(width, height, 3, pixels);
    }

    /// <summary>Asserts that no two of <paramref name="runs"/> are alike (relative L2 above 1e-4).</summary>
    public static void AssertAllDiffer(float[][] runs)
    {
        for (int a = 0; a < runs.Length; a++)
        {
            for (int b = a + 1; b < runs.Length; b++)
            {
                Assert.True(Compare.RelativeL2(runs[a], runs[b]) > 1e-4, $"runs {a} and {b} are alike");
            }
        }
    }
}
