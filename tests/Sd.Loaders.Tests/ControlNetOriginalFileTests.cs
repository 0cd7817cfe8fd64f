using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// Hand-made original-format ControlNet files (cldm names) that lie about their layout: each is refused naming the file
/// and the key. Files that read back correctly are tested in Sd.Engine.Tests (ControlNetOriginalFormatTests).
/// </summary>
public sealed class ControlNetOriginalFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    // A one-block encoder (conv_in, one resnet, a mid resnet) under cldm names.
    private static readonly string[] Encoder =
    [
        "input_blocks.0.0.weight", "input_blocks.1.0.in_layers.0.weight", "middle_block.0.in_layers.0.weight",
    ];

    private string Write(params string[] names)
    {
        var writer = new SafetensorsWriter();
        foreach (string name in names)
        {
            writer.AddFloat32(name, [1], [0f]);
        }
        string path = _dir.File($"control-{Guid.NewGuid():N}.safetensors");
        writer.Save(path);
        return path;
    }

    private static string Refused(string path)
    {
        var e = Assert.Throws<InvalidFileException>(() => ControlNetSource.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        return e.Message;
    }

    /// <summary>
    /// An SD 1.5 ControlNet's cldm names, at full size: the encoder's are the real SD 1.5 UNet's single-file names
    /// (sd15-keymap.json) under control_model. or bare, and each must come out as that UNet's diffusers name; the control
    /// layers are cldm.py's (input_hint_block 0, 2, ..., 14; zero_convs.0-11; middle_block_out).
    /// </summary>
    [FixtureTheory]
    [InlineData("control_model.")]
    [InlineData("")]
    public void Sd15_controlnet_names_map_to_the_diffusers_names(string prefix)
    {
        var expected = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach ((string key, long[] _, string ldmKey) in DiffusersLayoutTests.Sd15UNetEncoder())
        {
            expected.Add(prefix + ldmKey, key);
        }
        string[] hint = ["conv_in", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "conv_out"];
        for (int i = 0; i < hint.Length; i++) expected.Add($"{prefix}input_hint_block.{2 * i}.weight", $"controlnet_cond_embedding.{hint[i]}.weight");
        for (int i = 0; i < 12; i++) expected.Add($"{prefix}zero_convs.{i}.0.bias", $"controlnet_down_blocks.{i}.bias");
        expected.Add($"{prefix}middle_block_out.0.weight", "controlnet_mid_block.weight");
        var keys = new List<string>(expected.Keys);
        if (prefix.Length > 0) keys.Add("model.diffusion_model.out.2.weight"); // the rest of a whole ControlLDM
        ControlNetKeyMapping mapping = ControlNetKeyMapping.Create(keys, "control.safetensors");
        foreach ((string original, string diffusers) in expected)
        {
            SingleFileKeyResult result = mapping.Map(original);
            Assert.True(result.Kind == SingleFileKeyKind.Mapped && result.DiffusersKey == diffusers, $"{original} -> {result.DiffusersKey} ({result.Kind}), expected {diffusers}");
        }
        if (prefix.Length > 0) Assert.Equal(SingleFileKeyKind.Ignored, mapping.Map("model.diffusion_model.out.2.weight").Kind);
    }

    [Fact]
    public void A_hint_convolution_at_an_odd_position_is_refused()
    {
        string message = Refused(Write([.. Encoder, "input_hint_block.0.weight", "input_hint_block.3.weight", "input_hint_block.4.weight"]));
        Assert.Contains("input_hint_block.3 has weights, but only the even positions are convolutions", message);
    }

    [Fact]
    public void A_missing_hint_convolution_is_refused()
    {
        string message = Refused(Write([.. Encoder, "control_model.input_hint_block.0.weight", "control_model.input_hint_block.4.weight"]));
        Assert.Contains("control_model.input_hint_block.2 is missing although control_model.input_hint_block.4 exists", message);
    }

    [Fact]
    public void A_key_no_rule_maps_is_refused_by_name()
    {
        string message = Refused(Write([.. Encoder, "input_hint_block.0.weight", "input_hint_block.2.weight", "zero_convs.0.1.weight", "lora_controlnet"]));
        Assert.Contains("2 tensors of an original-format ControlNet have no diffusers counterpart", message);
        Assert.Contains("'zero_convs.0.1.weight'", message);
    }

    [Fact]
    public void Output_blocks_have_no_place_in_a_controlnet()
    {
        string message = Refused(Write([.. Encoder, "input_hint_block.0.weight", "input_hint_block.2.weight", "output_blocks.0.0.in_layers.0.weight"]));
        Assert.Contains("'output_blocks.0.0.in_layers.0.weight'", message);
    }

    [Fact]
    public void An_inconsistent_encoder_is_refused_by_the_block_checks()
    {
        string message = Refused(Write("input_blocks.0.0.weight", "input_blocks.2.0.in_layers.0.weight", "middle_block.0.in_layers.0.weight",
            "input_hint_block.0.weight", "input_hint_block.2.weight"));
        Assert.Contains("input_blocks.1 is missing although input_blocks.2 exists", message);
    }
}
