using Sd.Loaders.Checkpoints;
using Sd.Loaders.Lora;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// LoRA files in kohya's and diffusers' layouts are read module by module, LyCORIS's types and DoRA included; anything else
/// (OFT, DoRA on full or norm modules, SDXL, unknown names, broken or mixed modules, bad shapes or alphas, pickles) is refused naming the tensor. Their modules are
/// matched to the built-in demo model's weights by diffusers name, and a module that fits no weight is refused.
/// </summary>
public sealed class LoraFileTests : IDisposable
{
    private const string ToQ = "down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_q.weight";
    private const string ProjIn = "down_blocks.2.attentions.0.proj_in.weight";
    private const string Conv1 = "down_blocks.0.resnets.0.conv1.weight";
    private const string QProj = "text_model.encoder.layers.0.self_attn.q_proj.weight";

    private readonly TempDirectory _dir = new();
    private readonly ModelSource _demo = ModelSource.Demo();

    public void Dispose()
    {
        _demo.Dispose();
        _dir.Dispose();
    }

    private long[] Shape(ModelComponent component, string weight)
    {
        Assert.True(_demo.Weights(component).TryGet(weight, out TensorEntry entry), weight);
        return entry.Shape;
    }

    [Fact]
    public void Kohya_modules_are_read_with_their_targets_ranks_and_alphas()
    {
        var writer = new LoraWriter();
        writer.Add(ModelComponent.Unet, ToQ, Shape(ModelComponent.Unet, ToQ), rank: 4, alpha: 2f, seed: 1);
        writer.Add(ModelComponent.Unet, Conv1, Shape(ModelComponent.Unet, Conv1), rank: 3, alpha: null, seed: 2);
        writer.Add(ModelComponent.TextEncoder, QProj, Shape(ModelComponent.TextEncoder, QProj), rank: 2, alpha: 0f, seed: 3);
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("kohya.safetensors")));

        Assert.Equal(3, lora.Modules.Count);
        LoraModule q = lora.Modules[0], conv = lora.Modules[1], text = lora.Modules[2];
        Assert.Equal(("lora_unet_down_blocks_2_attentions_0_transformer_blocks_0_attn1_to_q", ModelComponent.Unet, "down_blocks_2_attentions_0_transformer_blocks_0_attn1_to_q", true, "LoRA", 4, (float?)2f, 0.5),
            (q.Key, q.Component, q.Target, q.FlatTarget, q.Type, q.Rank, q.Alpha, q.Scale));
        Assert.Equal((3, (float?)null, 1.0), (conv.Rank, conv.Alpha, conv.Scale)); // no alpha: a scale of 1
        Assert.Equal([3, 32, 3, 3], conv.Weight.First.Down!.Shape);
        Assert.Equal((ModelComponent.TextEncoder, "text_model_encoder_layers_0_self_attn_q_proj", (float?)0f, 1.0), (text.Component, text.Target, text.Alpha, text.Scale)); // alpha 0: the rank
    }

    [Fact]
    public void Diffusers_modules_are_read_under_peft_and_older_names()
    {
        var writer = new LoraWriter();
        writer.Add(ModelComponent.Unet, ToQ, Shape(ModelComponent.Unet, ToQ), rank: 4, alpha: null, seed: 1, kohya: false);
        writer.AddRaw("text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora.down.weight", [2, 64], new float[128]);
        writer.AddRaw("text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora.up.weight", [64, 2], new float[128]);
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("peft.safetensors")));

        Assert.Equal(2, lora.Modules.Count);
        Assert.Equal(("unet.down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_q", "down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_q", false, (float?)null, 1.0),
            (lora.Modules[0].Key, lora.Modules[0].Target, lora.Modules[0].FlatTarget, lora.Modules[0].Alpha, lora.Modules[0].Scale));
        Assert.Equal((ModelComponent.TextEncoder, "text_model.encoder.layers.0.self_attn.k_proj", 2),
            (lora.Modules[1].Component, lora.Modules[1].Target, lora.Modules[1].Rank));
    }

    [Fact]
    public void Older_diffusers_layouts_are_read_attention_processors_included()
    {
        var writer = new SafetensorsWriter();
        writer.AddFloat32("down_blocks.2.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight", [2, 64], new float[128]);
        writer.AddFloat32("down_blocks.2.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight", [64, 2], new float[128]);
        writer.AddFloat32("unet.down_blocks.2.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.down.weight", [2, 64], new float[128]);
        writer.AddFloat32("unet.down_blocks.2.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.up.weight", [64, 2], new float[128]);
        writer.AddFloat32("text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_linear_layer.down.weight", [2, 64], new float[128]);
        writer.AddFloat32("text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_linear_layer.up.weight", [128, 2], new float[256]);
        string path = _dir.File("old.safetensors");
        writer.Save(path);
        using LoraFile lora = LoraFile.Open(path);

        Assert.Equal(
            [
                (ModelComponent.Unet, "down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_q"),
                (ModelComponent.Unet, "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_out.0"),
                (ModelComponent.TextEncoder, "text_model.encoder.layers.1.mlp.fc1"),
            ],
            lora.Modules.Select(m => (m.Component, m.Target)));
        Assert.Equal("down_blocks.2.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora", lora.Modules[0].Key);
        WeightSet unet = LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(lora, 1f)]);
        Assert.Equal(2, unet.ChangedWeights.Count);
    }

    /// <summary>
    /// Every UNet weight of the demo model, named as the single-file checkpoint names it (the test exporter, written
    /// from ldm's module structure), kohya's way ("lora_unet_input_blocks_1_0_in_layers_2") and ComfyUI's
    /// ("diffusion_model.input_blocks.1.0.in_layers.2"): each module changes the weight the diffusers name does.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Ldm_named_unet_modules_change_the_weights_their_diffusers_names_do(bool comfy)
    {
        WeightSet weights = _demo.Weights(ModelComponent.Unet);
        var writer = new LoraWriter();
        var expected = new Dictionary<string, string>();
        int seed = 0;
        foreach (TensorEntry entry in weights.Entries.Where(e => e.Name.EndsWith(".weight", StringComparison.Ordinal)))
        {
            string ldm = LdmKeyExporter.UNet(entry.Name, _demo.UNet!)[LdmKeyExporter.UNetPrefix.Length..^".weight".Length];
            string key = comfy ? "diffusion_model." + ldm : "lora_unet_" + ldm.Replace('.', '_');
            if (entry.Shape.Length == 1)
            {
                writer.AddRaw(key + ".diff", entry.Shape, new float[entry.Shape[0]]); // a norm's
            }
            else
            {
                writer.Add(ModelComponent.Unet, entry.Name, entry.Shape, rank: 1, alpha: null, seed: seed++, key: key);
            }
            expected.Add(entry.Name, key);
        }
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("ldm.safetensors")));

        WeightSet merged = LoraTargets.Apply(weights, ModelComponent.Unet, [(lora, 1f)]);
        Assert.Equal(expected.Count, merged.ChangedWeights.Count);
        foreach ((string name, string key) in expected)
        {
            Assert.Equal(key, Assert.Single(merged.DeltasOf(name).ToArray()).Module.Key);
        }
    }

    /// <summary>One weight under its diffusers and its LDM name in one file is two changes to it; SDXL's LDM names fit no SD 1.x weight.</summary>
    [Fact]
    public void Ldm_names_meet_the_same_checks()
    {
        string ldm = LdmKeyExporter.UNet(ProjIn, _demo.UNet!)[LdmKeyExporter.UNetPrefix.Length..^".weight".Length];
        var twice = new LoraWriter();
        twice.Add(ModelComponent.Unet, ProjIn, Shape(ModelComponent.Unet, ProjIn), rank: 2, alpha: null, seed: 1);
        twice.Add(ModelComponent.Unet, ProjIn, Shape(ModelComponent.Unet, ProjIn), rank: 2, alpha: null, seed: 2, key: "lora_unet_" + ldm.Replace('.', '_'));
        using LoraFile t = LoraFile.Open(twice.Save(_dir.File("twice.safetensors")));
        var e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(t, 1f)]));
        Assert.Contains($"both change '{ProjIn}'", e.Message);

        var sdxl = new LoraWriter(); // SDXL's second transformer block: SD 1.x blocks have one
        sdxl.Add(ModelComponent.Unet, "x.weight", [64, 64], rank: 2, alpha: null, seed: 1, key: "lora_unet_" + ldm.Replace('.', '_').Replace("proj_in", "transformer_blocks_1_attn1_to_q"));
        using LoraFile x = LoraFile.Open(sdxl.Save(_dir.File("sdxl.safetensors")));
        e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(x, 1f)]));
        Assert.Contains("SD 1.x, 2.x and SDXL LoRAs do not mix", e.Message);
    }

    /// <summary>
    /// ComfyUI's text-encoder names, its bias differences beside any module type, and CLIP's text_projection, which
    /// its text encoders carry and SD's never reads.
    /// </summary>
    [Fact]
    public void ComfyUI_text_encoder_modules_and_bias_differences_are_read()
    {
        const string Clip = "text_encoders.clip_l.transformer.";
        var writer = new LoraWriter();
        writer.Add(ModelComponent.TextEncoder, QProj, Shape(ModelComponent.TextEncoder, QProj), rank: 2, alpha: null, seed: 1, key: Clip + QProj[..^7]);
        writer.AddRaw(Clip + QProj[..^7] + ".diff_b", [64], new float[64]);
        writer.AddRaw(Clip + "text_model.final_layer_norm.diff", [64], new float[64]);
        writer.AddRaw(Clip + "text_model.final_layer_norm.diff_b", [64], new float[64]);
        writer.Add(ModelComponent.TextEncoder, "text_projection.weight", [64, 64], rank: 2, alpha: null, seed: 2, key: Clip + "text_projection");
        writer.AddRaw("text_encoders.clip_h.transformer.text_model.encoder.layers.1.mlp.fc1.lora_A.weight", [2, 64], new float[128]);
        writer.AddRaw("text_encoders.clip_h.transformer.text_model.encoder.layers.1.mlp.fc1.lora_B.weight", [128, 2], new float[256]);
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("comfy.safetensors")));

        Assert.Equal([("LoRA", true), ("full", true), ("LoRA", false), ("LoRA", false)], lora.Modules.Select(m => (m.Type, m.Bias is not null)));
        Assert.Equal("text_model_encoder_layers_0_self_attn_q_proj", lora.Modules[0].Target);
        WeightSet text = LoraTargets.Apply(_demo.Weights(ModelComponent.TextEncoder), ModelComponent.TextEncoder, [(lora, 0.5f)]);
        Assert.Equal(
            [QProj[..^7] + ".bias", QProj, "text_model.encoder.layers.1.mlp.fc1.weight", "text_model.final_layer_norm.bias", "text_model.final_layer_norm.weight"],
            text.ChangedWeights.Order(StringComparer.Ordinal));
        Assert.Equal(0.5f, text.DeltasOf(QProj[..^7] + ".bias")[0].Scale);
    }

    /// <summary>
    /// diffusers saves the PEFT config beside the tensors, and its modules store no alpha: lora_alpha (PEFT's default
    /// of 8 when the config has none), the first alpha_pattern key that ends the module's path at a dot, and rsLoRA's
    /// alpha / sqrt(rank), as PEFT scales (an alpha of 0 too); a module's own alpha, kohya's modules and a component
    /// without a config keep kohya's rule.
    /// </summary>
    [Fact]
    public void Diffusers_modules_take_their_alpha_from_the_peft_config_saved_with_them()
    {
        const string ToQ2 = "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_q.weight";
        const string KProj = "text_model.encoder.layers.0.self_attn.k_proj.weight";
        var writer = new LoraWriter();
        writer.Add(ModelComponent.Unet, ToQ, Shape(ModelComponent.Unet, ToQ), rank: 4, alpha: null, seed: 1, kohya: false);
        writer.Add(ModelComponent.Unet, ToQ2, Shape(ModelComponent.Unet, ToQ2), rank: 4, alpha: null, seed: 2, kohya: false);
        writer.Add(ModelComponent.Unet, ProjIn, Shape(ModelComponent.Unet, ProjIn), rank: 2, alpha: 6f, seed: 3, kohya: false);
        writer.Add(ModelComponent.Unet, Conv1, Shape(ModelComponent.Unet, Conv1), rank: 2, alpha: null, seed: 4);
        writer.Add(ModelComponent.TextEncoder, QProj, Shape(ModelComponent.TextEncoder, QProj), rank: 4, alpha: null, seed: 5, kohya: false);
        writer.Add(ModelComponent.TextEncoder, KProj, Shape(ModelComponent.TextEncoder, KProj), rank: 4, alpha: 4f, seed: 6, kohya: false);
        writer.AddMetadata("lora_adapter_metadata", """
            { "unet.alpha_pattern": { "ttn1.to_q": 3, "attn1.to_q": 2, "to_q": 5 }, "unet.lora_alpha": 8, "unet.r": 4, "unet.use_dora": false,
              "text_encoder.lora_alpha": 16, "text_encoder.use_rslora": true }
            """);
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("peft.safetensors")));

        // 2/4 (the first key that matches), 5/4, 6/2 (its own), kohya's 1, 16/sqrt(4), its own 4/4 (not rsLoRA's)
        Assert.Equal([0.5, 1.25, 3, 1, 8, 1], lora.Modules.Select(m => m.Scale));
        Assert.Equal([(float?)2f, 5f, 6f, null, 16f, 4f], lora.Modules.Select(m => m.Alpha));

        var defaults = new LoraWriter();
        defaults.Add(ModelComponent.Unet, ToQ, Shape(ModelComponent.Unet, ToQ), rank: 4, alpha: null, seed: 1, kohya: false);
        defaults.Add(ModelComponent.TextEncoder, QProj, Shape(ModelComponent.TextEncoder, QProj), rank: 4, alpha: null, seed: 5, kohya: false);
        defaults.AddMetadata("lora_adapter_metadata", """{ "unet.r": 4, "text_encoder.lora_alpha": 0 }""");
        using LoraFile d = LoraFile.Open(defaults.Save(_dir.File("peft-defaults.safetensors")));
        Assert.Equal([2.0, 0.0], d.Modules.Select(m => m.Scale)); // PEFT's default 8 / 4; PEFT's 0 / 4

        var unetOnly = new LoraWriter();
        unetOnly.Add(ModelComponent.TextEncoder, QProj, Shape(ModelComponent.TextEncoder, QProj), rank: 4, alpha: null, seed: 5, kohya: false);
        unetOnly.AddMetadata("lora_adapter_metadata", """{ "unet.r": 4 }""");
        using LoraFile text = LoraFile.Open(unetOnly.Save(_dir.File("unet-only.safetensors")));
        Assert.Equal(1.0, text.Modules[0].Scale);
    }

    [Theory]
    [InlineData("not json", "is no LoRA config Sd reads")]
    [InlineData("""{ "text_encoder.use_dora": true }""", "has no DoRA magnitude (lora_magnitude_vector), though the file's config sets use_dora true")]
    [InlineData("""{ "text_encoder.use_dora": "yes" }""", "is no LoRA config Sd reads")]
    [InlineData("""{ "unet.lora_alpha": "8" }""", "is no LoRA config Sd reads")]
    [InlineData("""{ "unet.lora_alpha": 1e39 }""", "is no LoRA config Sd reads")]
    [InlineData("""{ "text_encoder.alpha_pattern": { "(": 2 } }""", "is no LoRA config Sd reads")]
    [InlineData("[1]", "is no LoRA config Sd reads")]
    [InlineData(null, "holds more than 1024 keys")]
    public void A_broken_peft_config_is_refused(string? json, string message)
    {
        var writer = new LoraWriter();
        writer.Add(ModelComponent.TextEncoder, QProj, Shape(ModelComponent.TextEncoder, QProj), rank: 4, alpha: null, seed: 5, kohya: false);
        // null: an alpha_pattern of 1025 keys, more than Sd tries.
        writer.AddMetadata("lora_adapter_metadata", json ?? $$"""{ "text_encoder.alpha_pattern": { {{string.Join(", ", Enumerable.Range(0, 1025).Select(i => $"\"k{i}\": 1"))}} } }""");
        string path = writer.Save(_dir.File("bad-peft.safetensors"));
        var e = Assert.Throws<InvalidFileException>(() => LoraFile.Open(path));
        Assert.Contains(message, e.Message);
        Assert.StartsWith(path, e.Message);
    }

    public static TheoryData<string, string[], string> BadFiles() => new()
    {
        { "half a LoHa", ["lora_unet_x.hada_w1_a:2,4", "lora_unet_x.hada_w1_b:4,2"], "LoRA module 'lora_unet_x' (LoHa) has no 'hada_w2_a' tensor" },
        { "DoRA full", ["lora_unet_x.diff:4,4", "lora_unet_x.dora_scale:4,1"], "LoRA module 'lora_unet_x' (full) has DoRA's magnitude ('lora_unet_x.dora_scale'); DoRA goes with LoRA, LoHa and LoKr modules" },
        { "DoRA off", ["unet.x.lora_A.weight:2,4", "unet.x.lora_B.weight:4,2", "unet.x.lora_magnitude_vector:4", """metadata { "unet.use_dora": false }"""], "'unet.x' has a DoRA magnitude (lora_magnitude_vector), though the file's config does not set use_dora true" },
        { "DoRA's magnitude missing", ["unet.x.lora_A.weight:2,4", "unet.x.lora_B.weight:4,2", "unet.x.alpha:", """metadata { "unet.use_dora": true }"""], "'unet.x' has no DoRA magnitude (lora_magnitude_vector), though the file's config sets use_dora true" },
        { "two magnitudes", ["lora_unet_x.lora_down.weight:2,4", "lora_unet_x.lora_up.weight:4,2", "lora_unet_x.dora_scale:4,1", "lora_unet_x.lora_magnitude_vector:4"], "LoRA module 'lora_unet_x' has two DoRA magnitudes" },
        { "diffusers-named dora_scale", ["unet.x.dora_scale:4"], "'unet.x.dora_scale' is DoRA's magnitude as kohya names it (diffusers: lora_magnitude_vector) under a diffusers name" },
        { "OFT", ["lora_unet_x.oft_blocks:4,2,2"], "'oft_blocks' is not part of a LoRA module Sd merges" },
        { "two types", ["lora_unet_x.lora_down.weight:2,4", "lora_unet_x.hada_w1_a:4,2"], "LoRA module 'lora_unet_x' mixes LoRA and LoHa parts" },
        { "LoKr twice", ["lora_unet_x.lokr_w1:2,2", "lora_unet_x.lokr_w1_a:2,1", "lora_unet_x.lokr_w2:2,2"], "has both 'lokr_w1' and its factors" },
        { "LoKr half", ["lora_unet_x.lokr_w1:2,2", "lora_unet_x.lokr_w2_a:2,1"], "has no 'lokr_w2' and not both 'lokr_w2_a' and 'lokr_w2_b'" },
        { "LoKr 4-D w1", ["lora_unet_x.lokr_w1:2,2,3,3", "lora_unet_x.lokr_w2:2,2"], "'lora_unet_x.lokr_w1' has shape [2, 2, 3, 3]; expected a matrix" },
        { "LoHa sizes apart", ["lora_unet_x.hada_w1_a:4,2", "lora_unet_x.hada_w1_b:2,6", "lora_unet_x.hada_w2_a:4,2", "lora_unet_x.hada_w2_b:2,5"], "(LoHa) has factors of [4, 6] and [4, 5]" },
        { "Tucker core apart", ["lora_unet_x.lora_down.weight:2,4,1,1", "lora_unet_x.lora_up.weight:4,2,1,1", "lora_unet_x.lora_mid.weight:2,3,3,3"], "core [2, 3, 3, 3] (lora_mid.weight)" },
        { "empty diff", ["lora_unet_x.diff:0,4"], "'lora_unet_x.diff' has shape [0, 4]" },
        { "diffusers-named LoHa", ["unet.x.hada_w1_a:4,2"], "'unet.x.hada_w1_a' is a LyCORIS LoHa part under a diffusers name" },
        { "SDXL", ["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight:2,4"], "an SDXL LoRA" },
        { "ComfyUI SDXL", ["text_encoders.clip_g.transformer.text_model.encoder.layers_0.mlp.fc1.lora_down.weight:2,4"], "an SDXL LoRA" },
        { "ComfyUI DoRA norm", ["diffusion_model.out.2.w_norm:4", "diffusion_model.out.2.dora_scale:4"], "'diffusion_model.out.2' (norm) has DoRA's magnitude" },
        { "ComfyUI no module", ["diffusion_model.lora_up.weight:4,2"], "tensor 'diffusion_model.lora_up.weight' names no module" },
        { "diffusers-named bias", ["unet.x.diff_b:4"], "'unet.x.diff_b' is a bias difference under a diffusers name" },
        { "a checkpoint", ["diffusion_model.out.2.weight:4,4,3,3"], "'diffusion_model.out.2.weight' is a model's weight, not a LoRA's" },
        { "only a bias", ["diffusion_model.out.2.diff_b:4"], "LoRA module 'diffusion_model.out.2' has only its bias's difference (diff_b)" },
        { "two biases", ["lora_unet_x.w_norm:4", "lora_unet_x.b_norm:4", "lora_unet_x.diff_b:4"], "LoRA module 'lora_unet_x' has two bias differences" },
        { "unknown name", ["model.diffusion_model.out.0.weight:4"], "'model.diffusion_model.out.0.weight' is not a LoRA tensor Sd knows" },
        { "no up", ["lora_unet_x.lora_down.weight:2,4"], "LoRA module 'lora_unet_x' has no up" },
        { "no down", ["lora_unet_x.lora_up.weight:4,2", "lora_unet_x.alpha:"], "LoRA module 'lora_unet_x' has no down" },
        { "ranks differ", ["lora_unet_x.lora_down.weight:2,4", "lora_unet_x.lora_up.weight:4,3"], "has down [2, 4] (lora_down.weight) and up [4, 3] (lora_up.weight)" },
        { "3x3 up", ["lora_unet_x.lora_down.weight:2,4,3,3", "lora_unet_x.lora_up.weight:4,2,3,3"], "up [out, rank] or [out, rank, 1, 1]" },
        { "vector down", ["lora_unet_x.lora_down.weight:2", "lora_unet_x.lora_up.weight:4,2"], "has down [2] (lora_down.weight) and up [4, 2] (lora_up.weight)" },
        { "alpha of two", ["lora_unet_x.lora_down.weight:2,4", "lora_unet_x.lora_up.weight:4,2", "lora_unet_x.alpha:2"], "an alpha is one number" },
        { "two downs", ["unet.x.lora_A.weight:2,4", "unet.x.lora.down.weight:2,4", "unet.x.lora_B.weight:4,2"], "has two lora_down.weight tensors" },
        { "nothing", [], "holds no tensors" },
    };

    /// <param name="tensors">"name:dims" (dims comma-separated; none for a scalar), filled with 0.5; or "metadata {json}", the PEFT config.</param>
    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Files_that_are_no_SD_LoRA_Sd_merges_are_refused_naming_why(string what, string[] tensors, string message)
    {
        var writer = new SafetensorsWriter();
        foreach (string tensor in tensors)
        {
            if (tensor.StartsWith("metadata ", StringComparison.Ordinal))
            {
                writer.AddMetadata("lora_adapter_metadata", tensor["metadata ".Length..]);
                continue;
            }
            string[] parts = tensor.Split(':');
            long[] shape = parts[1].Length == 0 ? [] : Array.ConvertAll(parts[1].Split(','), long.Parse);
            long count = 1;
            foreach (long d in shape) count *= d;
            writer.AddFloat32(parts[0], shape, Enumerable.Repeat(0.5f, (int)count).ToArray());
        }
        string path = _dir.File(what.Replace(' ', '_') + ".safetensors");
        writer.Save(path);
        var e = Assert.Throws<InvalidFileException>(() => LoraFile.Open(path));
        Assert.Contains(message, e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void A_nan_alpha_an_integer_tensor_and_a_pickle_are_refused()
    {
        var writer = new SafetensorsWriter();
        writer.AddFloat32("lora_unet_x.lora_down.weight", [2, 4], new float[8]);
        writer.AddFloat32("lora_unet_x.lora_up.weight", [4, 2], new float[8]);
        writer.AddFloat32("lora_unet_x.alpha", [], [float.NaN]);
        string nan = _dir.File("nan.safetensors");
        writer.Save(nan);
        Assert.Contains("'lora_unet_x.alpha' is NaN; an alpha must be finite", Assert.Throws<InvalidFileException>(() => LoraFile.Open(nan)).Message);

        var ints = new SafetensorsWriter();
        ints.Add("lora_unet_x.lora_down.weight", TensorDType.I32, [2], new byte[8]);
        string integer = _dir.File("int.safetensors");
        ints.Save(integer);
        Assert.Contains("has dtype I32", Assert.Throws<InvalidFileException>(() => LoraFile.Open(integer)).Message);

        string pickle = _dir.Write("lora.pt", [0x80, 0x02, 0x7D, 0x71]);
        Assert.Throws<UnsafeFormatException>(() => LoraFile.Open(pickle));
    }

    [Fact]
    public void Modules_resolve_to_the_weights_they_change_with_their_scales()
    {
        var one = new LoraWriter();
        one.Add(ModelComponent.Unet, ToQ, Shape(ModelComponent.Unet, ToQ), rank: 4, alpha: 2f, seed: 1);
        one.Add(ModelComponent.Unet, ProjIn, Shape(ModelComponent.Unet, ProjIn), rank: 2, alpha: null, seed: 2);
        one.Add(ModelComponent.TextEncoder, QProj, Shape(ModelComponent.TextEncoder, QProj), rank: 2, alpha: null, seed: 3);
        var two = new LoraWriter();
        two.Add(ModelComponent.Unet, ToQ, Shape(ModelComponent.Unet, ToQ), rank: 8, alpha: 4f, seed: 4, kohya: false);
        using LoraFile a = LoraFile.Open(one.Save(_dir.File("a.safetensors")));
        using LoraFile b = LoraFile.Open(two.Save(_dir.File("b.safetensors")));

        WeightSet unet = LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(a, 0.5f), (b, -1f)]);
        Assert.Equal([ToQ, ProjIn], unet.ChangedWeights.Order(StringComparer.Ordinal).Reverse());
        WeightDelta[] q = unet.DeltasOf(ToQ).ToArray();
        Assert.Equal((0.25f, "lora_unet_down_blocks_2_attentions_0_transformer_blocks_0_attn1_to_q"), (q[0].Scale, q[0].Module.Key)); // 0.5 x 2/4
        Assert.Equal((-0.5f, 8), (q[1].Scale, q[1].Module.Rank)); // -1 x 4/8
        Assert.Equal(0.5f, unet.DeltasOf(ProjIn)[0].Scale); // no alpha: the file's weight alone
        Assert.Equal(0, unet.DeltasOf(Conv1).Length);
        Assert.Equal(_demo.Weights(ModelComponent.Unet).Count, unet.Count);

        WeightSet chained = LoraTargets.Apply(LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(a, 0.5f)]),
            ModelComponent.Unet, [(b, -1f)]);
        Assert.Equal([0.25f, -0.5f], chained.DeltasOf(ToQ).ToArray().Select(d => d.Scale)); // applied in two calls, both kept

        WeightSet text = LoraTargets.Apply(_demo.Weights(ModelComponent.TextEncoder), ModelComponent.TextEncoder, [(a, 1f), (b, 1f)]);
        Assert.Equal([QProj], text.ChangedWeights);
        WeightSet vae = _demo.Weights(ModelComponent.Vae);
        Assert.Same(vae, LoraTargets.Apply(vae, ModelComponent.Vae, [(a, 1f)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(a, float.PositiveInfinity)]));
    }

    [Fact]
    public void A_module_for_another_model_is_refused_naming_it()
    {
        var missing = new LoraWriter();
        missing.Add(ModelComponent.Unet, "down_blocks.0.attentions.0.proj_in.weight", [32, 32, 1, 1], rank: 2, alpha: null, seed: 1);
        using LoraFile m = LoraFile.Open(missing.Save(_dir.File("missing.safetensors")));
        var e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(m, 1f)]));
        Assert.Contains("LoRA module 'lora_unet_down_blocks_0_attentions_0_proj_in' changes no weight of the model's UNet", e.Message);

        var ldm = new LoraWriter(); // SD 1.5's last down block with attention: the demo's has none
        ldm.Add(ModelComponent.Unet, "input_blocks.8.1.proj_in.weight", [64, 64], rank: 2, alpha: null, seed: 1, key: "diffusion_model.input_blocks.8.1.proj_in");
        using LoraFile l = LoraFile.Open(ldm.Save(_dir.File("ldm.safetensors")));
        e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(l, 1f)]));
        Assert.Contains("'diffusion_model.input_blocks.8.1.proj_in' changes no weight of the model's UNet", e.Message);

        var wide = new LoraWriter();
        wide.Add(ModelComponent.TextEncoder, QProj, [768, 768], rank: 2, alpha: null, seed: 1, kohya: false);
        using LoraFile w = LoraFile.Open(wide.Save(_dir.File("wide.safetensors")));
        e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.TextEncoder), ModelComponent.TextEncoder, [(w, 1f)]));
        Assert.Contains($"(LoRA, up [768, 2] x down [2, 768]) does not fit '{QProj}' of shape [64, 64]", e.Message);

        var kernel = new LoraWriter();
        kernel.Add(ModelComponent.Unet, Conv1, [32, 32], rank: 2, alpha: null, seed: 1); // a 1x1 change to a 3x3 conv
        using LoraFile k = LoraFile.Open(kernel.Save(_dir.File("kernel.safetensors")));
        e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(k, 1f)]));
        Assert.Contains("of shape [32, 32, 3, 3]", e.Message);

        var full = new LoraWriter();
        full.Add(ModelComponent.TextEncoder, QProj, [64, 64], rank: 65, alpha: null, seed: 1);
        using LoraFile f = LoraFile.Open(full.Save(_dir.File("full.safetensors")));
        e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.TextEncoder), ModelComponent.TextEncoder, [(f, 1f)]));
        Assert.Contains("has rank 65, more than the 64 of", e.Message);

        var twice = new LoraWriter();
        twice.Add(ModelComponent.Unet, ToQ, Shape(ModelComponent.Unet, ToQ), rank: 2, alpha: null, seed: 1);
        twice.Add(ModelComponent.Unet, ToQ, Shape(ModelComponent.Unet, ToQ), rank: 2, alpha: null, seed: 2, kohya: false);
        using LoraFile t = LoraFile.Open(twice.Save(_dir.File("twice.safetensors")));
        e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(t, 1f)]));
        Assert.Contains($"both change '{ToQ}'", e.Message);
    }

    /// <summary>
    /// DoRA magnitudes must have the shapes their tools write: PEFT's lora_magnitude_vector one value per output row,
    /// [out] for a Linear, [1, out, 1, 1] (or [out]) for a conv; and DoRA changes 2-D and 4-D weights only.
    /// </summary>
    [Fact]
    public void Dora_magnitudes_of_shapes_their_tools_never_write_are_refused()
    {
        const string Norm1 = "down_blocks.0.resnets.0.norm1.weight";
        foreach ((string weight, long[] magnitude, string? refusal) in new (string, long[], string?)[]
        {
            (ToQ, [64], null),
            (Conv1, [1, 32, 1, 1], null),
            (Conv1, [32], null),
            (ToQ, [1, 64], $"has a DoRA magnitude 'unet.{ToQ[..^".weight".Length]}.lora_magnitude_vector' of shape [1, 64] for '{ToQ}' [64, 64]: expected one value per output row, as PEFT stores it"),
            (ToQ, [64, 1], "as PEFT stores it"),
            (ToQ, [32], "as PEFT stores it"),
            (Conv1, [32, 1, 1, 1], "as PEFT stores it"),
            (Norm1, [32], $"has a DoRA magnitude for '{Norm1}' [32]; DoRA changes Linear and conv weights (2-D or 4-D)"),
        })
        {
            string module = "unet." + weight[..^".weight".Length];
            long[] shape = Shape(ModelComponent.Unet, weight);
            var writer = new LoraWriter();
            if (shape.Length == 1)
            {
                writer.AddRaw(module + ".lora_A.weight", [1, 1], [0.5f]); // a norm's [32] read as [32, 1]
                writer.AddRaw(module + ".lora_B.weight", [shape[0], 1], new float[shape[0]]);
            }
            else
            {
                writer.Add(ModelComponent.Unet, weight, shape, rank: 1, alpha: null, seed: 1, kohya: false);
            }
            writer.AddRaw(module + ".lora_magnitude_vector", magnitude, Enumerable.Repeat(1f, (int)magnitude.Aggregate(1L, (a, b) => a * b)).ToArray());
            using LoraFile lora = LoraFile.Open(writer.Save(_dir.File($"peft-dora-{Guid.NewGuid():N}.safetensors")));
            Assert.True(lora.Modules[0].PeftMagnitude);
            if (refusal is null)
            {
                LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(lora, 1f)]);
                continue;
            }
            var e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(lora, 1f)]));
            Assert.Contains(refusal, e.Message);
        }
    }

    /// <summary>LyCORIS modules meet the same checks against the model's weights, and a few of their own (DoRA's magnitude's shape).</summary>
    [Fact]
    public void Lycoris_modules_that_do_not_fit_the_model_are_refused_naming_why()
    {
        string toQ = "lora_unet_" + ToQ[..^".weight".Length].Replace('.', '_');
        (string Part, long[] Shape)[] misfit = [("hada_w1_a", [64, 2]), ("hada_w1_b", [2, 32]), ("hada_w2_a", [64, 2]), ("hada_w2_b", [2, 32])];
        (string, long[])[] hostile = [("hada_w1_a", [65, 64]), ("hada_t1", [65, 1, 1, 1]), ("hada_w1_b", [1, 64]), ("hada_w2_a", [64, 1]), ("hada_w2_b", [1, 64])];
        (string, long[])[] noBias = [("diff", [64, 64]), ("diff_b", [64])];
        (string, long[])[] kron = [("lokr_w1", [2, 2]), ("lokr_w2", [32, 16])];
        static (string, long[])[] Dora(long[] magnitude) => [("lora_down.weight", [2, 64]), ("lora_up.weight", [64, 2]), ("dora_scale", magnitude)];
        foreach (((string, long[])[] parts, string expected) in new[]
        {
            (misfit, $"(LoHa, (up [64, 2] x down [2, 32]) * (up [64, 2] x down [2, 32])) does not fit '{ToQ}' of shape [64, 64]"),
            (hostile, $"has a factor of rank 65 for '{ToQ}' [64, 64]: its up and down would hold more than twice the weight's elements"),
            (noBias, $"changes the bias '{ToQ[..^".weight".Length]}.bias', which the model's layer does not have"),
            (kron, $"(LoKr, kron([2, 2], [32, 16])) does not fit '{ToQ}' of shape [64, 64]"),
            (Dora([64, 64]), $"has a DoRA magnitude '{toQ}.dora_scale' of shape [64, 64] for '{ToQ}' [64, 64]: expected one value per output row ([out, 1, ...]) or per input channel ([1, in, ...])"),
            (Dora([1, 63]), "has a DoRA magnitude"),
            (Dora([]), "has a DoRA magnitude"),
        })
        {
            var writer = new SafetensorsWriter();
            foreach ((string part, long[] shape) in parts)
            {
                long count = 1;
                foreach (long d in shape) count *= d;
                writer.AddFloat32($"{toQ}.{part}", shape, new float[count]);
            }
            string path = _dir.File($"lycoris-{Guid.NewGuid():N}.safetensors");
            writer.Save(path);
            using LoraFile lora = LoraFile.Open(path);
            var e = Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(_demo.Weights(ModelComponent.Unet), ModelComponent.Unet, [(lora, 1f)]));
            Assert.Contains(expected, e.Message);
        }
    }
}
