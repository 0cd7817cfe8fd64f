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
/// IP-Adapter Plus and full-face against PyTorch (Data/ip-adapter-plus-reference.py, which restates transformers
/// 4.38's hidden_states and diffusers 0.27's IPAdapterPlusImageProjection, IPAdapterFullImageProjection and
/// encode_image on the tiny image encoder of ip-adapter-reference.py): the encoder's penultimate hidden states, a random
/// Resampler and MLP in h94's layout (F16) for the tiny fixture UNet, and the guided pass the pipeline builds from
/// pictures (zero pixels for the unconditioned row; two pictures of one unit side by side, also for the plain adapter).
/// </summary>
public sealed class IpAdapterPlusTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;

    private static string Data(string name) => Path.Combine(Fixtures.BinariesFolder, "Data", "ipadapter", name);

    public static readonly TheoryData<string> Pixels = new() { "wide", "small", "zeros" };

    [Theory]
    [MemberData(nameof(Pixels))]
    public void Penultimate_hidden_states_match_pytorch(string name)
    {
        using ImageEncoderSource source = ImageEncoderSource.Open(Data("image_encoder"));
        using var encoder = new ClipVisionModel(source.Config, source.Weights);
        using Tensor pixels = name == "zeros" ? Tensor.Allocate([1, 28, 28, 3]) : NpyTensors.ReadNchwAsNhwc(Data($"pixel_values_{name}.npy"));
        using Tensor states = encoder.PenultimateHiddenStates(pixels);
        Assert.Equal([1, 17, 32], states.Shape.ToArray());
        output.WriteLine(Compare.AssertClose(NpyFile.Read(Data($"hidden_states_{name}.npy")).ToFloat32(), states.Span, Tolerance, $"{name} hidden_states[-2]"));
        if (name == "zeros")
        {
            // The encoder keeps them: the same values, first made and then copied out.
            using Tensor kept = encoder.ZeroPixelHiddenStates(), again = encoder.ZeroPixelHiddenStates();
            Assert.Equal(states.Span.ToArray(), kept.Span.ToArray());
            Assert.Equal(states.Span.ToArray(), again.Span.ToArray());
        }
    }

    public static readonly TheoryData<string, ImageProjectionKind> Cases = new()
    {
        { "plus", ImageProjectionKind.Resampler },
        { "full_face", ImageProjectionKind.Mlp },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Image_tokens_match_pytorch(string caseName, ImageProjectionKind kind)
    {
        using IpAdapterSource source = IpAdapterSource.Open(Data($"{caseName}/ip_adapter.safetensors"));
        using var adapter = new IpAdapterModel(source);
        Assert.Equal(kind, adapter.Projection.Kind);
        Assert.True(adapter.TakesHiddenStates);
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Data($"{caseName}/meta.json")));
        // [2, 17, 32]: the zero pixels' states, then the picture's.
        using Tensor hidden = Tensor.Allocate([2, 17, 32]);
        NpyFile.Read(Data("hidden_states_zeros.npy")).ToFloat32().CopyTo(hidden.Span);
        NpyFile.Read(Data($"hidden_states_{meta.RootElement.GetProperty("picture").GetString()}.npy")).ToFloat32().CopyTo(hidden.Span[(17 * 32)..]);
        using Tensor tokens = adapter.Project(hidden);
        int[] shape = Array.ConvertAll(meta.RootElement.GetProperty("tokens").EnumerateArray().ToArray(), e => e.GetInt32());
        Assert.Equal(shape, tokens.Shape.ToArray());
        output.WriteLine(Compare.AssertClose(NpyFile.Read(Data($"{caseName}/ip_tokens.npy")).ToFloat32(), tokens.Span, Tolerance, $"{caseName} ip_tokens"));
        Assert.Throws<ArgumentException>(() => adapter.Project(Tensor.Allocate([2, 32])));
    }

    /// <summary>Case folder, adapter file: one picture for Plus and full-face; two in one unit for Plus and the plain adapter.</summary>
    public static readonly TheoryData<string, string> GuidedPasses = new()
    {
        { "plus", "plus/ip_adapter.safetensors" },
        { "full_face", "full_face/ip_adapter.safetensors" },
        { "plus_two_pictures", "plus/ip_adapter.safetensors" },
        { "guided_two_pictures", "ip_adapter.safetensors" },
        { "plus_masked", "plus/ip_adapter.safetensors" },
    };

    [FixtureTheory]
    [MemberData(nameof(GuidedPasses))]
    public void The_guided_pass_from_pictures_matches_pytorch(string caseName, string adapterFile)
    {
        string folder = Data(caseName);
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "meta.json")));
        JsonElement m = meta.RootElement;
        using ImageEncoderSource encoderSource = ImageEncoderSource.Open(Data("image_encoder"));
        using var encoder = new ClipVisionModel(encoderSource.Config, encoderSource.Weights);
        using IpAdapterSource source = IpAdapterSource.Open(Data(adapterFile));
        using var adapter = new IpAdapterModel(source);
        string[] names = m.TryGetProperty("pictures", out JsonElement list)
            ? Array.ConvertAll(list.EnumerateArray().ToArray(), e => e.GetString()!) : [m.GetProperty("picture").GetString()!];
        PngImage[] pictures = Array.ConvertAll(names, name => PngFile.Read(Data($"picture_{name}.png")));
        // The Plus case scales per block as diffusers' set_ip_adapter_scale takes a dict: up block 0's models 0, 1.2
        // and 0.7, the mid block 0.5, the down block (not named) 0.
        var unit = new IpAdapterUnit(adapter, encoder, pictures)
        {
            Masks = m.TryGetProperty("masks", out JsonElement masks)
                ? Array.ConvertAll(masks.EnumerateArray().ToArray(), e => PngFile.Read(Data($"{e.GetString()}.png"))) : null,
            Scale = m.GetProperty("scale").GetSingle(),
            BlockScales = m.TryGetProperty("block_scales", out JsonElement blocks) && blocks.ValueKind == JsonValueKind.Object
                ? IpAdapterBlockScales.Parse(blocks.GetRawText()) : null,
        };
        using ModelSource model = ModelSource.Open(Fixtures.Path($"{m.GetProperty("unet").GetString()}/model"));
        if (unit.BlockScales is not null)
        {
            Assert.Equal([0f, 0f, 0f, 1.2f, 0.7f, 0.5f], unit.LayerScales(model.UNet!));
        }

        using IpAdapterPass pass = IpAdapterPass.Create([unit], model.UNet!, CancellationToken.None)!;
        using Tensor sample = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "sample.npy"));
        ImagePrompt[] prompts = pass.Prompts(2, guided: true, sample.Dim(1), sample.Dim(2), factor: 8);
        try
        {
            Assert.Equal(unit.Masks is not null, prompts[0].IsMasked);
            using Tensor context = ControlNetTests.ReadContext(Path.Combine(folder, "encoder_hidden_states.npy"));
            float[] timesteps = Array.ConvertAll(m.GetProperty("timesteps").EnumerateArray().ToArray(), e => e.GetSingle());
            using var unet = new UNet2DConditionModel(model.UNet!, model.Weights(ModelComponent.Unet));
            using Tensor prediction = Tensor.Allocate([2, sample.Dim(1), sample.Dim(2), 4]);
            unet.Forward(sample, timesteps, context, [], prediction, [], imagePrompts: prompts);
            output.WriteLine(Compare.AssertClose(NpyFile.Read(Path.Combine(folder, "noise_pred.npy")).ToFloat32(), NpyTensors.ToNchw(prediction),
                Tolerance, $"{caseName} noise_pred"));
        }
        finally
        {
            foreach (ImagePrompt prompt in prompts) prompt.Dispose();
        }
    }

    [Fact]
    public void Masks_are_binarized_and_downsampled_as_diffusers_does()
    {
        using JsonDocument reference = JsonDocument.Parse(File.ReadAllText(Data("masks.json")));
        JsonElement r = reference.RootElement;
        int height = r.GetProperty("height").GetInt32(), width = r.GetProperty("width").GetInt32();
        string[] names = ["mask_left", "mask_right"]; // gray and RGB pictures of other sizes
        for (int i = 0; i < names.Length; i++)
        {
            float[] binary = IpAdapterMasks.Binarize(PngFile.Read(Data($"{names[i]}.png")), width, height);
            Assert.Equal(Floats(r.GetProperty("binary")[i]), binary);
            foreach (JsonProperty queries in r.GetProperty("downsampled").EnumerateObject())
            {
                // Grids of the mask's aspect ratio, of another shape than the queries' (2 x 6 for 3 x 4), padded and cut.
                float[] weights = IpAdapterMasks.Downsample(binary, height, width, int.Parse(queries.Name));
                Assert.True(Compare.MaxAbs(Floats(queries.Value[i]), weights) <= 1e-6, $"{names[i]}, {queries.Name} queries");
            }
        }
        // diffusers divides by zero where the grid's height rounds to 0; Sd takes 1.
        Assert.Single(IpAdapterMasks.Downsample(new float[height * width], height, width, 1));
        Assert.Throws<ArgumentException>(() => IpAdapterMasks.Downsample(new float[5], height, width, 4));
    }

    private static float[] Floats(JsonElement array) => Array.ConvertAll(array.EnumerateArray().ToArray(), e => e.GetSingle());

    [FixtureFact]
    public void Units_of_no_pictures_too_many_or_a_missing_one_are_refused()
    {
        using ImageEncoderSource encoderSource = ImageEncoderSource.Open(Data("image_encoder"));
        using var encoder = new ClipVisionModel(encoderSource.Config, encoderSource.Weights);
        using IpAdapterSource source = IpAdapterSource.Open(Data("plus/ip_adapter.safetensors"));
        using var adapter = new IpAdapterModel(source);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        PngImage picture = PngFile.Read(Data("picture_wide.png"));
        GenerateRequest Request(PngImage[] pictures) => new() { Width = 64, Height = 64, IpAdapters = [new IpAdapterUnit(adapter, encoder, pictures)] };
        pipeline.Validate(Request(Enumerable.Repeat(picture, IpAdapterUnit.MaxImages).ToArray()), 1);
        foreach (PngImage[] pictures in new[] { [], Enumerable.Repeat(picture, IpAdapterUnit.MaxImages + 1).ToArray(), [picture, null!] })
        {
            Assert.StartsWith("IP-Adapter 0 has no model or image encoder, or not 1 to 16 pictures",
                Assert.Throws<ArgumentException>(() => pipeline.Validate(Request(pictures), 1)).Message, StringComparison.Ordinal);
        }
    }
}
