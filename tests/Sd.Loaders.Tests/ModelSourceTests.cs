using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// Reads the shared fixture models (tiny: F32 everywhere; small: UNet F16, text encoder BF16, VAE F32) through
/// <see cref="ModelSource"/> and checks configs, dtypes, parameter counts and every tensor value.
/// </summary>
public sealed class ModelSourceTests
{
    // Parameter counts from ../shared/fixtures/README.md (text / unet / vae), in millions to 2-3 digits.
    [FixtureTheory]
    [InlineData("tiny", 2, 1.62, 1.43, 0.66, "F32", "F32", "F32")]
    [InlineData("small", 1, 17.4, 18.2, 6.9, "BF16", "F16", "F32")]
    public void Fixture_models_load_with_their_documented_dtypes_and_sizes(
        string name, int decimals, double textM, double unetM, double vaeM, string textDType, string unetDType, string vaeDType)
    {
        using ModelSource model = ModelSource.Open(Fixtures.Path($"{name}/model"));
        Assert.Equal(ModelSourceKind.DiffusersFolder, model.Kind);
        Assert.Equal("StableDiffusionPipeline", model.Index!.PipelineClass);
        Assert.Equal([ModelComponent.Unet, ModelComponent.Vae, ModelComponent.TextEncoder], model.Components);
        AssertComponent(model.Weights(ModelComponent.TextEncoder), textM, decimals, textDType);
        AssertComponent(model.Weights(ModelComponent.Unet), unetM, decimals, unetDType);
        AssertComponent(model.Weights(ModelComponent.Vae), vaeM, decimals, vaeDType);
        Assert.NotNull(model.Tokenizer);
        Assert.Equal("<|endoftext|>", model.Tokenizer!.PadToken);
        Assert.Equal(77, model.Tokenizer.ModelMaxLength);
    }

    private static void AssertComponent(WeightSet weights, double millions, int decimals, string dtype)
    {
        Assert.Equal(millions, Math.Round(weights.ParameterCount / 1e6, decimals));
        foreach (TensorEntry entry in weights.Entries)
        {
            // position_ids-style integer buffers are the only non-float tensors a model may carry.
            if (!entry.DType.IsInteger())
            {
                Assert.Equal(dtype, entry.DType.Name());
            }
        }
    }

    [FixtureTheory]
    [InlineData("tiny")]
    [InlineData("small")]
    public void Every_tensor_value_equals_an_independent_decoding_of_its_bytes(string name)
    {
        using ModelSource model = ModelSource.Open(Fixtures.Path($"{name}/model"));
        foreach (ModelComponent component in model.Components)
        {
            foreach (TensorEntry entry in model.Weights(component).Entries)
            {
                if (!entry.DType.IsFloatWeight())
                {
                    continue;
                }
                float[] values = entry.ReadFloat32();
                ReadOnlySpan<byte> raw = entry.File.GetBytes(entry.Stored);
                for (int i = 0; i < values.Length; i++)
                {
                    float expected = entry.DType switch
                    {
                        TensorDType.F32 => BitConverter.ToSingle(raw.Slice(4 * i, 4)),
                        TensorDType.F16 => (float)BitConverter.ToHalf(raw.Slice(2 * i, 2)),
                        _ => BitConverter.UInt32BitsToSingle((uint)BitConverter.ToUInt16(raw.Slice(2 * i, 2)) << 16),
                    };
                    if (BitConverter.SingleToInt32Bits(expected) != BitConverter.SingleToInt32Bits(values[i]))
                    {
                        Assert.Fail($"{name}/{component} {entry.Name}[{i}]: {values[i]} != {expected}");
                    }
                }
            }
        }
    }

    [FixtureFact]
    public void Tiny_configs_carry_the_fixture_values_and_diffusers_defaults()
    {
        using ModelSource model = ModelSource.Open(Fixtures.Path("tiny/model"));
        UNetConfig unet = model.UNet!;
        Assert.Equal([32, 64], unet.BlockOutChannels);
        Assert.Equal([8, 8], unet.NumAttentionHeads); // attention_head_dim 8 means 8 heads
        Assert.Equal([32, 32], unet.CrossAttentionDim);
        Assert.Equal([2, 2], unet.LayersPerBlock);
        Assert.Equal(["DownBlock2D", "CrossAttnDownBlock2D"], unet.DownBlockTypes);
        Assert.False(unet.UseLinearProjection);
        Assert.True(unet.FlipSinToCos);
        Assert.Equal(0.18215, model.Vae!.ScalingFactor);
        Assert.Equal(2, model.Vae.DownscaleFactor);
        Assert.Equal("quick_gelu", model.TextEncoder!.HiddenAct);
        Assert.Equal(2, model.TextEncoder.EosTokenId);
        SchedulerConfig scheduler = model.Scheduler!;
        Assert.Equal("PNDMScheduler", scheduler.ClassName);
        Assert.Equal("scaled_linear", scheduler.BetaSchedule);
        Assert.Equal(1, scheduler.StepsOffset);
        Assert.Null(scheduler.TimestepSpacing); // absent: each scheduler applies its own default
        Assert.Equal("epsilon", scheduler.PredictionType);
    }

    [FixtureTheory]
    [InlineData("tiny")]
    [InlineData("small")]
    public void Configs_inferred_from_weights_agree_with_the_config_files(string name)
    {
        using ModelSource model = ModelSource.Open(Fixtures.Path($"{name}/model"));
        UNetConfig inferred = ConfigInference.UNet(model.Weights(ModelComponent.Unet));
        UNetConfig actual = model.UNet!;
        Assert.Equal(actual.BlockOutChannels, inferred.BlockOutChannels);
        Assert.Equal(actual.LayersPerBlock, inferred.LayersPerBlock);
        Assert.Equal(actual.DownBlockTypes, inferred.DownBlockTypes);
        Assert.Equal(actual.UpBlockTypes, inferred.UpBlockTypes);
        Assert.Equal(actual.CrossAttentionDim, inferred.CrossAttentionDim);
        Assert.Equal(actual.InChannels, inferred.InChannels);
        Assert.Equal(actual.OutChannels, inferred.OutChannels);
        Assert.Equal(actual.UseLinearProjection, inferred.UseLinearProjection);
        VaeConfig vae = ConfigInference.Vae(model.Weights(ModelComponent.Vae));
        Assert.Equal(model.Vae!.BlockOutChannels, vae.BlockOutChannels);
        Assert.Equal(model.Vae.LayersPerBlock, vae.LayersPerBlock);
        Assert.Equal(model.Vae.LatentChannels, vae.LatentChannels);
        ClipTextConfig text = ConfigInference.ClipText(model.Weights(ModelComponent.TextEncoder));
        Assert.Equal(model.TextEncoder!.HiddenSize, text.HiddenSize);
        Assert.Equal(model.TextEncoder.NumHiddenLayers, text.NumHiddenLayers);
        Assert.Equal(model.TextEncoder.IntermediateSize, text.IntermediateSize);
        Assert.Equal(model.TextEncoder.VocabSize, text.VocabSize);
    }
}
