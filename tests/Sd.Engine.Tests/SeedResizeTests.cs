using System.Text.Json;
using Sd.Engine.Pipelines;

namespace Sd.Engine.Tests;

/// <summary>
/// A1111's seed resize: the seed's start draw made at another size, varied there, and pasted centred into the run's
/// own draw (Data/seed-resize-reference.json, PyTorch 1.13's generator and A1111's ImageRNG.first), and where it
/// enters a run.
/// </summary>
public sealed class SeedResizeTests
{
    [Fact]
    public void The_start_draw_is_a1111s_paste_of_the_seeds_draw_at_the_other_size()
    {
        using JsonDocument reference = ReferenceData.Json("seed-resize-reference.json");
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            int[] shape = [.. c.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32())];
            int[] from = [.. c.GetProperty("from").EnumerateArray().Select(d => d.GetInt32())];
            float[] expected = [.. c.GetProperty("noise").EnumerateArray().Select(v => v.GetSingle())];
            ulong seed = c.GetProperty("seed").GetUInt64();
            float strength = (float)c.GetProperty("strength").GetDouble();
            var noise = new float[expected.Length];
            new ExtraSeedNoise(new TorchNoise(seed), seed, strength > 0 ? c.GetProperty("variation_seed").GetUInt64() : null, strength, from[0], from[1])
                .NextStart(noise, shape[0], shape[1], shape[2]);
            float worst = 0;
            for (int i = 0; i < noise.Length; i++) worst = MathF.Max(worst, MathF.Abs(noise[i] - expected[i]));
            // Unvaried values are copies of the generator's (exact); varied ones go through A1111's slerp (an ulp or so).
            Assert.True(worst <= (strength > 0 ? 1e-6f : 0f), $"{c.GetProperty("name").GetString()}: max abs error {worst}");
            cases++;
        }
        Assert.Equal(6, cases);
    }

    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a lighthouse", Steps = 2, Width = 64, Height = 48, Scheduler = "euler", Seed = 100,
    };

    [Fact]
    public void A_run_starts_from_the_resized_draw_and_its_own_size_changes_nothing()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        using GenerateResult plain = pipeline.Generate(Request);
        using GenerateResult same = pipeline.Generate(Request with { SeedResizeFromWidth = 64, SeedResizeFromHeight = 48 });
        Assert.True(plain.Latents.Span.SequenceEqual(same.Latents.Span));

        // Euler draws nothing after the start, so the run is the one from the resized draw as given latents.
        GenerateRequest resized = Request with { SeedResizeFromWidth = 40, SeedResizeFromHeight = 72 };
        using GenerateResult run = pipeline.Generate(resized);
        var start = new float[4 * 6 * 8];
        new ExtraSeedNoise(new TorchNoise(100), 100, null, 0, 9, 5).NextStart(start, 4, 6, 8);
        using GenerateResult given = pipeline.Generate(Request with { InitialLatents = start });
        Assert.True(given.Latents.Span.SequenceEqual(run.Latents.Span));
        Assert.False(plain.Latents.Span.SequenceEqual(run.Latents.Span));

        // Image i of a batch resizes its own seed's draw, Seed + i.
        IReadOnlyList<GenerateResult> batch = pipeline.GenerateBatch(resized, 2);
        try
        {
            using GenerateResult second = pipeline.Generate(resized with { Seed = 101 });
            Assert.True(run.Latents.Span.SequenceEqual(batch[0].Latents.Span));
            Assert.True(second.Latents.Span.SequenceEqual(batch[1].Latents.Span));
        }
        finally
        {
            foreach (GenerateResult result in batch) result.Dispose();
        }
    }

    [Fact]
    public void A_hires_pass_pastes_the_resized_draw_into_its_larger_one()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        // Resized from the first pass's own size, only the hires pass changes: its 16x12 latents' draw gets the seed's
        // 8x6 draw in its middle, as in A1111.
        GenerateRequest hires = Request with { Hires = new HiresFix { Width = 128, Height = 96, Steps = 2 } };
        using GenerateResult plain = pipeline.Generate(hires);
        using GenerateResult resized = pipeline.Generate(hires with { SeedResizeFromWidth = 64, SeedResizeFromHeight = 48 });
        Assert.Equal(plain.Latents.Shape, resized.Latents.Shape);
        Assert.False(plain.Latents.Span.SequenceEqual(resized.Latents.Span));
        using GenerateResult first = pipeline.Generate(Request with { SeedResizeFromWidth = 64, SeedResizeFromHeight = 48 });
        using GenerateResult firstPlain = pipeline.Generate(Request);
        Assert.True(first.Latents.Span.SequenceEqual(firstPlain.Latents.Span));
    }

    [Fact]
    public void Sizes_and_inputs_a_resize_cannot_take_are_refused()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        foreach ((int width, int height) in new[] { (64, 0), (0, 48), (-8, 48), (60, 48), (64, 44), (StableDiffusionPipeline.MaxImageSide + 8, 48) })
        {
            Assert.Contains($"a seed resize needs a width and height that are positive multiples of 8, at most {StableDiffusionPipeline.MaxImageSide} (0x0: none), got {width}x{height}",
                Assert.Throws<ArgumentException>(() => pipeline.Validate(Request with { SeedResizeFromWidth = width, SeedResizeFromHeight = height })).Message);
        }
        GenerateRequest resized = Request with { SeedResizeFromWidth = 40, SeedResizeFromHeight = 72 };
        Assert.Contains("given initial latents or a noise source replace the seed's draws",
            Assert.Throws<ArgumentException>(() => pipeline.Validate(resized with { InitialLatents = new float[4 * 6 * 8] })).Message);
        Assert.Contains("given initial latents or a noise source replace the seed's draws",
            Assert.Throws<ArgumentException>(() => pipeline.Validate(resized with { Noise = new TorchNoise(1) })).Message);
    }
}
