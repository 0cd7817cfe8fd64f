using System.Text.Json;
using Sd.Engine.Adapters;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// T2IAdapterModel and a UNet pass with its features against PyTorch (Data/adapter-reference.py, which restates
/// diffusers 0.27's T2IAdapter and the UNet's down_intrablock_additional_residuals on controlnet-reference.py's UNet,
/// itself checked against diffusers' fixture outputs): the small UNet (features after the last attention of two
/// cross-attention blocks, and after a plain last block) under classifier-free guidance and at odd latent sizes (the
/// average pool's ceil mode), and the tiny UNet, whose first block is plain with a downsampler (its feature goes after it).
/// </summary>
public sealed class T2IAdapterTests(ITestOutputHelper output) : IDisposable
{
    private const double Tolerance = 1e-4;

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static readonly TheoryData<string> Cases = new() { "small_guided", "small_odd_size", "tiny_after_downsampler" };

    [FixtureTheory]
    [MemberData(nameof(Cases))]
    public void Features_and_the_noise_prediction_match_pytorch(string caseName)
    {
        string folder = AdapterFixture.CaseFolder(caseName);
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "meta.json")));
        JsonElement m = meta.RootElement;
        using T2IAdapterSource source = T2IAdapterSource.Open(AdapterFixture.Write(_dir, caseName));
        using var adapter = new T2IAdapterModel(source.Config, source.Weights);
        using Tensor image = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "image.npy"));
        using AdapterFeatures features = adapter.Forward(image, m.GetProperty("scale").GetSingle());
        Assert.Equal(m.GetProperty("features").GetInt32(), features.Count);
        for (int i = 0; i < features.Count; i++)
        {
            output.WriteLine(Compare.AssertClose(NpyFile.Read(Path.Combine(folder, $"feature_{i}.npy")).ToFloat32(), NpyTensors.ToNchw(features[i]),
                Tolerance, $"{caseName} feature {i}"));
        }

        using Tensor sample = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "sample.npy"));
        using Tensor context = ControlNetTests.ReadContext(Path.Combine(folder, "encoder_hidden_states.npy"));
        float[] timesteps = Array.ConvertAll(m.GetProperty("timesteps").EnumerateArray().ToArray(), e => e.GetSingle());
        using ModelSource model = ModelSource.Open(Fixtures.Path($"{m.GetProperty("model").GetString()}/model"));
        using var unet = new UNet2DConditionModel(model.UNet!, model.Weights(ModelComponent.Unet));
        using Tensor prediction = Tensor.Allocate([sample.Dim(0), sample.Dim(1), sample.Dim(2), 4]);
        unet.Forward(sample, timesteps, context, [], prediction, [], adapter: features);
        output.WriteLine(Compare.AssertClose(NpyFile.Read(Path.Combine(folder, "noise_pred.npy")).ToFloat32(), NpyTensors.ToNchw(prediction),
            Tolerance, $"{caseName} noise_pred"));
    }

    /// <summary>PixelUnshuffle's channel order and the ceil-mode pool's cut windows, on values that show each.</summary>
    [Fact]
    public void Pixel_unshuffle_and_the_ceil_mode_pool_follow_pytorch()
    {
        // [1, 2, 4, 2]: value = 100 y + 10 x + c.
        using Tensor picture = Tensor.Allocate([1, 2, 4, 2]);
        for (int y = 0; y < 2; y++) for (int x = 0; x < 4; x++) for (int c = 0; c < 2; c++) picture.Span[(y * 4 + x) * 2 + c] = 100 * y + 10 * x + c;
        using Tensor unshuffled = T2IAdapterModel.PixelUnshuffle(picture, 2);
        Assert.Equal([1, 1, 2, 8], unshuffled.Shape.ToArray());
        // Output pixel (0, 1), channel c * 4 + dy * 2 + dx = input (dy, 2 + dx), channel c.
        Assert.Equal([20f, 30f, 120f, 130f, 21f, 31f, 121f, 131f], unshuffled.Span[8..].ToArray());

        // 3 x 3, one channel: the windows are 2x2, 2x1, 1x2 and 1x1.
        float[] input = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        var pooled = new float[4];
        unsafe
        {
            fixed (float* i = input, o = pooled) T2IAdapterModel.AveragePool2x2(i, 3, 3, 1, o);
        }
        Assert.Equal([3f, 4.5f, 7.5f, 9f], pooled);
    }

    [FixtureFact]
    public void Features_of_the_wrong_shape_and_bad_pictures_are_refused()
    {
        using T2IAdapterSource source = T2IAdapterSource.Open(AdapterFixture.Write(_dir, "small_guided"));
        using var adapter = new T2IAdapterModel(source.Config, source.Weights);
        using Tensor odd = Tensor.Allocate([1, 60, 64, 3]), gray = Tensor.Allocate([1, 64, 64, 1]), picture = Tensor.Allocate([1, 64, 64, 3]);
        Assert.Contains("multiples of 8", Assert.Throws<ArgumentException>(() => adapter.Forward(odd, 1f)).Message);
        Assert.Contains("[1, H, W, 3]", Assert.Throws<ArgumentException>(() => adapter.Forward(gray, 1f)).Message);
        Assert.Throws<ArgumentException>(() => adapter.Forward(picture, float.NaN));
        picture.Span[5] = float.NaN;
        Assert.Contains("NaN", Assert.Throws<ArithmeticException>(() => adapter.Forward(picture, 1f)).Message);
        picture.Span[5] = 0;

        // Features for 8x8 latents do not fit a 4x4 pass.
        using AdapterFeatures features = adapter.Forward(picture, 1f);
        using ModelSource model = ModelSource.Open(Fixtures.Path("small/model"));
        using var unet = new UNet2DConditionModel(model.UNet!, model.Weights(ModelComponent.Unet));
        using Tensor sample = Tensor.Allocate([1, 4, 4, 4]), prediction = Tensor.Allocate([1, 4, 4, 4]), context = Tensor.Allocate([1, 7, 256]);
        string message = Assert.Throws<ArgumentException>(() => unet.Forward(sample, [1f], context, [], prediction, [], adapter: features)).Message;
        Assert.Contains("adapter feature 0 is", message);
        Assert.Contains("down block 0 adds a [1, 4, 4, 64] one", message);
    }
}
