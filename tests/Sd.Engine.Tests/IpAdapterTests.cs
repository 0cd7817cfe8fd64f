using System.Text.Json;
using Sd.Engine.Adapters;
using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Engine.Vision;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// The IP-Adapter path against PyTorch (Data/ip-adapter-reference.py, which restates transformers 4.38's
/// CLIPVisionModelWithProjection and CLIPImageProcessor, diffusers 0.27's ImageProjection and IPAdapterAttnProcessor2_0
/// on controlnet-reference.py's checked UNet): a tiny random image encoder, a random IP-Adapter in h94's layout (F16) for
/// the small fixture UNet, under classifier-free guidance (zero embeddings for the unconditioned half) and with two
/// pictures in one batch at an odd latent size.
/// </summary>
public sealed class IpAdapterTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;

    private static string Data(string name) => Path.Combine(Fixtures.BinariesFolder, "Data", "ipadapter", name);

    public static readonly TheoryData<string> Pictures = new() { "wide", "small" };

    [Theory]
    [MemberData(nameof(Pictures))]
    public void The_image_processor_resizes_crops_and_normalizes_as_transformers(string picture)
    {
        PngImage png = PngFile.Read(Data($"picture_{picture}.png"));
        using Tensor pixels = ClipImageProcessor.Preprocess(png, 28);
        float[] expected = NpyFile.Read(Data($"pixel_values_{picture}.npy")).ToFloat32();
        // Pillow's bicubic bytes and the same float32 arithmetic: equal to the last bit.
        Assert.Equal(expected, NpyTensors.ToNchw(pixels));
    }

    [Theory]
    [MemberData(nameof(Pictures))]
    public void The_image_encoder_matches_pytorch(string picture)
    {
        using ImageEncoderSource source = ImageEncoderSource.Open(Data("image_encoder"));
        using var encoder = new ClipVisionModel(source.Config, source.Weights);
        using Tensor pixels = ClipImageProcessor.Preprocess(PngFile.Read(Data($"picture_{picture}.png")), encoder.Config.ImageSize);
        using Tensor embeds = encoder.Encode(pixels);
        Assert.Equal([1, 24], embeds.Shape.ToArray());
        output.WriteLine(Compare.AssertClose(NpyFile.Read(Data($"image_embeds_{picture}.npy")).ToFloat32(), embeds.Span, Tolerance, $"{picture} image_embeds"));
    }

    [Fact]
    public void A_batch_of_pictures_encodes_each_as_alone()
    {
        using ImageEncoderSource source = ImageEncoderSource.Open(Data("image_encoder"));
        using var encoder = new ClipVisionModel(source.Config, source.Weights);
        using Tensor wide = NpyTensors.ReadNchwAsNhwc(Data("pixel_values_wide.npy"));
        using Tensor small = NpyTensors.ReadNchwAsNhwc(Data("pixel_values_small.npy"));
        using Tensor both = Tensor.Allocate([2, 28, 28, 3]);
        wide.Span.CopyTo(both.Span);
        small.Span.CopyTo(both.Span[(int)wide.Length..]);
        using Tensor embeds = encoder.Encode(both);
        Compare.AssertClose(NpyFile.Read(Data("image_embeds_wide.npy")).ToFloat32(), embeds.Span[..24], Tolerance, "row 0");
        Compare.AssertClose(NpyFile.Read(Data("image_embeds_small.npy")).ToFloat32(), embeds.Span[24..], Tolerance, "row 1");
    }

    public static readonly TheoryData<string> Cases = new() { "guided", "two_pictures" };

    [FixtureTheory]
    [MemberData(nameof(Cases))]
    public void Image_tokens_and_the_noise_prediction_match_pytorch(string caseName)
    {
        string folder = Data(caseName);
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "meta.json")));
        JsonElement m = meta.RootElement;
        using IpAdapterSource source = IpAdapterSource.Open(Data("ip_adapter.safetensors"));
        using var adapter = new IpAdapterModel(source);
        using Tensor embeds = CaseEmbeds(m);
        using Tensor tokens = adapter.Project(embeds);
        output.WriteLine(Compare.AssertClose(NpyFile.Read(Path.Combine(folder, "ip_tokens.npy")).ToFloat32(), tokens.Span, Tolerance, $"{caseName} ip_tokens"));

        using Tensor sample = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "sample.npy"));
        using Tensor context = ControlNetTests.ReadContext(Path.Combine(folder, "encoder_hidden_states.npy"));
        float[] timesteps = Array.ConvertAll(m.GetProperty("timesteps").EnumerateArray().ToArray(), e => e.GetSingle());
        using ModelSource model = ModelSource.Open(Fixtures.Path("small/model"));
        using var unet = new UNet2DConditionModel(model.UNet!, model.Weights(ModelComponent.Unet));
        Assert.Equal(source.LayerWidths, unet.CrossAttentionWidths.ToArray());
        using ImagePrompt prompt = adapter.Condition(tokens, m.GetProperty("scale").GetSingle());
        using Tensor prediction = Tensor.Allocate([sample.Dim(0), sample.Dim(1), sample.Dim(2), 4]);
        unet.Forward(sample, timesteps, context, [], prediction, [], imagePrompts: [prompt]);
        output.WriteLine(Compare.AssertClose(NpyFile.Read(Path.Combine(folder, "noise_pred.npy")).ToFloat32(), NpyTensors.ToNchw(prediction),
            Tolerance, $"{caseName} noise_pred"));
    }

    /// <summary>The case's image_embeds rows: zeros then the picture's when guided, else one picture per row.</summary>
    private static Tensor CaseEmbeds(JsonElement meta)
    {
        string[] pictures = meta.GetProperty("guided").GetBoolean()
            ? ["", meta.GetProperty("picture").GetString()!]
            : Array.ConvertAll(meta.GetProperty("picture").EnumerateArray().ToArray(), e => e.GetString()!);
        Tensor embeds = Tensor.Allocate([pictures.Length, 24]);
        for (int i = 0; i < pictures.Length; i++)
        {
            if (pictures[i].Length > 0)
            {
                NpyFile.Read(Data($"image_embeds_{pictures[i]}.npy")).ToFloat32().CopyTo(embeds.Span.Slice(i * 24, 24));
            }
        }
        return embeds;
    }

    [FixtureFact]
    public void A_condition_for_another_batch_or_unet_is_refused()
    {
        using IpAdapterSource source = IpAdapterSource.Open(Data("ip_adapter.safetensors"));
        using var adapter = new IpAdapterModel(source);
        using Tensor tokens = Tensor.Allocate([1, 4, 256]);
        using ImagePrompt prompt = adapter.Condition(tokens, 1f);
        using ModelSource small = ModelSource.Open(Fixtures.Path("small/model"));
        using var unet = new UNet2DConditionModel(small.UNet!, small.Weights(ModelComponent.Unet));
        using Tensor sample = Tensor.Allocate([2, 4, 4, 4]), prediction = Tensor.Allocate([2, 4, 4, 4]), context = Tensor.Allocate([2, 7, 256]);
        Assert.Contains("made for a batch of 1, this pass has 2",
            Assert.Throws<ArgumentException>(() => unet.Forward(sample, [1f], context, [], prediction, [], imagePrompts: [prompt])).Message);

        using ModelSource tiny = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var other = new UNet2DConditionModel(tiny.UNet!, tiny.Weights(ModelComponent.Unet));
        using Tensor one = Tensor.Allocate([1, 4, 4, 4]), onePrediction = Tensor.Allocate([1, 4, 4, 4]);
        using Tensor otherContext = Tensor.Allocate([1, 7, other.Config.CrossAttentionDim[0]]);
        Assert.Contains("an IP-Adapter for another model",
            Assert.Throws<ArgumentException>(() => other.Forward(one, [1f], otherContext, [], onePrediction, [], imagePrompts: [prompt])).Message);

        Assert.Throws<ArgumentException>(() => adapter.Project(Tensor.Allocate([1, 23])));
        Assert.Throws<ArgumentOutOfRangeException>(() => adapter.Condition(tokens, float.NaN));
    }
}
