using System.Text.Json;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// The declared layouts must equal real checkpoints exactly (same keys, same shapes): the fixture models for their
/// configs, and SD 1.5's 1130 weights (sd15-keymap.json) for the SD 1.5 configs.
/// </summary>
public sealed class DiffusersLayoutTests
{
    [FixtureTheory]
    [InlineData("tiny")]
    [InlineData("small")]
    public void Layouts_equal_the_fixture_checkpoints(string name)
    {
        using ModelSource model = ModelSource.Open(Fixtures.Path($"{name}/model"));
        AssertSame(DiffusersLayout.UNet(model.UNet!), model.Weights(ModelComponent.Unet));
        AssertSame(DiffusersLayout.Vae(model.Vae!), model.Weights(ModelComponent.Vae));
        AssertSame(DiffusersLayout.ClipText(model.TextEncoder!), model.Weights(ModelComponent.TextEncoder));
    }

    private static void AssertSame(List<ParameterSpec> declared, WeightSet actual)
    {
        var expected = new Dictionary<string, long[]>();
        foreach (TensorEntry entry in actual.Entries)
        {
            if (!entry.DType.IsInteger()) expected.Add(entry.Name, entry.Shape);
        }
        Compare(declared, expected, actual.Source);
    }

    private static void Compare(List<ParameterSpec> declared, Dictionary<string, long[]> expected, string what)
    {
        var problems = new List<string>();
        var seen = new HashSet<string>();
        foreach (ParameterSpec spec in declared)
        {
            if (!seen.Add(spec.Name)) problems.Add($"declared twice: {spec.Name}");
            if (!expected.TryGetValue(spec.Name, out long[]? shape)) problems.Add($"not in the checkpoint: {spec.Name}");
            else if (!shape.SequenceEqual(spec.Shape)) problems.Add($"{spec.Name}: declared [{string.Join(",", spec.Shape)}], checkpoint [{string.Join(",", shape)}]");
        }
        foreach (string key in expected.Keys)
        {
            if (!seen.Contains(key)) problems.Add($"not declared: {key}");
        }
        Assert.True(problems.Count == 0, $"{what}: {problems.Count} differences\n{string.Join("\n", problems.Take(20))}");
    }

    [FixtureFact]
    public void Sd15_layouts_equal_the_real_sd15_key_map()
    {
        using JsonDocument keymap = JsonDocument.Parse(File.ReadAllBytes(Fixtures.Path("sd15-keymap.json")));
        var perComponent = new Dictionary<string, Dictionary<string, long[]>>
        {
            ["unet"] = new(), ["vae"] = new(), ["text_encoder"] = new(),
        };
        foreach (JsonElement tensor in keymap.RootElement.GetProperty("tensors").EnumerateArray())
        {
            string key = tensor.GetProperty("diffusers_key").GetString()!;
            if (key.EndsWith("position_ids", StringComparison.Ordinal)) continue; // an int64 buffer, not a weight
            long[] shape = tensor.GetProperty("diffusers_shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            perComponent[tensor.GetProperty("component").GetString()!].Add(key, shape);
        }
        Compare(DiffusersLayout.UNet(Sd15.UNet), perComponent["unet"], "sd15 unet");
        Compare(DiffusersLayout.Vae(Sd15.Vae), perComponent["vae"], "sd15 vae");
        Compare(DiffusersLayout.ClipText(Sd15.TextEncoder), perComponent["text_encoder"], "sd15 text encoder");
        Assert.Equal(859_520_964L, DiffusersLayout.UNet(Sd15.UNet).Sum(p => p.ElementCount));
    }
}
