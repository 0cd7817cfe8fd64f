using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Config;
using Sd.Loaders.Npy;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// Original-format ControlNet files (lllyasviel's cldm names, as control_v11p_sd15_canny.safetensors has them): the
/// ControlNetTests ControlNet renamed by Data/controlnet/original-keys.json, which controlnet-original-keys.py made from
/// diffusers' conversion tables, not from Sd's mapping. Read back, every tensor must land on its diffusers name, so the
/// ControlNet's residuals equal those of the diffusers folder (checked against PyTorch by ControlNetTests) bit for bit.
/// </summary>
public sealed class ControlNetOriginalFormatTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A whole ControlLDM's file (control_model.* beside the SD model's tensors), given the case's config.json.</summary>
    [FixtureFact]
    public void A_prefixed_file_with_its_config_runs_as_the_diffusers_folder()
    {
        string diffusers = ControlNetFixture.Write(_dir, "shared_image");
        string original = ControlNetFixture.WriteOriginal(_dir, diffusers, prefixed: true);
        File.Copy(Path.Combine(diffusers, "config.json"), Path.Combine(Path.GetDirectoryName(original)!, "config.json"));
        using ControlNetSource expected = ControlNetSource.Open(diffusers), actual = ControlNetSource.Open(original);
        Assert.Empty(actual.InferredSettings);
        Assert.True(ControlNetSource.IsControlNet(original));
        Assert.Equal((ControlNetFormat.ControlLdm, 3), (actual.Format, actual.SkippedKeyCount)); // the three SD model tensors
        Assert.Equal((ControlNetFormat.Diffusers, 0), (expected.Format, expected.SkippedKeyCount));
        Assert.Equal(expected.Weights.Entries.Count, actual.Weights.Entries.Count);
        AssertSameResiduals(expected, actual);
    }

    /// <summary>
    /// A ControlNet 1.1 file (bare names) alone: the config comes from the shapes. The heads do not show in them, so
    /// the diffusers folder is given the heads inference assumes; everything else must come out as the case's config.
    /// </summary>
    [FixtureFact]
    public void A_bare_file_alone_gets_its_config_from_the_shapes()
    {
        string diffusers = ControlNetFixture.Write(_dir, "shared_image");
        string original = ControlNetFixture.WriteOriginal(_dir, diffusers, prefixed: false);
        using ControlNetSource inferred = ControlNetSource.Open(original);
        Assert.True(ControlNetSource.IsControlNet(original));
        Assert.Equal((ControlNetFormat.Original, 0), (inferred.Format, inferred.SkippedKeyCount));

        // The tiny model's 32-wide context is no SD family's: 64 channels per head, at least one.
        Assert.Equal([1, 1], inferred.Config.Encoder.NumAttentionHeads);
        string config = Path.Combine(diffusers, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"attention_head_dim\": 8", "\"attention_head_dim\": 1", StringComparison.Ordinal));
        using ControlNetSource expected = ControlNetSource.Open(diffusers);
        ControlNetConfig e = expected.Config, a = inferred.Config;
        Assert.Equal(e.Encoder.BlockOutChannels, a.Encoder.BlockOutChannels);
        Assert.Equal(e.Encoder.DownBlockTypes, a.Encoder.DownBlockTypes);
        Assert.Equal(e.Encoder.UpBlockTypes, a.Encoder.UpBlockTypes);
        Assert.Equal(e.Encoder.LayersPerBlock, a.Encoder.LayersPerBlock);
        Assert.Equal(e.Encoder.CrossAttentionDim, a.Encoder.CrossAttentionDim);
        Assert.Equal(e.Encoder.UseLinearProjection, a.Encoder.UseLinearProjection);
        Assert.Equal(e.Encoder.InChannels, a.Encoder.InChannels);
        Assert.Equal(e.ConditioningEmbeddingOutChannels, a.ConditioningEmbeddingOutChannels);
        Assert.Equal(e.ConditioningChannels, a.ConditioningChannels);
        Assert.False(a.GlobalPoolConditions);
        Assert.False(a.BgrConditioning);
        string[] guessed = Array.ConvertAll(inferred.InferredSettings.ToArray(), g => $"{g.Component} {g.Setting}");
        Assert.Equal(["controlnet attention heads", "controlnet global pooling", "controlnet channel order"], guessed);
        AssertSameResiduals(expected, inferred);
    }

    /// <summary>
    /// A bare file with its yaml beside it (STEM.yaml, as lllyasviel ships them): the heads (num_heads) and the
    /// pooling come from the yaml, so only the channel order is still a guess, and it runs as the diffusers folder
    /// (attention_head_dim 8) bit for bit. A shuffle yaml's global_average_pooling turns pooling on.
    /// </summary>
    [FixtureFact]
    public void A_bare_file_takes_heads_and_pooling_from_its_yaml()
    {
        string diffusers = ControlNetFixture.Write(_dir, "shared_image");
        string original = ControlNetFixture.WriteOriginal(_dir, diffusers, prefixed: false);
        string yaml = Path.ChangeExtension(original, ".yaml");
        const string Layout = """
            model:
              target: cldm.cldm.ControlLDM
              params:
                control_stage_config:
                  target: cldm.cldm.ControlNet
                  params:
                    num_heads: 8 # the case's attention_head_dim
                    context_dim: 32
            """;
        File.WriteAllText(yaml, Layout);
        using (ControlNetSource fromYaml = ControlNetSource.Open(original))
        using (ControlNetSource expected = ControlNetSource.Open(diffusers))
        {
            Assert.Equal(yaml, fromYaml.ConfigFile);
            Assert.Equal([8, 8], fromYaml.Config.Encoder.NumAttentionHeads);
            Assert.False(fromYaml.Config.GlobalPoolConditions);
            Assert.Equal(["channel order"], Array.ConvertAll(fromYaml.InferredSettings.ToArray(), g => g.Setting));
            AssertSameResiduals(expected, fromYaml);
        }
        File.WriteAllText(yaml, Layout + "\n        global_average_pooling: True\n");
        using (ControlNetSource pooled = ControlNetSource.Open(original))
        {
            Assert.True(pooled.Config.GlobalPoolConditions);
        }
        File.WriteAllText(yaml, Layout.Replace("num_heads: 8", "num_heads: 3", StringComparison.Ordinal));
        Assert.Contains("does not divide block 0's 32 channels", Assert.Throws<InvalidFileException>(() => ControlNetSource.Open(original)).Message);
    }

    /// <summary>Without a tensor the inferred config still implies, the file fails the layout check, naming it.</summary>
    [FixtureFact]
    public void A_file_missing_a_zero_convolution_is_refused_by_name()
    {
        string original = ControlNetFixture.WriteOriginal(_dir, ControlNetFixture.Write(_dir, "shared_image"), prefixed: false);
        var writer = new SafetensorsWriter();
        using (SafetensorsFile file = SafetensorsFile.Open(original))
        {
            foreach (TensorInfo tensor in file.Tensors)
            {
                if (tensor.Name != "zero_convs.3.0.weight") writer.Add(tensor.Name, tensor.DType, tensor.Shape, file.GetBytes(tensor));
            }
        }
        writer.Save(original);
        string message = Assert.Throws<InvalidFileException>(() => ControlNetSource.Open(original)).Message;
        Assert.Contains("config inferred from its shapes", message);
        Assert.Contains("'controlnet_down_blocks.3.weight' [32, 32, 1, 1] is missing", message);
    }

    private void AssertSameResiduals(ControlNetSource expected, ControlNetSource actual)
    {
        string folder = ControlNetFixture.CaseFolder("shared_image");
        using Tensor sample = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "sample.npy"));
        using Tensor image = NpyTensors.ReadNchwAsNhwc(Path.Combine(folder, "image.npy"));
        NpyArray contextArray = NpyFile.Read(Path.Combine(folder, "encoder_hidden_states.npy"));
        using Tensor context = Tensor.Allocate(contextArray.Shape);
        contextArray.ToFloat32().CopyTo(context.Span);
        int batch = sample.Dim(0), h = sample.Dim(1), w = sample.Dim(2);
        using var one = new ControlNetModel(expected.Config, expected.Weights);
        using var other = new ControlNetModel(actual.Config, actual.Weights);
        using ControlResiduals a = one.CreateResiduals(batch, h, w), b = other.CreateResiduals(batch, h, w);
        one.Forward(sample, [500f, 500f], context, [], image, 1f, ResidualWeighting.Uniform, a);
        other.Forward(sample, [500f, 500f], context, [], image, 1f, ResidualWeighting.Uniform, b);
        for (int i = 0; i <= a.SkipCount; i++)
        {
            using Tensor x = a.Copy(i), y = b.Copy(i);
            Assert.True(x.Span.IndexOfAnyExcept(0f) >= 0, $"residual {i} is all 0");
            Assert.True(x.Span.SequenceEqual(y.Span), $"residual {i} differs");
        }
    }
}
