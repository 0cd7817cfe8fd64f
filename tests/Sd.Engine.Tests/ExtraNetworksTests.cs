using Sd.Engine.Text;

namespace Sd.Engine.Tests;

/// <summary>
/// AUTOMATIC1111's extra-network tags (extra_networks.parse_prompt's <c>&lt;(\w+):([^&gt;]+)&gt;</c>, taken out of the
/// prompt) and how its Lora extension reads a tag's name and multipliers.
/// </summary>
public sealed class ExtraNetworksTests
{
    [Fact]
    public void Tags_are_taken_out_leaving_nothing_and_anything_else_stays()
    {
        Assert.Equal("a cat, , on a hill", ExtraNetworks.Strip("a cat, <lora:style:0.8>, on a hill<hypernet:h:1>", out IReadOnlyList<ExtraNetworkTag> tags));
        Assert.Equal(["<lora:style:0.8>", "<hypernet:h:1>"], tags.Select(t => t.ToString()));
        Assert.Equal(["style", "0.8"], tags[0].Arguments);

        foreach (string text in new[] { "<lora>", "<lora:>", "<:x>", "<lo-ra:x>", "a < b > c", "<lora:x", "x > y" })
        {
            Assert.Equal(text, ExtraNetworks.Strip(text, out IReadOnlyList<ExtraNetworkTag> none));
            Assert.Empty(none);
        }
        // [^>]+ takes anything up to the first '>', a '<' or a line break included; \w is Unicode.
        Assert.Equal("", ExtraNetworks.Strip("<lora:<a\nb>", out tags));
        Assert.Equal(["<a\nb"], tags[0].Arguments);
        Assert.Equal("<x", ExtraNetworks.Strip("<<lora:a>x", out tags));
        Assert.Equal("", ExtraNetworks.Strip("<ネット_1:a:b>", out tags));
        Assert.Equal("ネット_1", tags[0].Kind);
    }

    [Fact]
    public void A_lora_tag_gives_its_name_and_the_text_encoder_and_unet_multipliers()
    {
        Assert.Equal(new LoraTag("style", 1f, 1f), Lora("<lora:style>"));
        Assert.Equal(new LoraTag("style", 0.5f, 0.5f), Lora("<lora:style:0.5>"));
        Assert.Equal(new LoraTag("style", 0.5f, 0.8f), Lora("<lora:style:0.5:0.8>"));
        Assert.Equal(new LoraTag("style", 0.3f, 0.7f), Lora("<lora:style:unet=0.7:te=0.3>"));
        Assert.Equal(new LoraTag("style", 0.3f, 0.3f), Lora("<lora:style:1:te=0.3>")); // te= replaces the positional one, and unet follows
        Assert.Equal(new LoraTag("style", -1e-3f, -1e-3f), Lora("<lora:style: -1e-3 >")); // Python's float() takes spaces and exponents
        Assert.Equal(new LoraTag("a=b=c", 1f, 1f), Lora("<lora:a=b=c>")); // two '=' make a positional argument
        Assert.Equal(new LoraTag("style", 10f, 1.5f), Lora("<lora:style:1_0:\u0661.\u0665>")); // float("1_0"), Arabic-Indic digits
        foreach (string bad in new[] { "_1", "1_", "1__0", "inf", "0x1", "1,5", "" })
        {
            Assert.Throws<ArgumentException>(() => Lora($"<lora:style:{bad}:1>"));
        }

        Assert.Contains("names no LoRA", Assert.Throws<ArgumentException>(() => Lora("<lora:te=1>")).Message);
        Assert.Contains("dynamic rank (dyn)", Assert.Throws<ArgumentException>(() => Lora("<lora:style:1:1:8>")).Message);
        Assert.Contains("dynamic rank (dyn)", Assert.Throws<ArgumentException>(() => Lora("<lora:style:dyn=8>")).Message);
        Assert.Contains("multiplier \"abc\" is not a finite number", Assert.Throws<ArgumentException>(() => Lora("<lora:style:abc>")).Message);
        Assert.Contains("multiplier \"nan\"", Assert.Throws<ArgumentException>(() => Lora("<lora:style:nan>")).Message);
        Assert.Contains("multiplier \"1e39\"", Assert.Throws<ArgumentException>(() => Lora("<lora:style:1e39>")).Message);
    }

    [Fact]
    public void The_chunked_syntaxes_take_tags_out_and_report_them_and_plain_keeps_them_as_text()
    {
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        TokenizedPrompt weighted = tokenizer.Tokenize("a (cat) <lora:style:0.5>", PromptSyntax.Weighted);
        Assert.Equal(tokenizer.Tokenize("a (cat) ", PromptSyntax.Weighted).Chunks[0].Ids, weighted.Chunks[0].Ids);
        Assert.Equal("<lora:style:0.5>", Assert.Single(weighted.RemovedTags).ToString());
        Assert.Single(tokenizer.Tokenize("a <lora:x:1>", PromptSyntax.Chunked).RemovedTags);
        TokenizedPrompt plain = tokenizer.Tokenize("a <lora:x:1>", PromptSyntax.Plain);
        Assert.Empty(plain.RemovedTags);
        Assert.Equal(tokenizer.EncodeForPipeline("a <lora:x:1>", out _), plain.Chunks[0].Ids);
    }

    private static LoraTag Lora(string tag)
    {
        ExtraNetworks.Strip(tag, out IReadOnlyList<ExtraNetworkTag> tags);
        return ExtraNetworks.LoraOf(Assert.Single(tags));
    }
}
