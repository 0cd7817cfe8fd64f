using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Loaders.Layout;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// A1111's latent noise and latent nothing with a 4-channel UNet (the demo model, no fixtures needed; the 9-channel
/// case is checked against the transcribed reference in <see cref="InpaintUNetTests"/>): under a full mask a run
/// below strength 1 starts from the fill noised to its first step, which given initial latents reproduce; where
/// nothing starts from the picture, the fill changes nothing.
/// </summary>
public sealed class MaskedLatentsTests(ITestOutputHelper output)
{
    private const int Width = 64, Height = 48, Steps = 6;

    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a lighthouse", NegativePrompt = "fog", Steps = Steps, Width = Width, Height = Height, Seed = 31, Strength = 0.5,
    };

    /// <summary>Every draw is the seed's first, whatever its place: runs that draw in another order see the same noise.</summary>
    private sealed class RepeatedDraw(ulong seed) : INoiseSource
    {
        public void Next(Span<float> nchw) => new TorchNoise(seed).Next(nchw);
    }

    private static Tensor Mask(float value)
    {
        Tensor mask = Tensor.Allocate([1, Height, Width, 1]);
        mask.Span.Fill(value);
        return mask;
    }

    [Theory]
    [InlineData("ddim", MaskedLatents.Noise)]
    [InlineData("ddim", MaskedLatents.Zeros)]
    [InlineData("euler", MaskedLatents.Noise)] // init_noise_sigma above 1
    [InlineData("euler", MaskedLatents.Zeros)]
    public void Under_a_full_mask_the_run_starts_from_the_fill_noised(string scheduler, MaskedLatents fill)
    {
        using Tensor picture = RandomTensors.Uniform([1, Height, Width, 3], 5), mask = Mask(1f);
        GenerateRequest request = Request with { Scheduler = scheduler, InitImage = picture, Mask = mask };
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        using GenerateResult filled = pipeline.Generate(request with { MaskedLatents = fill, Noise = new RepeatedDraw(8) });

        // The start the fill makes, scheduler.add_noise(fill, draw, first step), as given latents (x init_noise_sigma).
        var draw = new float[4 * (Height / 8) * (Width / 8)];
        new RepeatedDraw(8).Next(draw);
        Scheduler schedule = Scheduler.Create(scheduler, DemoModel.Scheduler);
        schedule.SetTimesteps(Steps, (Steps - (int)(Steps * request.Strength)) * schedule.Order);
        var start = new float[draw.Length];
        schedule.AddNoise(fill == MaskedLatents.Noise ? draw : new float[draw.Length], draw, schedule.FirstStep, start);
        for (int i = 0; i < start.Length; i++) start[i] /= schedule.InitNoiseSigma;
        using GenerateResult given = pipeline.Generate(request with { InitialLatents = start, Noise = new RepeatedDraw(8) });

        output.WriteLine(Compare.AssertClose(given.Latents.Span, filled.Latents.Span, 1e-5, $"{scheduler} {fill}"));
        using GenerateResult plain = pipeline.Generate(request with { Noise = new RepeatedDraw(8) });
        Assert.True(Compare.RelativeL2(plain.Latents.Span, filled.Latents.Span) > 1e-2, "the fill did not change the run");
    }

    [Fact]
    public void The_fill_changes_only_runs_that_start_from_the_masked_picture()
    {
        using Tensor picture = RandomTensors.Uniform([1, Height, Width, 3], 6), none = Mask(0f), half = Mask(0f);
        half.Span[..(Width * Height / 2)].Fill(1f);
        var latents = new float[4 * (Height / 8) * (Width / 8)];
        new TorchNoise(3).Next(latents);
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = Request with { Scheduler = "dpm++-2m", InitImage = picture, Mask = half };
        foreach ((string what, GenerateRequest unchanged) in new[]
        {
            ("an empty mask", request with { Mask = none }),
            ("strength 1", request with { Strength = 1 }),
            ("given latents", request with { InitialLatents = latents }),
        })
        {
            using GenerateResult plain = pipeline.Generate(unchanged);
            foreach (MaskedLatents fill in new[] { MaskedLatents.Noise, MaskedLatents.Zeros })
            {
                using GenerateResult filled = pipeline.Generate(unchanged with { MaskedLatents = fill });
                Assert.True(plain.Latents.Span.SequenceEqual(filled.Latents.Span), $"{what}: {fill} changed the latents");
            }
        }
        using GenerateResult original = pipeline.Generate(request);
        using GenerateResult noise = pipeline.Generate(request with { MaskedLatents = MaskedLatents.Noise });
        using GenerateResult zeros = pipeline.Generate(request with { MaskedLatents = MaskedLatents.Zeros });
        Assert.False(original.Latents.Span.SequenceEqual(noise.Latents.Span), "latent noise changed nothing under half a mask");
        Assert.False(original.Latents.Span.SequenceEqual(zeros.Latents.Span), "latent nothing changed nothing under half a mask");
        Assert.False(noise.Latents.Span.SequenceEqual(zeros.Latents.Span), "latent noise and latent nothing ran alike");
    }

    [Fact]
    public void A_fill_without_a_mask_or_of_no_kind_is_refused()
    {
        using Tensor picture = RandomTensors.Uniform([1, Height, Width, 3], 6), mask = Mask(1f);
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        string expected = "masked latents {0} fill the latents under an inpainting mask; they must be Picture, Noise or Zeros, and other than Picture only with a mask";
        var noMask = Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { InitImage = picture, MaskedLatents = MaskedLatents.Noise }));
        Assert.StartsWith(string.Format(expected, "Noise"), noMask.Message, StringComparison.Ordinal);
        var unknown = Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { InitImage = picture, Mask = mask, MaskedLatents = (MaskedLatents)3 }));
        Assert.StartsWith(string.Format(expected, "3"), unknown.Message, StringComparison.Ordinal);
    }
}
