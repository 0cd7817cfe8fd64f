using Sd.Engine.Adapters;
using Sd.Loaders.Layout;

namespace Sd.Engine.Tests;

/// <summary>
/// diffusers' set_ip_adapter_scale dicts (InstantStyle) expanded over SD 1.5's 16 cross-attention layers in processor
/// order: down blocks 0-2 (2 transformer models each), up blocks 1-3 (3 each), then the mid block; and the dicts refused.
/// </summary>
public sealed class IpAdapterBlockScalesTests
{
    public static readonly TheoryData<string, float[]> Expansions = new()
    {
        // InstantStyle's "style only" form: one transformer model of one up block.
        { """{"up": {"block_1": [0.0, 1.0, 0.0]}}""", [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0] },
        { """{"down": 0.5, "mid": 1}""", [0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1] },
        { """{"up": {"block_2": 0.3, "block_3": [0.7]}, "mid": [0.2]}""", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0.3f, 0.3f, 0.3f, 0.7f, 0.7f, 0.7f, 0.2f] },
        { """{"down": {"block_0": [1, 2]}, "up": 4}""", [1, 2, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0] },
        { "{}", new float[16] },
    };

    [Theory]
    [MemberData(nameof(Expansions))]
    public void A_dict_expands_to_one_scale_per_cross_attention_layer(string json, float[] expected)
    {
        Assert.Equal(expected, IpAdapterBlockScales.Parse(json).Expand(Sd15.UNet));
    }

    public static readonly TheoryData<string, string> Refusals = new()
    {
        { """{"down": {"block_3": 1}}""", "'down.block_3' is no down block with attentions in this UNet (those are block_0, block_1, block_2)" },
        { """{"up": {"block_0": 1}}""", "'up.block_0' is no up block with attentions in this UNet (those are block_1, block_2, block_3)" },
        { """{"up": {"block_1": [1, 2]}}""", "'up.block_1' lists 2 scales; the block has 3 transformer models" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Blocks_the_unet_does_not_have_are_refused_when_expanded(string json, string expected)
    {
        IpAdapterBlockScales scales = IpAdapterBlockScales.Parse(json);
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => scales.Expand(Sd15.UNet)).Message);
    }

    [Theory]
    [InlineData("""{"side": 1}""", "'side' is none of down, up, mid")]
    [InlineData("""{"mid": [1, 2]}""", "'mid' has 2 scales")]
    [InlineData("""{"up": {"block_1": "x"}}""", "'up.block_1' must hold finite numbers, got \"x\"")]
    [InlineData("""{"up": {"block_1": 1e999}}""", "must hold finite numbers, got 1e999")]
    [InlineData("""{"up": {"first": 1}}""", "'up.first' is not block_N")]
    [InlineData("""{"up": {"block_1": []}}""", "must list 1 to 128 scales, got 0")]
    [InlineData("""{"up": [1]}""", "'up' must be a number or an object of block_N entries")]
    [InlineData("[1]", "must be a JSON object")]
    [InlineData("{", "are not JSON")]
    public void Dicts_not_in_diffusers_form_are_refused(string json, string expected)
    {
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => IpAdapterBlockScales.Parse(json)).Message);
    }

    [Fact]
    public void The_dict_is_kept_as_compact_json()
    {
        Assert.Equal("""{"up":{"block_1":[0,1.0,0]}}""", IpAdapterBlockScales.Parse("""{ "up" : { "block_1" : [0, 1.0, 0] } }""").Json);
    }
}
