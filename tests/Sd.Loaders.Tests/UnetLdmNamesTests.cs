using System.Text.Json;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;

namespace Sd.Loaders.Tests;

/// <summary>
/// The UNet's original (LDM) names, which LoRAs named after them are matched by: SD 1.5's real key map, and the test
/// exporter (written from ldm's module structure) over other layouts. The layout comes from the names alone.
/// </summary>
public sealed class UnetLdmNamesTests
{
    [FixtureFact]
    public void Every_sd15_unet_weight_has_its_real_ldm_name()
    {
        using JsonDocument keymap = JsonDocument.Parse(File.ReadAllBytes(Fixtures.Path("sd15-keymap.json")));
        var expected = new Dictionary<string, string>();
        foreach (JsonElement tensor in keymap.RootElement.GetProperty("tensors").EnumerateArray())
        {
            if (tensor.GetProperty("component").GetString() == "unet")
            {
                expected.Add(tensor.GetProperty("single_key").GetString()![LdmKeyExporter.UNetPrefix.Length..], tensor.GetProperty("diffusers_key").GetString()!);
            }
        }
        Assert.Equal(686, expected.Count);
        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), UnetLdmNames.Of(expected.Values).OrderBy(p => p.Key, StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(new[] { true, true, true, false }, 2)]
    [InlineData(new[] { false, true }, 2)] // the tiny fixture's layout
    [InlineData(new[] { true, true, false }, 2)] // the small fixture's layout
    [InlineData(new[] { true, false, true }, 1)]
    [InlineData(new[] { true }, 3)]
    public void Other_layouts_name_every_weight_as_ldm_does(bool[] downAttention, int layersPerBlock)
    {
        UNetConfig unet = LdmKeyExporterTests.UNetLayout(downAttention, layersPerBlock);
        List<string> names = DiffusersLayout.UNet(unet).Select(p => p.Name).ToList();
        Dictionary<string, string> ldm = UnetLdmNames.Of(names);

        Assert.Equal(names.Count, ldm.Count);
        foreach (string name in names)
        {
            Assert.Equal(name, ldm[LdmKeyExporter.UNet(name, unet)[LdmKeyExporter.UNetPrefix.Length..]]);
        }
    }

    [Fact]
    public void A_unet_without_an_ldm_form_has_no_ldm_names()
    {
        UNetConfig unet = LdmKeyExporterTests.UNetLayout([true, false], 2) with { LayersPerBlock = [2, 1] }; // LDM has one depth for all blocks
        Assert.Empty(UnetLdmNames.Of(DiffusersLayout.UNet(unet).Select(p => p.Name)));
        Assert.Empty(UnetLdmNames.Of(["text_model.encoder.layers.0.mlp.fc1.weight"]));
    }
}
