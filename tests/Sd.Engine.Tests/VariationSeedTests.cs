using System.Text.Json;
using Sd.Engine.Pipelines;

namespace Sd.Engine.Tests;

/// <summary>
/// A1111's variation seed: the start draw blended with the variation seed's by A1111's slerp (Data/seed-variation-
/// reference.json, PyTorch 1.13's generator and A1111's slerp), and where it enters a run.
/// </summary>
public sealed class VariationSeedTests
{
    [Fact]
    public void The_blend_is_a1111s_slerp_of_the_two_seeds_draws()
    {
        using JsonDocument reference = ReferenceData.Json("seed-variation-reference.json");
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            int[] shape = [.. c.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32())];
            float[] expected = [.. c.GetProperty("noise").EnumerateArray().Select(v => v.GetSingle())];
            ulong seed = c.GetProperty("seed").GetUInt64();
            var varied = new ExtraSeedNoise(new TorchNoise(seed), seed, c.GetProperty("variation_seed").GetUInt64(),
                (float)c.GetProperty("strength").GetDouble(), 0, 0);
            var noise = new float[expected.Length];
            varied.NextStart(noise, shape[0], shape[1], shape[2]);
            float worst = 0;
            for (int i = 0; i < noise.Length; i++) worst = MathF.Max(worst, MathF.Abs(noise[i] - expected[i]));
            // Draws of N(0, 1), so about 1e-7 is an ulp. "9x4x4" blends columns of 4 values, one pair at a dot of -0.995,
            // where the angle's sine is 0.1 and divides: there an ulp of a norm (torch sums in an order of its own)
            // moves the result by 4.5e-6. Columns of latents (H = 64 and more) are far from parallel.
            float tolerance = c.GetProperty("name").GetString() == "9x4x4 0.05" ? 1e-5f : 1e-6f;
            Assert.True(worst <= tolerance, $"{c.GetProperty("name").GetString()}: max abs error {worst}");
            cases++;
        }
        Assert.Equal(7, cases);
    }

    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a lighthouse", Steps = 2, Width = 64, Height = 48, Scheduler = "euler", Seed = 100, VariationSeed = 7,
    };

    [Fact]
    public void Strength_0_is_the_seeds_own_start_and_1_the_variation_seeds()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        using GenerateResult plain = pipeline.Generate(Request with { VariationSeed = null });
        using GenerateResult none = pipeline.Generate(Request with { VariationStrength = 0 });
        using GenerateResult full = pipeline.Generate(Request with { VariationStrength = 1 });
        using GenerateResult swapped = pipeline.Generate(Request with { Seed = 7, VariationSeed = null });
        using GenerateResult half = pipeline.Generate(Request with { VariationStrength = 0.5f });
        Assert.True(plain.Latents.Span.SequenceEqual(none.Latents.Span));
        // Euler draws nothing after the start, so the whole run is the variation seed's.
        Assert.True(swapped.Latents.Span.SequenceEqual(full.Latents.Span));
        Assert.False(half.Latents.Span.SequenceEqual(plain.Latents.Span));
        Assert.False(half.Latents.Span.SequenceEqual(full.Latents.Span));

        // Image i of a batch varies the same seed with VariationSeed + i, as A1111's seeds and subseeds.
        IReadOnlyList<GenerateResult> batch = pipeline.GenerateBatch(Request with { VariationStrength = 0.5f }, 2);
        try
        {
            using GenerateResult second = pipeline.Generate(Request with { VariationSeed = 8, VariationStrength = 0.5f });
            Assert.True(half.Latents.Span.SequenceEqual(batch[0].Latents.Span));
            Assert.True(second.Latents.Span.SequenceEqual(batch[1].Latents.Span));
            Assert.Equal((100ul, 100ul), (batch[0].Seed, batch[1].Seed));
        }
        finally
        {
            foreach (GenerateResult result in batch) result.Dispose();
        }
    }

    /// <summary>The seed's draws with draw <paramref name="index"/> (still taken from them) replaced by the first draw of <paramref name="substitute"/>.</summary>
    private sealed class SubstitutedNoise(ulong seed, int index, ulong substitute) : INoiseSource
    {
        private readonly TorchNoise _seed = new(seed);
        private int _draws;

        public void Next(Span<float> nchw)
        {
            _seed.Next(nchw);
            if (_draws++ == index) new TorchNoise(substitute).Next(nchw);
        }
    }

    [Fact]
    public void Img2img_varies_the_noise_added_to_the_picture_not_the_posterior_sample()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        using GenerateResult source = pipeline.Generate(Request with { VariationSeed = null });
        GenerateRequest img2img = Request with { InitImage = source.Image, Strength = 0.6, Scheduler = "euler-a", Steps = 4 };
        using GenerateResult varied = pipeline.Generate(img2img with { VariationStrength = 1 });
        // The posterior sample is draw 0, the noise added to the picture draw 1; euler a's own noise follows.
        using GenerateResult substituted = pipeline.Generate(img2img with { VariationSeed = null, Noise = new SubstitutedNoise(100, 1, 7) });
        Assert.True(substituted.Latents.Span.SequenceEqual(varied.Latents.Span));
        using GenerateResult plain = pipeline.Generate(img2img with { VariationSeed = null });
        Assert.False(plain.Latents.Span.SequenceEqual(varied.Latents.Span));
    }

    [Fact]
    public void Requests_that_cannot_vary_are_refused()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        Assert.Contains("the variation strength must be in [0, 1], got 1.5",
            Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { VariationStrength = 1.5f })).Message);
        Assert.Contains("got NaN", Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { VariationStrength = float.NaN })).Message);
        Assert.Contains("a variation strength of 0.5 needs a variation seed",
            Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { VariationSeed = null, VariationStrength = 0.5f })).Message);
        Assert.Contains("the batch's variation seeds run to VariationSeed + 1, past 2^64 - 1",
            Assert.Throws<ArgumentException>(() => pipeline.GenerateBatch(Request with { VariationSeed = ulong.MaxValue, VariationStrength = 0.5f }, 2)).Message);
        // The seed is every image's in a varied batch, so it may be the largest; a variation seed unused may too.
        pipeline.Validate(Request with { Seed = ulong.MaxValue, VariationStrength = 0.5f }, 2);
        pipeline.Validate(Request with { VariationSeed = ulong.MaxValue }, 2);
        Assert.Contains("given initial latents replace that draw", Assert.Throws<ArgumentException>(() =>
            pipeline.Generate(Request with { VariationStrength = 0.5f, InitialLatents = new float[4 * 6 * 8] })).Message);
    }
}
