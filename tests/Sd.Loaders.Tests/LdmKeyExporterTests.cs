using System.Text.Json;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// The test exporter (diffusers -> single-file keys) against SD 1.5's real key map, against the loader's mapper for
/// other layouts, and as a writer: a fixture model written as one file must load back as the same weights.
/// </summary>
public sealed class LdmKeyExporterTests
{
    [FixtureFact]
    public void Exports_every_sd15_key_like_diffusers()
    {
        using JsonDocument keymap = JsonDocument.Parse(File.ReadAllBytes(Fixtures.Path("sd15-keymap.json")));
        UNetConfig unet = Sd15.UNet;
        VaeConfig vae = Sd15.Vae;
        var failures = new List<string>();
        int count = 0;
        foreach (JsonElement tensor in keymap.RootElement.GetProperty("tensors").EnumerateArray())
        {
            string key = tensor.GetProperty("diffusers_key").GetString()!;
            bool addTrailing1x1 = false;
            string exported = tensor.GetProperty("component").GetString() switch
            {
                "unet" => LdmKeyExporter.UNet(key, unet),
                "vae" => LdmKeyExporter.Vae(key, vae, out addTrailing1x1),
                _ => LdmKeyExporter.Text(key),
            };
            int[] shape = Shape(tensor.GetProperty("diffusers_shape"));
            int[] exportedShape = addTrailing1x1 ? [.. shape, 1, 1] : shape;
            string expected = tensor.GetProperty("single_key").GetString()!;
            int[] expectedShape = Shape(tensor.GetProperty("shape"));
            if (exported != expected || !exportedShape.SequenceEqual(expectedShape))
                failures.Add($"{key}: exported {exported} [{string.Join(",", exportedShape)}], expected {expected} [{string.Join(",", expectedShape)}]");
            count++;
        }
        Assert.Equal(1131, count);
        Assert.True(failures.Count == 0, $"{failures.Count} keys export wrongly:\n{string.Join("\n", failures.Take(20))}");
    }

    /// <summary>Layouts SD 1.5 does not cover: other block counts and depths, attention in other blocks.</summary>
    [Theory]
    [InlineData(new[] { true, true, true, false }, 2, 2)]
    [InlineData(new[] { false, true }, 2, 1)] // the tiny fixture's layout
    [InlineData(new[] { true, true, false }, 2, 2)] // the small fixture's layout
    [InlineData(new[] { true, false, true }, 1, 3)]
    [InlineData(new[] { true }, 3, 1)]
    public void The_loader_maps_every_exported_key_back(bool[] downAttention, int layersPerBlock, int vaeLayersPerBlock)
    {
        int blocks = downAttention.Length;
        UNetConfig unet = UNetLayout(downAttention, layersPerBlock);
        VaeConfig vae = Sd15.Vae with
        {
            BlockOutChannels = Enumerable.Range(0, blocks + 1).Select(i => 32 << i).ToArray(),
            DownBlockTypes = Enumerable.Repeat("DownEncoderBlock2D", blocks + 1).ToArray(),
            UpBlockTypes = Enumerable.Repeat("UpDecoderBlock2D", blocks + 1).ToArray(),
            LayersPerBlock = vaeLayersPerBlock,
        };
        var expected = new Dictionary<string, (ModelComponent Component, string Key, bool Squeeze)>();
        foreach (var p in DiffusersLayout.UNet(unet))
            expected.Add(LdmKeyExporter.UNet(p.Name, unet), (ModelComponent.Unet, p.Name, false));
        foreach (var p in DiffusersLayout.Vae(vae))
            expected.Add(LdmKeyExporter.Vae(p.Name, vae, out bool squeeze), (ModelComponent.Vae, p.Name, squeeze));
        foreach (var p in DiffusersLayout.ClipText(Sd15.TextEncoder with { NumHiddenLayers = 2 }))
            expected.Add(LdmKeyExporter.Text(p.Name), (ModelComponent.TextEncoder, p.Name, false));

        var mapper = SingleFileKeyMapper.Create(expected.Keys, "exported.safetensors");
        Assert.Equal(blocks, mapper.Unet!.DownBlockCount);
        Assert.Equal(new SingleFileVaeLayout(blocks + 1, vaeLayersPerBlock), mapper.Vae);
        foreach (var (single, (component, key, squeeze)) in expected)
            Assert.Equal(new SingleFileKeyResult(SingleFileKeyKind.Mapped, component, key, squeeze, null), mapper.Map(single));
    }

    [FixtureTheory]
    [InlineData("tiny", false)]
    [InlineData("small", false)]
    [InlineData("small", true)] // NovelAI's text encoder keys, without text_model.
    public void A_fixture_model_written_as_one_file_loads_back_as_the_same_weights(string name, bool withoutTextModelLevel)
    {
        using var dir = new TempDirectory();
        string path = dir.File($"{name}.safetensors");
        using ModelSource folder = ModelSource.Open(Fixtures.Path($"{name}/model"));
        LdmKeyExporter.Write(folder, path, withoutTextModelLevel);

        using ModelSource single = ModelSource.Open(path);
        Assert.Equal(ModelSourceKind.SingleFile, single.Kind);
        Assert.Equal(folder.Components, single.Components);
        Assert.Empty(single.UnexpectedKeys);
        Assert.Equal(0, single.IgnoredKeyCount);
        foreach (ModelComponent component in folder.Components)
        {
            WeightSet expected = folder.Weights(component);
            WeightSet actual = single.Weights(component);
            Assert.Equal(expected.Count, actual.Count);
            foreach (TensorEntry entry in expected.Entries)
            {
                Assert.True(actual.TryGet(entry.Name, out TensorEntry loaded), $"{name}/{component}: {entry.Name} is missing");
                Assert.Equal(entry.Shape, loaded.Shape);
                Assert.Equal(entry.DType, loaded.DType);
                Assert.True(entry.File.GetBytes(entry.Stored).SequenceEqual(loaded.File.GetBytes(loaded.Stored)), $"{name}/{component}: {entry.Name} differs");
            }
        }
    }

    [FixtureFact]
    public void A_single_file_lcm_unet_is_refused_not_run_without_its_guidance_projection()
    {
        using var dir = new TempDirectory();
        string path = dir.File("lcm.safetensors");
        using (ModelSource folder = ModelSource.Open(Fixtures.Path("tiny/model")))
        {
            LdmKeyExporter.Write(folder, path);
        }
        var writer = new SafetensorsWriter();
        using (var file = SafetensorsFile.Open(path))
        {
            foreach (TensorInfo tensor in file.Tensors) writer.Add(tensor.Name, tensor.DType, tensor.Shape, file.GetBytes(tensor));
        }
        writer.AddFloat32("model.diffusion_model.time_embed.cond_proj.weight", [32, 256], new float[32 * 256]);
        string lcm = dir.File("with-cond-proj.safetensors");
        writer.Save(lcm);
        var e = Assert.Throws<NotSupportedException>(() => ModelSource.Open(lcm).Dispose());
        Assert.Contains("LCM-distilled", e.Message);
    }

    /// <summary>A small UNet with <paramref name="downAttention"/>'s blocks (the up blocks mirror them), each of <paramref name="layersPerBlock"/> resnets.</summary>
    internal static UNetConfig UNetLayout(bool[] downAttention, int layersPerBlock)
    {
        int blocks = downAttention.Length;
        return Sd15.UNet with
        {
            DownBlockTypes = downAttention.Select(a => a ? "CrossAttnDownBlock2D" : "DownBlock2D").ToArray(),
            UpBlockTypes = downAttention.Reverse().Select(a => a ? "CrossAttnUpBlock2D" : "UpBlock2D").ToArray(),
            BlockOutChannels = Enumerable.Range(0, blocks).Select(i => 32 << i).ToArray(),
            LayersPerBlock = Enumerable.Repeat(layersPerBlock, blocks).ToArray(),
            CrossAttentionDim = Enumerable.Repeat(32, blocks).ToArray(),
            TransformerLayersPerBlock = Enumerable.Repeat(1, blocks).ToArray(),
            NumAttentionHeads = Enumerable.Repeat(1, blocks).ToArray(),
        };
    }

    private static int[] Shape(JsonElement shape) => shape.EnumerateArray().Select(d => d.GetInt32()).ToArray();
}
