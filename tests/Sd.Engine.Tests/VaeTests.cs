using Sd.Engine.Tensors;
using Sd.Engine.Vae;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>AutoencoderKL decode and encode against diffusers on every fixture case (batch 2 and non-square included).</summary>
public sealed class VaeTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string, string> DecodeCases() => new()
    {
        { "tiny", "dec32" }, { "tiny", "dec_b2_nonsquare" }, { "small", "dec32" }, { "small", "dec_nonsquare" },
    };

    public static TheoryData<string, string> EncodeCases() => new()
    {
        { "tiny", "enc64" }, { "tiny", "enc_nonsquare" }, { "small", "enc256" }, { "small", "enc_nonsquare" },
    };

    [FixtureTheory]
    [MemberData(nameof(DecodeCases))]
    public void Decoded_images_match_diffusers(string model, string caseName)
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path($"{model}/model"));
        using var vae = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae));
        string dir = Fixtures.Path($"{model}/ref/vae_decode/{caseName}");
        using Tensor latents = NpyTensors.ReadNchwAsNhwc(Path.Combine(dir, "decoder_input.npy"));
        using Tensor image = Tensor.Allocate([latents.Dim(0), latents.Dim(1) * vae.Factor, latents.Dim(2) * vae.Factor, 3]);
        vae.Decode(latents, image);
        output.WriteLine(Compare.AssertClose(ReadNchw(Path.Combine(dir, "decoded.npy")), NpyTensors.ToNchw(image), Tolerance, $"{model}/{caseName} decoded"));
    }

    [FixtureTheory]
    [MemberData(nameof(EncodeCases))]
    public void Posterior_mean_and_logvar_match_diffusers(string model, string caseName)
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path($"{model}/model"));
        using var vae = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae));
        string dir = Fixtures.Path($"{model}/ref/vae_encode/{caseName}");
        using Tensor image = NpyTensors.ReadNchwAsNhwc(Path.Combine(dir, "encoder_input.npy"));
        int[] latentShape = [image.Dim(0), image.Dim(1) / vae.Factor, image.Dim(2) / vae.Factor, source.Vae!.LatentChannels];
        using Tensor mean = Tensor.Allocate(latentShape);
        using Tensor logvar = Tensor.Allocate(latentShape);
        vae.Encode(image, mean, logvar);
        output.WriteLine(Compare.AssertClose(ReadNchw(Path.Combine(dir, "posterior_mean.npy")), NpyTensors.ToNchw(mean), Tolerance, $"{model}/{caseName} mean"));
        output.WriteLine(Compare.AssertClose(ReadNchw(Path.Combine(dir, "posterior_logvar.npy")), NpyTensors.ToNchw(logvar), Tolerance, $"{model}/{caseName} logvar"));
        // With unit noise the posterior draw is mean + std: checks std = exp(0.5 logvar) against the fixture.
        using Tensor ones = Tensor.Allocate(latentShape);
        ones.Span.Fill(1f);
        using Tensor draw = Tensor.Allocate(latentShape);
        AutoencoderKL.SamplePosterior(mean, logvar, ones, draw);
        float[] expectedMean = ReadNchw(Path.Combine(dir, "posterior_mean.npy"));
        float[] expectedStd = ReadNchw(Path.Combine(dir, "posterior_std.npy"));
        float[] expectedDraw = new float[expectedMean.Length];
        for (int i = 0; i < expectedDraw.Length; i++) expectedDraw[i] = expectedMean[i] + expectedStd[i];
        output.WriteLine(Compare.AssertClose(expectedDraw, NpyTensors.ToNchw(draw), Tolerance, $"{model}/{caseName} mean + std"));
    }

    [FixtureFact]
    public void Bad_inputs_are_refused()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var vae = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae));
        using Tensor odd = Tensor.Allocate([1, 7, 8, 3]);
        using Tensor mean = Tensor.Allocate([1, 3, 4, 4]);
        Assert.Contains("multiple of 2", Assert.Throws<ArgumentException>(() => vae.Encode(odd, mean, mean)).Message);
        using Tensor latents = Tensor.Allocate([1, 4, 4, 3]);
        using Tensor image = Tensor.Allocate([1, 8, 8, 3]);
        Assert.Throws<ArgumentException>(() => vae.Decode(latents, image));
        using Tensor good = Tensor.Allocate([1, 4, 4, 4]);
        good.Span[5] = float.NaN;
        Assert.Throws<ArithmeticException>(() => vae.Decode(good, image));
    }

    private static float[] ReadNchw(string path) => NpyFile.Read(path).ToFloat32();
}
