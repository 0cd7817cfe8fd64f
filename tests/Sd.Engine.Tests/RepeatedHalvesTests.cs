using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// A batch whose second half repeats its first (classifier-free guidance) computes the UNet's layers before the first
/// cross-attention once: the prediction must be bit-identical to computing both halves. Two toy UNets with seeded
/// random weights: the demo model (a plain DownBlock2D first: the halves are copied after its first ResNet) and the
/// demo model with cross-attention in its first block (copied inside the first transformer, after its self-attention).
/// </summary>
public sealed class RepeatedHalvesTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(false, 2, 1)]
    [InlineData(true, 2, 1)]
    [InlineData(true, 4, 4)]
    public void Repeated_halves_predict_bit_for_bit_what_computing_both_halves_does(bool crossAttentionFirst, int batch, int timestepCount)
    {
        using ModelSource source = crossAttentionFirst ? WriteCrossAttentionFirst() : ModelSource.Demo();
        using var unet = new UNet2DConditionModel(source.UNet!, source.Weights(ModelComponent.Unet));
        Assert.Equal(crossAttentionFirst, unet.Config.DownBlockTypes[0] == "CrossAttnDownBlock2D");
        int dim = unet.Config.CrossAttentionDim[0];
        using Tensor sample = Tensor.Allocate([batch, 12, 10, 4]);
        using Tensor context = Tensor.Allocate([batch, 7, dim]);
        var random = new Random(3);
        UNetTests.Fill(sample.Span[..(int)(sample.Length / 2)], random);
        sample.Span[..(int)(sample.Length / 2)].CopyTo(sample.Span[(int)(sample.Length / 2)..]);
        UNetTests.Fill(context.Span, random);
        float[] timesteps = timestepCount == 1 ? [601f] : [601f, 17f, 601f, 17f];
        Assert.True(RepeatedHalves.In(sample, timesteps, []));

        float[] shared = Predict(unet, sample, timesteps, context);
        unet.ShareRepeatedHalves = false;
        float[] computed = Predict(unet, sample, timesteps, context);
        Assert.Equal(computed, shared);
        // The halves' text differs, so their predictions do: the second half was not a copy of the first's output.
        Assert.NotEqual(shared[..(shared.Length / 2)], shared[(shared.Length / 2)..]);
    }

    [Fact]
    public void Only_an_even_batch_with_bitwise_equal_halves_and_timesteps_counts_as_repeated()
    {
        using Tensor sample = Tensor.Allocate([2, 3, 3, 4]);
        var random = new Random(5);
        UNetTests.Fill(sample.Span[..36], random);
        sample.Span[..36].CopyTo(sample.Span[36..]);
        Assert.True(RepeatedHalves.In(sample, [5f], []));
        Assert.True(RepeatedHalves.In(sample, [5f, 5f], []));
        Assert.False(RepeatedHalves.In(sample, [5f, 6f], []));
        // An LCM-distilled UNet's condition rows feed the time embedding: they must repeat too.
        Assert.True(RepeatedHalves.In(sample, [5f], [1f, 2f, 1f, 2f]));
        Assert.False(RepeatedHalves.In(sample, [5f], [1f, 2f, 1f, 3f]));

        sample.Span[71] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(sample.Span[71]) ^ 1); // last bit of the last value
        Assert.False(RepeatedHalves.In(sample, [5f], []));
        sample.Span[71] = sample.Span[35];
        sample.Span[0] = 0f;
        sample.Span[36] = -0f; // equal as floats, not as bits: conv_in's products could differ in sign
        Assert.False(RepeatedHalves.In(sample, [5f], []));

        using Tensor odd = Tensor.Allocate([3, 2, 2, 4]);
        Assert.False(RepeatedHalves.In(odd, [5f], []));
    }

    private static float[] Predict(UNet2DConditionModel unet, Tensor sample, float[] timesteps, Tensor context)
    {
        using Tensor prediction = Tensor.Allocate([sample.Dim(0), sample.Dim(1), sample.Dim(2), unet.Config.OutChannels]);
        unet.Forward(sample, timesteps, context, prediction);
        return prediction.Span.ToArray();
    }

    private ModelSource WriteCrossAttentionFirst()
    {
        string root = _dir.Path;
        _dir.Write("model_index.json", """{ "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"] }"""u8.ToArray());
        // The demo UNet with cross-attention in its first block (and its mirror in the last up block).
        string json = DemoModel.UNetJson
            .Replace("[\"DownBlock2D\", \"DownBlock2D\",", "[\"CrossAttnDownBlock2D\", \"DownBlock2D\",", StringComparison.Ordinal)
            .Replace("\"UpBlock2D\", \"UpBlock2D\"]", "\"UpBlock2D\", \"CrossAttnUpBlock2D\"]", StringComparison.Ordinal);
        Assert.Equal(2, json.Split("CrossAttnDownBlock2D").Length - 1);
        Assert.Equal(2, json.Split("CrossAttnUpBlock2D").Length - 1);
        _dir.Write(Path.Combine("unet", "config.json"), System.Text.Encoding.UTF8.GetBytes(json));
        var config = UNetConfig.Load(Path.Combine(root, "unet", "config.json"));
        RandomModelWriter.Weights(DiffusersLayout.UNet(config), TensorDType.F32, seed: 11)
            .Save(Path.Combine(root, "unet", "diffusion_pytorch_model.safetensors"));
        return ModelSource.Open(root);
    }
}
