using Sd.Engine.Adapters;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Loaders;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

using static Sd.Engine.Tests.SteeredRuns;

namespace Sd.Engine.Tests;

/// <summary>
/// T2I-Adapters in the pipeline (the numerics of the adapter and the UNet's features are T2IAdapterTests'): what a unit
/// changes and over which steps, several units, picture sizes and channels, and units that do not fit the model.
/// </summary>
public sealed class T2IAdapterPipelineTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a photo of an astronaut riding a horse on mars", NegativePrompt = "blurry", Steps = 4, Width = 64, Height = 48,
        Seed = 42, Scheduler = "dpm++-2m", GuidanceScale = 7.5f,
    };

    [FixtureFact]
    public void A_unit_steers_the_steps_its_factor_gives_and_a_zero_scale_changes_nothing()
    {
        using T2IAdapterSource source = T2IAdapterSource.Open(AdapterFixture.Write(_dir, "small_guided"));
        using var adapter = new T2IAdapterModel(source.Config, source.Weights);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("small/model"));
        var unit = new T2IAdapterUnit(adapter, Picture(64, 48, 1));
        float[] none = Latents(pipeline, Request);
        Assert.Equal(none, Latents(pipeline, Request with { Adapters = [unit with { Scale = 0 }] }));
        Assert.Equal(none, Latents(pipeline, Request with { Adapters = [unit], AdapterConditioningFactor = 0 }));
        float[] all = Latents(pipeline, Request with { Adapters = [unit] });
        float[] half = Latents(pipeline, Request with { Adapters = [unit], AdapterConditioningFactor = 0.5 });
        float[][] runs = [none, all, half];
        AssertAllDiffer(runs);
        // int(4 x 0.6) = 2 steps, as 0.5 gives. At 10 steps int(10 x 0.7) is 7 in double (6.99999988 in float32 would be 6).
        Assert.Equal(half, Latents(pipeline, Request with { Adapters = [unit], AdapterConditioningFactor = 0.6 }));
        GenerateRequest ten = Request with { Steps = 10, Adapters = [unit] };
        float[] seven = Latents(pipeline, ten with { AdapterConditioningFactor = 0.7 });
        Assert.Equal(Latents(pipeline, ten with { AdapterConditioningFactor = 0.75 }), seven);
        Assert.NotEqual(Latents(pipeline, ten with { AdapterConditioningFactor = 0.65 }), seven);
        // Two units add their features: this one twice at half the scale is the one unit (within rounding).
        float[] halves = Latents(pipeline, Request with { Adapters = [unit with { Scale = 0.5f }, unit with { Scale = 0.5f }] });
        Assert.True(Compare.RelativeL2(all, halves) < 1e-5, $"two halves differ from the whole by {Compare.RelativeL2(all, halves):E2}");
    }

    /// <summary>Several units add their features, each at its own scale (MultiAdapter's weighted sum).</summary>
    [FixtureFact]
    public void Units_add_their_features_each_at_its_scale()
    {
        using T2IAdapterSource source = T2IAdapterSource.Open(AdapterFixture.Write(_dir, "small_guided"));
        using var adapter = new T2IAdapterModel(source.Config, source.Weights);
        PngImage a = Picture(64, 48, 4), b = Picture(64, 48, 5);
        using AdapterFeatures sum = T2IAdapterUnit.Run([new T2IAdapterUnit(adapter, a) { Scale = 0.3f }, new T2IAdapterUnit(adapter, b) { Scale = 1.2f }], 64, 48)!;
        using Tensors.Tensor pa = ImageConversion.UnitTensor(a), pb = ImageConversion.UnitTensor(b);
        using AdapterFeatures fa = adapter.Forward(pa, 0.3f), fb = adapter.Forward(pb, 1.2f);
        for (int i = 0; i < sum.Count; i++)
        {
            float[] expected = new float[fa[i].Length];
            for (int k = 0; k < expected.Length; k++) expected[k] = fa[i].Span[k] + fb[i].Span[k];
            Assert.Equal(expected, sum[i].Span.ToArray());
        }
    }

    [FixtureFact]
    public void Pictures_are_resized_and_taken_to_the_adapters_channels()
    {
        using T2IAdapterSource rgbSource = T2IAdapterSource.Open(AdapterFixture.Write(_dir, "small_guided"));
        using var rgb = new T2IAdapterModel(rgbSource.Config, rgbSource.Weights);
        using T2IAdapterSource graySource = T2IAdapterSource.Open(AdapterFixture.Write(_dir, "small_guided", inChannels: 1));
        using var gray = new T2IAdapterModel(graySource.Config, graySource.Weights);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("small/model"));
        PngImage small = Picture(40, 30, 2);
        Assert.Equal(Latents(pipeline, Request with { Adapters = [new T2IAdapterUnit(rgb, PictureResize.Resize(small, 64, 48, ResizeMode.Just))] }),
            Latents(pipeline, Request with { Adapters = [new T2IAdapterUnit(rgb, small)] }));
        // An RGB picture for a gray adapter is Pillow's convert("L") of it.
        Assert.Equal(Latents(pipeline, Request with { Adapters = [new T2IAdapterUnit(gray, ImageConversion.AsGray(small))] }),
            Latents(pipeline, Request with { Adapters = [new T2IAdapterUnit(gray, small)] }));
        // With a hires fix the second pass gets features of its own size.
        Assert.All(Latents(pipeline, Request with { Adapters = [new T2IAdapterUnit(rgb, small)], Hires = new HiresFix { Width = 128, Height = 96, Steps = 2 } }),
            v => Assert.True(float.IsFinite(v)));
    }

    [FixtureFact]
    public void Units_that_do_not_fit_the_model_are_refused_before_any_step()
    {
        using T2IAdapterSource source = T2IAdapterSource.Open(AdapterFixture.Write(_dir, "tiny_after_downsampler"));
        using var tiny = new T2IAdapterModel(source.Config, source.Weights);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("small/model"));
        string message = Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with { Adapters = [new T2IAdapterUnit(tiny, Picture(8, 8, 3))] })).Message;
        Assert.Contains("T2I-Adapter 0 does not fit this model: its pictures are 4 times the latents' size, the VAE's 8", message);
        using T2IAdapterSource smallSource = T2IAdapterSource.Open(AdapterFixture.Write(_dir, "small_guided"));
        using var adapter = new T2IAdapterModel(smallSource.Config, smallSource.Weights);
        Assert.Contains("the adapter conditioning factor must be in [0, 1]", Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with
        {
            Adapters = [new T2IAdapterUnit(adapter, Picture(8, 8, 3))], AdapterConditioningFactor = 1.5,
        })).Message);
        Assert.Contains("the scale must be finite", Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with
        {
            Adapters = [new T2IAdapterUnit(adapter, Picture(8, 8, 3)) { Scale = float.NaN }],
        })).Message);
    }
}
