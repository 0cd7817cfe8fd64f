using System.Text.Json;
using Sd.Loaders.Checkpoints;

namespace Sd.Loaders.Tests;

public sealed class SingleFileKeyMapperTests
{
    private const string KeymapFixture = "sd15-keymap.json";
    private const string FakePath = "/models/checkpoint.safetensors";
    private const string U = "model.diffusion_model.";

    /// <summary>One entry of sd15-keymap.json's "tensors".</summary>
    private sealed record KeymapEntry(string SingleKey, int[] Shape, string Component, string DiffusersKey, int[] DiffusersShape);

    [FixtureFact]
    public void MapsEverySd15KeyLikeDiffusers()
    {
        using JsonDocument keymap = LoadKeymap();
        var entries = ReadEntries(keymap);
        Assert.Equal(1131, entries.Count);
        var mapper = SingleFileKeyMapper.Create(entries.Select(e => e.SingleKey).ToList(), FakePath);

        var failures = new List<string>();
        var mappedPerComponent = new Dictionary<ModelComponent, int>();
        var diffusersKeys = new HashSet<string>();
        foreach (var entry in entries)
        {
            var result = mapper.Map(entry.SingleKey);
            bool isPositionIds = entry.SingleKey == "cond_stage_model.transformer.text_model.embeddings.position_ids";
            var expectedKind = isPositionIds ? SingleFileKeyKind.Ignored : SingleFileKeyKind.Mapped;
            int[] shape = result.SqueezeTrailing1x1 ? SqueezeTrailing1x1(entry.Shape) : entry.Shape;
            if (result.Kind != expectedKind
                || ComponentName(result.Component) != entry.Component
                || result.DiffusersKey != entry.DiffusersKey
                || !shape.SequenceEqual(entry.DiffusersShape))
            {
                failures.Add($"{entry.SingleKey}: got {result.Kind} {result.Component} {result.DiffusersKey} [{string.Join(",", shape)}], " +
                             $"expected {expectedKind} {entry.Component} {entry.DiffusersKey} [{string.Join(",", entry.DiffusersShape)}]");
            }
            if (result.Kind == SingleFileKeyKind.Mapped)
            {
                mappedPerComponent[result.Component] = mappedPerComponent.GetValueOrDefault(result.Component) + 1;
                Assert.True(diffusersKeys.Add(result.DiffusersKey), $"two keys map to {result.DiffusersKey}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} keys map wrongly:\n{string.Join("\n", failures)}");

        var counts = keymap.RootElement.GetProperty("counts");
        Assert.Equal(counts.GetProperty("unet").GetInt32(), mappedPerComponent[ModelComponent.Unet]);
        Assert.Equal(counts.GetProperty("vae").GetInt32(), mappedPerComponent[ModelComponent.Vae]);
        Assert.Equal(counts.GetProperty("text_encoder").GetInt32() - 1, mappedPerComponent[ModelComponent.TextEncoder]);
    }

    [FixtureFact]
    public void InfersTheSd15Layout()
    {
        using JsonDocument keymap = LoadKeymap();
        var mapper = SingleFileKeyMapper.Create(ReadEntries(keymap).Select(e => e.SingleKey).ToList(), FakePath);

        var unet = Assert.IsType<SingleFileUnetLayout>(mapper.Unet);
        Assert.Equal(4, unet.DownBlockCount);
        Assert.Equal(2, unet.LayersPerBlock);
        Assert.Equal([true, true, true, false], unet.DownBlockHasAttention);
        Assert.Equal([false, true, true, true], unet.UpBlockHasAttention);
        Assert.True(unet.MidBlockHasAttention);
        Assert.Equal(new SingleFileVaeLayout(4, 2), mapper.Vae);
    }

    [FixtureFact]
    public void NormalizesLegacyVaeAttentionNames()
    {
        using JsonDocument keymap = LoadKeymap();
        var pairs = keymap.RootElement.GetProperty("vae_legacy_attention_names").GetProperty("keys").EnumerateArray().ToList();
        Assert.Equal(16, pairs.Count);
        foreach (var pair in pairs)
        {
            string legacy = pair.GetProperty("key_in_sd15_folder_file").GetString()!;
            string current = pair.GetProperty("diffusers_key").GetString()!;
            Assert.Equal(current, SingleFileKeyMapper.NormalizeLegacyVaeAttentionName(legacy));
            Assert.Equal(current, SingleFileKeyMapper.NormalizeLegacyVaeAttentionName(current));
        }
    }

    [Theory]
    [InlineData("decoder.mid_block.attentions.0.group_norm.weight")]
    [InlineData("encoder.down_blocks.0.resnets.0.conv1.weight")]
    [InlineData("decoder.up_blocks.1.attentions.0.key.weight")]
    [InlineData("decoder.mid_block.attentions.0.key.weight.extra")]
    [InlineData("decoder.mid_block.attentions.x.key.weight")]
    public void LeavesOtherVaeNamesAlone(string key) =>
        Assert.Same(key, SingleFileKeyMapper.NormalizeLegacyVaeAttentionName(key));

    [FixtureFact]
    public void IgnoresScheduleBuffersEmaWeightsAndPositionIds()
    {
        using JsonDocument keymap = LoadKeymap();
        var mapper = SingleFileKeyMapper.Create(ReadEntries(keymap).Select(e => e.SingleKey).ToList(), FakePath);
        var ignore = keymap.RootElement.GetProperty("ignore_in_real_checkpoints");
        var ignored = ignore.GetProperty("exact").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Equal(12, ignored.Count);
        Assert.Equal(["model_ema."], ignore.GetProperty("prefixes").EnumerateArray().Select(e => e.GetString()!));
        ignored.AddRange(["model_ema.decay", "model_ema.num_updates", "model_ema.diffusion_modelinput_blocks00weight"]);
        ignored.AddRange(ignore.GetProperty("also_tolerate").EnumerateArray().Select(e => e.GetString()!));

        foreach (string key in ignored)
        {
            var result = mapper.Map(key);
            Assert.True(result.Kind == SingleFileKeyKind.Ignored, $"{key} is {result.Kind}");
            Assert.False(string.IsNullOrEmpty(result.Reason));
        }
    }

    [Theory]
    [InlineData("model.diffusion_model.label_emb.0.0.weight", ModelComponent.Unet)]
    [InlineData("model.diffusion_model.input_blocks.1.0.in_layers.1.weight", ModelComponent.Unet)] // SiLU: no weights
    [InlineData("model.diffusion_model.input_blocks.12.0.in_layers.0.weight", ModelComponent.Unet)] // past the last block
    [InlineData("model.diffusion_model.output_blocks.0.1.conv.weight", ModelComponent.Unet)] // not an upsampler slot
    [InlineData("first_stage_model.loss.logvar", ModelComponent.Vae)]
    [InlineData("first_stage_model.encoder.mid.attn_1.w.weight", ModelComponent.Vae)]
    [InlineData("cond_stage_model.transformer.embeddings_token_embedding.weight", ModelComponent.TextEncoder)]
    [InlineData("cond_stage_model.transformer.final_layer_norm", ModelComponent.TextEncoder)]
    [InlineData("conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", ModelComponent.Unet)]
    [InlineData("alphas", ModelComponent.Unet)]
    public void UnmappableKeysAreUnknown(string key, ModelComponent component)
    {
        var mapper = SingleFileKeyMapper.Create(SyntheticKeys(downBlocks: 4, layersPerBlock: 2, [true, true, true, false]), FakePath);
        var result = mapper.Map(key);
        Assert.Equal(SingleFileKeyKind.Unknown, result.Kind);
        Assert.Equal(component, result.Component);
        Assert.Equal(key, result.DiffusersKey);
        Assert.NotNull(result.Reason);
    }

    [Theory]
    [InlineData("embeddings.token_embedding.weight")]
    [InlineData("encoder.layers.11.self_attn.out_proj.bias")]
    [InlineData("final_layer_norm.weight")]
    public void Text_encoder_keys_without_the_text_model_level_map_as_A1111_maps_them(string key)
    {
        var mapper = SingleFileKeyMapper.Create(SyntheticKeys(downBlocks: 4, layersPerBlock: 2, [true, true, true, false]), FakePath);
        Assert.Equal(new SingleFileKeyResult(SingleFileKeyKind.Mapped, ModelComponent.TextEncoder, "text_model." + key, false, null),
            mapper.Map("cond_stage_model.transformer." + key));
        var positions = mapper.Map("cond_stage_model.transformer.embeddings.position_ids");
        Assert.Equal((SingleFileKeyKind.Ignored, "text_model.embeddings.position_ids"), (positions.Kind, positions.DiffusersKey));
    }

    [FixtureFact]
    public void MapsSd2UnetVaeAndOpenClipTextEncoder()
    {
        using JsonDocument keymap = LoadKeymap();
        // An SD 2.x single file has the SD 1.x UNet and VAE key names (linear proj_in/proj_out only change shapes)
        // and an OpenCLIP text encoder instead of the transformers CLIP one: ViT-H's 24 resblocks, the last unused.
        var entries = ReadEntries(keymap).Where(e => e.Component != "text_encoder").ToList();
        const string O = "cond_stage_model.model.";
        (string Single, string? Diffusers)[] openClip =
        [
            (O + "token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
            (O + "positional_embedding", "text_model.embeddings.position_embedding.weight"),
            (O + "ln_final.bias", "text_model.final_layer_norm.bias"),
            (O + "transformer.resblocks.0.ln_1.weight", "text_model.encoder.layers.0.layer_norm1.weight"),
            (O + "transformer.resblocks.0.ln_2.bias", "text_model.encoder.layers.0.layer_norm2.bias"),
            (O + "transformer.resblocks.0.attn.out_proj.weight", "text_model.encoder.layers.0.self_attn.out_proj.weight"),
            (O + "transformer.resblocks.0.mlp.c_fc.bias", "text_model.encoder.layers.0.mlp.fc1.bias"),
            (O + "transformer.resblocks.0.mlp.c_proj.weight", "text_model.encoder.layers.0.mlp.fc2.weight"),
            (O + "transformer.resblocks.0.attn.in_proj_weight", "text_model.encoder.layers.0.self_attn.q_proj.weight"),
            (O + "transformer.resblocks.22.ln_1.weight", "text_model.encoder.layers.22.layer_norm1.weight"),
            (O + "transformer.resblocks.23.attn.in_proj_weight", null),
            (O + "transformer.resblocks.23.ln_1.weight", null),
            (O + "text_projection", null),
            (O + "logit_scale", null),
        ];
        IEnumerable<string> layers = Enumerable.Range(1, 21).Select(i => $"{O}transformer.resblocks.{i}.ln_2.weight");
        var mapper = SingleFileKeyMapper.Create(entries.Select(e => e.SingleKey).Concat(openClip.Select(k => k.Single)).Concat(layers).ToList(), FakePath);

        foreach (var entry in entries)
            Assert.Equal(entry.DiffusersKey, mapper.Map(entry.SingleKey).DiffusersKey);
        foreach ((string single, string? diffusers) in openClip)
        {
            var result = mapper.Map(single);
            Assert.Equal(ModelComponent.TextEncoder, result.Component);
            Assert.Equal(diffusers is null ? SingleFileKeyKind.Ignored : SingleFileKeyKind.Mapped, result.Kind);
            Assert.Equal(diffusers ?? single, result.DiffusersKey);
        }
        Assert.Equal(
            ["text_model.encoder.layers.0.self_attn.q_proj.bias", "text_model.encoder.layers.0.self_attn.k_proj.bias", "text_model.encoder.layers.0.self_attn.v_proj.bias"],
            mapper.Map(O + "transformer.resblocks.0.attn.in_proj_bias").SplitRows!);
        Assert.Null(mapper.Map(O + "transformer.resblocks.0.ln_1.weight").SplitRows);
        Assert.Equal(SingleFileKeyKind.Unknown, mapper.Map(O + "transformer.resblocks.0.attn.qkv.weight").Kind);
    }

    [Fact]
    public void An_open_clip_text_encoder_needs_every_resblock()
    {
        const string O = "cond_stage_model.model.transformer.resblocks.";
        var gap = Assert.Throws<InvalidFileException>(() => SingleFileKeyMapper.Create([O + "0.ln_1.weight", O + "2.ln_1.weight"], FakePath));
        Assert.Contains("resblocks.1 is missing although", gap.Message);
        // Written back from diffusers' 23 layers: no resblock 23, and layer 22 is used.
        var mapper = SingleFileKeyMapper.Create([O + "0.ln_1.weight", O + "1.ln_1.weight"], FakePath);
        Assert.Equal(SingleFileKeyKind.Mapped, mapper.Map(O + "1.ln_1.weight").Kind);
    }

    [Theory]
    [InlineData("model.diffusion_model.input_blocks.1.1.proj_in.weight", "down_blocks.0.attentions.0.proj_in.weight")]
    [InlineData("model.diffusion_model.input_blocks.2.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight")]
    [InlineData("model.diffusion_model.input_blocks.3.0.in_layers.2.weight", "down_blocks.1.resnets.0.conv1.weight")]
    [InlineData("model.diffusion_model.input_blocks.3.0.skip_connection.weight", "down_blocks.1.resnets.0.conv_shortcut.weight")]
    [InlineData("model.diffusion_model.middle_block.2.emb_layers.1.weight", "mid_block.resnets.1.time_emb_proj.weight")]
    [InlineData("model.diffusion_model.output_blocks.1.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight")]
    [InlineData("model.diffusion_model.output_blocks.2.0.out_layers.3.weight", "up_blocks.1.resnets.0.conv2.weight")]
    [InlineData("model.diffusion_model.output_blocks.3.1.transformer_blocks.0.attn2.to_k.weight", "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight")]
    [InlineData("first_stage_model.encoder.down.0.downsample.conv.weight", "encoder.down_blocks.0.downsamplers.0.conv.weight")]
    [InlineData("first_stage_model.decoder.up.0.block.1.conv1.weight", "decoder.up_blocks.1.resnets.1.conv1.weight")]
    [InlineData("first_stage_model.decoder.up.1.upsample.conv.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight")]
    public void MapsASmallerLayout(string singleKey, string diffusersKey)
    {
        // Two down blocks of one resnet, attention only in the first (so only in the second up block).
        var keys = SyntheticKeys(downBlocks: 2, layersPerBlock: 1, [true, false]);
        var mapper = SingleFileKeyMapper.Create(keys, FakePath);

        Assert.Contains(singleKey, keys);
        var component = singleKey.StartsWith("first_stage_model.") ? ModelComponent.Vae : ModelComponent.Unet;
        Assert.Equal(new SingleFileKeyResult(SingleFileKeyKind.Mapped, component, diffusersKey, false, null), mapper.Map(singleKey));
        var unet = mapper.Unet!;
        Assert.Equal((2, 1), (unet.DownBlockCount, unet.LayersPerBlock));
        Assert.Equal([true, false], unet.DownBlockHasAttention);
        Assert.Equal([false, true], unet.UpBlockHasAttention);
        Assert.Equal(new SingleFileVaeLayout(2, 1), mapper.Vae);
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(1, 3)]
    [InlineData(3, 2)]
    public void MapsEverySyntheticKeyToADistinctKey(int downBlocks, int layersPerBlock)
    {
        bool[] attention = Enumerable.Range(0, downBlocks).Select(b => b % 2 == 0).ToArray();
        var keys = SyntheticKeys(downBlocks, layersPerBlock, attention);
        var mapper = SingleFileKeyMapper.Create(keys, FakePath);

        Assert.Equal(downBlocks, mapper.Unet!.DownBlockCount);
        Assert.Equal(layersPerBlock, mapper.Unet.LayersPerBlock);
        Assert.Equal(attention, mapper.Unet.DownBlockHasAttention);
        Assert.Equal(Enumerable.Reverse(attention), mapper.Unet.UpBlockHasAttention);
        var mapped = keys.Select(mapper.Map).ToList();
        Assert.All(mapped, r => Assert.Equal(SingleFileKeyKind.Mapped, r.Kind));
        Assert.Equal(keys.Count, mapped.Select(r => r.DiffusersKey).Distinct().Count());
    }

    [Theory]
    [InlineData("model.diffusion_model.input_blocks.3.", null, "input_blocks.3 is missing")]
    [InlineData("model.diffusion_model.input_blocks.2.1.", null, "only one of them has attention")]
    [InlineData("model.diffusion_model.output_blocks.5.", null, "output_blocks has 5 entries")]
    [InlineData("model.diffusion_model.output_blocks.2.1.", null, "output_blocks.2 should end with an upsampler")]
    [InlineData("model.diffusion_model.middle_block.2.", null, "middle_block has 2 layers")]
    [InlineData(null, "model.diffusion_model.input_blocks.1.0.op.weight", "downsampler before any resnet")]
    [InlineData(null, "model.diffusion_model.input_blocks.5.0.op.weight", "input_blocks.5 is a downsampler")]
    [InlineData(null, "model.diffusion_model.output_blocks.1.2.conv.weight", "output_blocks.1 has an upsampler")]
    [InlineData("first_stage_model.encoder.down.0.", null, "encoder.down.0 is missing")]
    [InlineData("first_stage_model.decoder.up.1.", null, "the decoder 1")]
    [InlineData("first_stage_model.decoder.up.0.block.2.", null, "decoder.up.1 has 3 resnets")]
    [InlineData("first_stage_model.encoder.down.1.block.1.", null, "encoder.down.1 has 1 resnets")]
    [InlineData("first_stage_model.decoder.up.1.upsample.", null, "decoder.up.1 has no upsample")]
    public void InconsistentLayoutsAreRejected(string? removedPrefix, string? addedKey, string problem)
    {
        // Two down blocks of two resnets, attention only in the first; a two-level VAE of two resnets per level.
        var keys = SyntheticKeys(downBlocks: 2, layersPerBlock: 2, [true, false], vaeLayersPerBlock: 2);
        if (removedPrefix != null)
            Assert.True(keys.RemoveAll(k => k.StartsWith(removedPrefix, StringComparison.Ordinal)) > 0);
        if (addedKey != null)
            keys.Add(addedKey);

        var error = Assert.Throws<InvalidFileException>(() => SingleFileKeyMapper.Create(keys, FakePath));
        Assert.Contains(FakePath, error.Message);
        Assert.Contains(problem, error.Problem);
    }

    [Fact]
    public void RejectsFilesWithoutSingleFileKeys()
    {
        string[] diffusersKeys = ["conv_in.weight", "text_model.final_layer_norm.weight"];
        Assert.False(SingleFileKeyMapper.LooksLikeSingleFileCheckpoint(diffusersKeys));
        var error = Assert.Throws<InvalidFileException>(() => SingleFileKeyMapper.Create(diffusersKeys, FakePath));
        Assert.Contains(FakePath, error.Message);
        Assert.True(SingleFileKeyMapper.LooksLikeSingleFileCheckpoint(["first_stage_model.quant_conv.weight"]));
    }

    private static JsonDocument LoadKeymap() => JsonDocument.Parse(File.ReadAllBytes(Fixtures.Path(KeymapFixture)));

    private static List<KeymapEntry> ReadEntries(JsonDocument keymap) =>
        keymap.RootElement.GetProperty("tensors").EnumerateArray().Select(t => new KeymapEntry(
            t.GetProperty("single_key").GetString()!,
            ReadShape(t.GetProperty("shape")),
            t.GetProperty("component").GetString()!,
            t.GetProperty("diffusers_key").GetString()!,
            ReadShape(t.GetProperty("diffusers_shape")))).ToList();

    private static int[] ReadShape(JsonElement shape) => shape.EnumerateArray().Select(d => d.GetInt32()).ToArray();

    private static int[] SqueezeTrailing1x1(int[] shape)
    {
        Assert.True(shape.Length > 2 && shape[^1] == 1 && shape[^2] == 1, $"[{string.Join(",", shape)}] has no trailing 1x1");
        return shape[..^2];
    }

    private static string ComponentName(ModelComponent component) => component switch
    {
        ModelComponent.Unet => "unet",
        ModelComponent.Vae => "vae",
        ModelComponent.TextEncoder => "text_encoder",
        _ => throw new ArgumentOutOfRangeException(nameof(component)),
    };

    /// <summary>
    /// The keys of an ldm-layout checkpoint with the given UNet shape (one weight per module is enough for the
    /// layout), a VAE with two resolution levels and a two-layer CLIP text encoder. Up blocks mirror the down blocks.
    /// </summary>
    private static List<string> SyntheticKeys(int downBlocks, int layersPerBlock, bool[] downAttention, int vaeLayersPerBlock = 1)
    {
        string[] resnet = ["in_layers.0.weight", "in_layers.2.weight", "emb_layers.1.weight", "out_layers.0.weight", "out_layers.3.weight"];
        string[] attention = ["norm.weight", "proj_in.weight", "transformer_blocks.0.attn2.to_k.weight", "proj_out.weight"];
        var keys = new List<string>
        {
            U + "time_embed.0.weight", U + "time_embed.2.weight", U + "input_blocks.0.0.weight", U + "out.0.weight", U + "out.2.weight",
        };
        void AddEntry(string entry, bool withAttention)
        {
            keys.AddRange(resnet.Select(r => $"{U}{entry}.0.{r}"));
            if (withAttention)
                keys.AddRange(attention.Select(a => $"{U}{entry}.1.{a}"));
        }

        int k = 1;
        for (int b = 0; b < downBlocks; b++)
        {
            for (int j = 0; j < layersPerBlock; j++, k++)
            {
                AddEntry($"input_blocks.{k}", downAttention[b]);
                // The channel count changes at the first resnet of every block but the first.
                if (j == 0 && b > 0)
                    keys.Add($"{U}input_blocks.{k}.0.skip_connection.weight");
            }
            if (b < downBlocks - 1)
                keys.Add($"{U}input_blocks.{k++}.0.op.weight");
        }
        keys.AddRange(resnet.Select(r => $"{U}middle_block.0.{r}"));
        keys.AddRange(attention.Select(a => $"{U}middle_block.1.{a}"));
        keys.AddRange(resnet.Select(r => $"{U}middle_block.2.{r}"));
        k = 0;
        for (int b = 0; b < downBlocks; b++)
        {
            bool withAttention = downAttention[downBlocks - 1 - b];
            for (int j = 0; j <= layersPerBlock; j++, k++)
            {
                AddEntry($"output_blocks.{k}", withAttention);
                keys.Add($"{U}output_blocks.{k}.0.skip_connection.weight");
                if (j == layersPerBlock && b < downBlocks - 1)
                    keys.Add($"{U}output_blocks.{k}.{(withAttention ? 2 : 1)}.conv.weight");
            }
        }

        const string V = "first_stage_model.";
        const int vaeLevels = 2;
        string[] vaeResnet = ["norm1.weight", "conv1.weight", "norm2.weight", "conv2.weight"];
        foreach (string side in new[] { "encoder", "decoder" })
        {
            keys.AddRange([$"{V}{side}.conv_in.weight", $"{V}{side}.norm_out.weight", $"{V}{side}.conv_out.weight"]);
            keys.AddRange(vaeResnet.Select(r => $"{V}{side}.mid.block_1.{r}"));
            keys.AddRange(vaeResnet.Select(r => $"{V}{side}.mid.block_2.{r}"));
            keys.AddRange(new[] { "norm", "q", "k", "v", "proj_out" }.Select(a => $"{V}{side}.mid.attn_1.{a}.weight"));
        }
        for (int level = 0; level < vaeLevels; level++)
        {
            for (int j = 0; j < vaeLayersPerBlock; j++)
                keys.AddRange(vaeResnet.Select(r => $"{V}encoder.down.{level}.block.{j}.{r}"));
            for (int j = 0; j <= vaeLayersPerBlock; j++)
                keys.AddRange(vaeResnet.Select(r => $"{V}decoder.up.{level}.block.{j}.{r}"));
            if (level < vaeLevels - 1)
                keys.Add($"{V}encoder.down.{level}.downsample.conv.weight");
            if (level > 0)
                keys.Add($"{V}decoder.up.{level}.upsample.conv.weight");
        }
        keys.AddRange([V + "quant_conv.weight", V + "post_quant_conv.weight"]);

        keys.AddRange([
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
            "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
            "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc2.bias",
            "cond_stage_model.transformer.text_model.final_layer_norm.weight",
        ]);
        return keys;
    }
}
