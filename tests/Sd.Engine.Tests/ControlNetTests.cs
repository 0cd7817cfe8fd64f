using System.Text.Json;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Npy;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// ControlNetModel and a UNet pass with its residuals against PyTorch (Data/controlnet-reference.py, which restates
/// diffusers 0.27's ControlNetModel and UNet and checks its UNet against diffusers' own fixture outputs first): a
/// picture shared by a batch of two, guess mode, and a BGR, globally pooled ControlNet with a picture per image, at
/// 12x10 latents (odd after the downsampler). The ControlNet is the tiny fixture UNet's encoder with random
/// conditioning layers (Data/controlnet/extra.safetensors), as diffusers' ControlNetModel.from_unet makes one.
/// </summary>
public sealed class ControlNetTests(ITestOutputHelper output) : IDisposable
{
    private const double Tolerance = 1e-4;

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static readonly TheoryData<string> Cases = new() { "shared_image", "guess_mode", "bgr_pooled_per_image" };

    [FixtureTheory]
    [MemberData(nameof(Cases))]
    public void Residuals_and_the_noise_prediction_match_pytorch(string caseName)
    {
        string folder = CaseFolder(caseName);
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "meta.json")));
        JsonElement m = meta.RootElement;
        using ControlNetSource source = ControlNetSource.Open(WriteControlNet(caseName));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using Tensor sample = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "sample.npy"));
        using Tensor image = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "image.npy"));
        using Tensor context = ReadContext(Path.Combine(folder, "encoder_hidden_states.npy"));
        float[] timesteps = Array.ConvertAll(m.GetProperty("timesteps").EnumerateArray().ToArray(), e => e.GetSingle());
        int batch = sample.Dim(0), h = sample.Dim(1), w = sample.Dim(2);
        using ControlResiduals residuals = controlNet.CreateResiduals(batch, h, w);
        controlNet.Forward(sample, timesteps, context, [], image, m.GetProperty("scale").GetSingle(),
            m.GetProperty("guess_mode").GetBoolean() ? ResidualWeighting.GuessMode : ResidualWeighting.Uniform, residuals);

        Assert.Equal(m.GetProperty("residuals").GetInt32(), residuals.SkipCount + 1);
        for (int i = 0; i <= residuals.SkipCount; i++)
        {
            string file = i < residuals.SkipCount ? $"down_{i}.npy" : "mid.npy";
            using Tensor residual = residuals.Copy(i);
            output.WriteLine(Compare.AssertClose(NpyFile.Read(Path.Combine(folder, file)).ToFloat32(), NpyTensors.ToNchw(residual), Tolerance, $"{caseName} {file}"));
        }

        using ModelSource model = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var unet = new UNet2DConditionModel(model.UNet!, model.Weights(ModelComponent.Unet));
        using Tensor prediction = Tensor.Allocate([batch, h, w, 4]);
        unet.Forward(sample, timesteps, context, [], prediction, [], residuals);
        output.WriteLine(Compare.AssertClose(NpyFile.Read(Path.Combine(folder, "noise_pred.npy")).ToFloat32(), NpyTensors.ToNchw(prediction), Tolerance, $"{caseName} noise_pred"));

        // The residuals change the prediction: without them it is another one.
        using Tensor plain = Tensor.Allocate([batch, h, w, 4]);
        unet.Forward(sample, timesteps, context, [], plain, []);
        Assert.True(Compare.RelativeL2(plain.Span, prediction.Span) > 0.01);
    }

    /// <summary>
    /// Guess mode under classifier-free guidance runs the ControlNet on the conditional half alone and adds nothing to
    /// the unconditional half (diffusers concatenates zeros): images written from <c>firstImage</c> on, the rest 0.
    /// Two ControlNets sum their residuals (diffusers' MultiControlNetModel).
    /// </summary>
    [FixtureFact]
    public void Residuals_go_to_the_images_asked_for_and_add_up()
    {
        using ControlNetSource source = ControlNetSource.Open(WriteControlNet("shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        string folder = CaseFolder("shared_image");
        using Tensor both = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "sample.npy"));
        using Tensor image = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "image.npy"));
        using Tensor contexts = ReadContext(Path.Combine(folder, "encoder_hidden_states.npy"));
        int h = both.Dim(1), w = both.Dim(2);
        using Tensor sample = Tensor.Allocate([1, h, w, 4]);
        both.Span[..(int)sample.Length].CopyTo(sample.Span);
        using Tensor context = Tensor.Allocate([1, contexts.Dim(1), contexts.Dim(2)]);
        contexts.Span[..(int)context.Length].CopyTo(context.Span);

        using ControlResiduals alone = controlNet.CreateResiduals(1, h, w);
        controlNet.Forward(sample, [500f], context, [], image, 0.75f, ResidualWeighting.GuessMode, alone);
        using ControlResiduals second = controlNet.CreateResiduals(2, h, w);
        controlNet.Forward(sample, [500f], context, [], image, 0.75f, ResidualWeighting.GuessMode, second, firstImage: 1);
        using ControlResiduals twice = controlNet.CreateResiduals(1, h, w);
        controlNet.Forward(sample, [500f], context, [], image, 0.75f, ResidualWeighting.GuessMode, twice);
        controlNet.Forward(sample, [500f], context, [], image, 0.5f, ResidualWeighting.GuessMode, twice);
        for (int i = 0; i <= alone.SkipCount; i++)
        {
            using Tensor one = alone.Copy(i), pair = second.Copy(i), sum = twice.Copy(i);
            int half = (int)one.Length;
            Assert.True(pair.Span[..half].IndexOfAnyExcept(0f) < 0, $"residual {i}: the first image got something");
            Assert.True(pair.Span[half..].SequenceEqual(one.Span), $"residual {i}: the second image differs from a run of its own");
            Assert.True(one.Span.IndexOfAnyExcept(0f) >= 0, $"residual {i} is all 0");
            for (int k = 0; k < half; k++)
            {
                float scaledAgain = one.Span[k] / 0.75f * 0.5f; // not exact: compare within rounding
                Assert.True(Math.Abs(sum.Span[k] - (one.Span[k] + scaledAgain)) <= 1e-5f * (1 + Math.Abs(sum.Span[k])), $"residual {i}[{k}]");
            }
        }
    }

    /// <summary>The conditioning embedding is kept between passes only while the picture stays the same.</summary>
    [FixtureFact]
    public void A_new_picture_is_embedded_again()
    {
        using ControlNetSource source = ControlNetSource.Open(WriteControlNet("shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using var fresh = new ControlNetModel(source.Config, source.Weights);
        string folder = CaseFolder("shared_image");
        using Tensor sample = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "sample.npy"));
        using Tensor image = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "image.npy"));
        using Tensor context = ReadContext(Path.Combine(folder, "encoder_hidden_states.npy"));
        int batch = sample.Dim(0), h = sample.Dim(1), w = sample.Dim(2);
        using ControlResiduals first = controlNet.CreateResiduals(batch, h, w), again = controlNet.CreateResiduals(batch, h, w),
            expected = fresh.CreateResiduals(batch, h, w);
        controlNet.Forward(sample, [500f], context, [], image, 1f, ResidualWeighting.Uniform, first);
        for (int i = 0; i < image.Length; i += 7) image.Span[i] = 1 - image.Span[i];
        controlNet.Forward(sample, [500f], context, [], image, 1f, ResidualWeighting.Uniform, again);
        fresh.Forward(sample, [500f], context, [], image, 1f, ResidualWeighting.Uniform, expected);
        using Tensor a = first.Copy(0), b = again.Copy(0), c = expected.Copy(0);
        Assert.True(b.Span.SequenceEqual(c.Span), "the second picture's residuals are not a fresh model's");
        Assert.False(a.Span.SequenceEqual(b.Span));

        // Two kept embeddings: pictures taking turns (two units sharing the model), then a third picture, each give a
        // fresh model's residuals.
        using Tensor second = Tensor.Allocate(image.Shape), third = Tensor.Allocate(image.Shape);
        image.Span.CopyTo(second.Span);
        for (int i = 0; i < image.Length; i += 7) image.Span[i] = 1 - image.Span[i]; // back to the first picture
        for (int i = 0; i < third.Length; i++) third.Span[i] = image.Span[i] * 0.5f;
        foreach (Tensor picture in new[] { image, second, image, second, third, image })
        {
            using ControlResiduals shared = controlNet.CreateResiduals(batch, h, w), own = fresh.CreateResiduals(batch, h, w);
            controlNet.Forward(sample, [500f], context, [], picture, 1f, ResidualWeighting.Uniform, shared);
            using var single = new ControlNetModel(source.Config, source.Weights);
            single.Forward(sample, [500f], context, [], picture, 1f, ResidualWeighting.Uniform, own);
            using Tensor x = shared.Copy(0), y = own.Copy(0);
            Assert.True(x.Span.SequenceEqual(y.Span), "a kept embedding gave another picture's residuals");
        }
    }

    [FixtureFact]
    public void Bad_inputs_are_refused_by_name()
    {
        using ControlNetSource source = ControlNetSource.Open(WriteControlNet("shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using Tensor sample = Tensor.Allocate([1, 6, 4, 4]);
        using Tensor context = Tensor.Allocate([1, 3, 32]);
        using Tensor image = Tensor.Allocate([1, 12, 8, 3]);
        using ControlResiduals residuals = controlNet.CreateResiduals(1, 6, 4);
        using Tensor wrongSize = Tensor.Allocate([1, 12, 9, 3]);
        Assert.Equal("image", Assert.Throws<ArgumentException>(() => controlNet.Forward(sample, [1f], context, [], wrongSize, 1f, ResidualWeighting.Uniform, residuals)).ParamName);
        using Tensor nan = Tensor.Allocate([1, 12, 8, 3]);
        nan.Span[5] = float.NaN;
        Assert.Contains("NaN", Assert.ThrowsAny<Exception>(() => controlNet.Forward(sample, [1f], context, [], nan, 1f, ResidualWeighting.Uniform, residuals)).Message);
        Assert.Equal("scale", Assert.Throws<ArgumentException>(() => controlNet.Forward(sample, [1f], context, [], image, float.PositiveInfinity, ResidualWeighting.Uniform, residuals)).ParamName);
        Assert.Equal("into", Assert.Throws<ArgumentException>(() => controlNet.Forward(sample, [1f], context, [], image, 1f, ResidualWeighting.Uniform, residuals, firstImage: 1)).ParamName);
        using ControlResiduals otherSize = controlNet.CreateResiduals(1, 8, 4);
        Assert.Equal("into", Assert.Throws<ArgumentException>(() => controlNet.Forward(sample, [1f], context, [], image, 1f, ResidualWeighting.Uniform, otherSize)).ParamName);

        using ModelSource model = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var unet = new UNet2DConditionModel(model.UNet!, model.Weights(ModelComponent.Unet));
        using Tensor prediction = Tensor.Allocate([1, 6, 4, 4]);
        Assert.Equal("control", Assert.Throws<ArgumentException>(() => unet.Forward(sample, [1f], context, [], prediction, [], otherSize)).ParamName);
    }

    [FixtureFact]
    public void Files_that_are_not_a_controlnet_are_refused_by_name()
    {
        // A UNet's folder: its config is not a ControlNet's.
        Assert.Contains("ControlNetModel", Assert.Throws<InvalidFileException>(() => ControlNetSource.Open(Fixtures.Path("tiny/model/unet"))).Message);

        // The right config over tensors of another shape: the layout check names the difference.
        string folder = WriteControlNet("shared_image");
        string config = File.ReadAllText(Path.Combine(folder, "config.json"));
        File.WriteAllText(Path.Combine(folder, "config.json"), config.Replace("\"layers_per_block\": 2", "\"layers_per_block\": 1", StringComparison.Ordinal));
        Assert.Contains("does not fit the checkpoint's tensors", Assert.Throws<InvalidFileException>(() => ControlNetSource.Open(folder)).Message);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.Replace("\"rgb\"", "\"rbg\"", StringComparison.Ordinal));
        Assert.Contains("controlnet_conditioning_channel_order", Assert.Throws<InvalidFileException>(() => ControlNetSource.Open(folder)).Message);

        // Original-format keys whose conditioning embedding has a single convolution.
        string original = _dir.File("original");
        Directory.CreateDirectory(original);
        var writer = new SafetensorsWriter();
        writer.AddFloat32("control_model.input_hint_block.0.weight", [16, 3, 3, 3], new float[16 * 27]);
        writer.Save(Path.Combine(original, "diffusion_pytorch_model.safetensors"));
        Assert.Contains("control_model.input_hint_block. has 1 convolutions", Assert.Throws<InvalidFileException>(() => ControlNetSource.Open(original)).Message);

        // Without a config.json the shapes must tell the layout: a LoRA's tensors do not.
        string noConfig = _dir.File("no-config");
        Directory.CreateDirectory(noConfig);
        writer = new SafetensorsWriter();
        writer.AddFloat32("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", [4, 32], new float[128]);
        writer.Save(Path.Combine(noConfig, "diffusion_pytorch_model.safetensors"));
        Assert.Contains("cannot infer the UNet layout", Assert.Throws<InvalidFileException>(() => ControlNetSource.Open(noConfig)).Message);
        Assert.Throws<FileNotFoundException>(() => ControlNetSource.Open(_dir.File("absent")));
    }

    private static string CaseFolder(string caseName) => ControlNetFixture.CaseFolder(caseName);

    private string WriteControlNet(string caseName) => ControlNetFixture.Write(_dir, caseName);

    /// <summary>A [batch, tokens, width] context from .npy, as stored.</summary>
    internal static Tensor ReadContext(string path)
    {
        NpyArray array = NpyFile.Read(path);
        Tensor context = Tensor.Allocate(array.Shape);
        array.ToFloat32().CopyTo(context.Span);
        return context;
    }
}
