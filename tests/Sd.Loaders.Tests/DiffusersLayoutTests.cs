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

    /// <summary>
    /// An SD 1.5 ControlNet is the real SD 1.5 UNet's encoder (its names and shapes from sd15-keymap.json) plus the
    /// conditioning embedding (16, 32, 96, 256 wide) and a 1x1 convolution per skip and for the mid block.
    /// </summary>
    [FixtureFact]
    public void Sd15_controlnet_layout_is_the_real_unet_encoder_and_the_control_layers()
    {
        var expected = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach ((string key, long[] shape, string _) in Sd15UNetEncoder())
        {
            expected.Add(key, shape);
        }
        void Conv(string name, long o, long i, long k)
        {
            expected.Add(name + ".weight", [o, i, k, k]);
            expected.Add(name + ".bias", [o]);
        }
        Conv("controlnet_cond_embedding.conv_in", 16, 3, 3);
        long[][] blocks = [[16, 16], [32, 16], [32, 32], [96, 32], [96, 96], [256, 96]];
        for (int b = 0; b < blocks.Length; b++) Conv($"controlnet_cond_embedding.blocks.{b}", blocks[b][0], blocks[b][1], 3);
        Conv("controlnet_cond_embedding.conv_out", 320, 256, 3);
        long[] skips = [320, 320, 320, 320, 640, 640, 640, 1280, 1280, 1280, 1280, 1280];
        for (int s = 0; s < skips.Length; s++) Conv($"controlnet_down_blocks.{s}", skips[s], skips[s], 1);
        Conv("controlnet_mid_block", 1280, 1280, 1);
        Compare(DiffusersLayout.ControlNet(Sd15.ControlNet), expected, "sd15 controlnet");
    }

    /// <summary>The real SD 1.5 UNet's encoder weights: diffusers name, shape and single-file name (without its prefix).</summary>
    internal static IEnumerable<(string Key, long[] Shape, string LdmKey)> Sd15UNetEncoder()
    {
        using JsonDocument keymap = JsonDocument.Parse(File.ReadAllBytes(Fixtures.Path("sd15-keymap.json")));
        var result = new List<(string, long[], string)>();
        foreach (JsonElement tensor in keymap.RootElement.GetProperty("tensors").EnumerateArray())
        {
            string key = tensor.GetProperty("diffusers_key").GetString()!;
            if (tensor.GetProperty("component").GetString() != "unet"
                || !(key.StartsWith("conv_in.", StringComparison.Ordinal) || key.StartsWith("time_embedding.", StringComparison.Ordinal)
                    || key.StartsWith("down_blocks.", StringComparison.Ordinal) || key.StartsWith("mid_block.", StringComparison.Ordinal)))
            {
                continue;
            }
            long[] shape = tensor.GetProperty("diffusers_shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            result.Add((key, shape, tensor.GetProperty("single_key").GetString()!["model.diffusion_model.".Length..]));
        }
        return result;
    }
}
