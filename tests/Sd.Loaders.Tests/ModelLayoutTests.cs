using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// Hand-made model layouts (no fixtures needed): sharded checkpoints, fp16 variant names, legacy VAE attention names,
/// a single-file checkpoint, and broken folders and configs.
/// </summary>
public sealed class ModelLayoutTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void Save(string path, params (string Name, long[] Shape)[] tensors)
    {
        var writer = new SafetensorsWriter();
        float next = 0;
        foreach ((string name, long[] shape) in tensors)
        {
            long count = 1;
            foreach (long d in shape) count *= d;
            var values = new float[count];
            for (int i = 0; i < values.Length; i++) values[i] = next++;
            writer.AddFloat32(name, shape, values);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        writer.Save(path);
    }

    private string MakeFolder(string vaeFileName, bool withIndexEntry = true)
    {
        _dir.WriteText("model/model_index.json",
            "{\"_class_name\":\"StableDiffusionPipeline\",\"vae\":[\"diffusers\",\"AutoencoderKL\"],\"safety_checker\":[null,null]" +
            (withIndexEntry ? "" : "") + "}");
        _dir.WriteText("model/vae/config.json", "{\"block_out_channels\":[32],\"latent_channels\":4}");
        Save(_dir.File($"model/vae/{vaeFileName}"),
            ("decoder.mid_block.attentions.0.query.weight", [2, 2]),
            ("decoder.mid_block.attentions.0.proj_attn.bias", [2]),
            ("decoder.conv_in.weight", [2, 4, 3, 3]));
        return _dir.File("model");
    }

    [Fact]
    public void Legacy_vae_attention_names_are_renamed_and_defaults_apply()
    {
        using ModelSource model = ModelSource.Open(MakeFolder("diffusion_pytorch_model.safetensors"));
        Assert.Equal([ModelComponent.Vae], model.Components);
        Assert.Equal(VaeConfig.DefaultScalingFactor, model.Vae!.ScalingFactor); // absent key -> 0.18215
        Assert.Equal(["DownEncoderBlock2D"], model.Vae.DownBlockTypes);
        WeightSet vae = model.Weights(ModelComponent.Vae);
        Assert.True(vae.TryGet("decoder.mid_block.attentions.0.to_q.weight", out _));
        Assert.True(vae.TryGet("decoder.mid_block.attentions.0.to_out.0.bias", out _));
        Assert.False(vae.TryGet("decoder.mid_block.attentions.0.query.weight", out _));
        Assert.Equal([0f, 1f, 2f, 3f], vae.Require("decoder.mid_block.attentions.0.to_q.weight", [2, 2]).ReadFloat32());
        var e = Assert.Throws<InvalidFileException>(() => vae.Require("decoder.conv_in.weight", [2, 4, 1, 1]));
        Assert.Contains("decoder.conv_in.weight", e.Message);
        Assert.Contains("expected [2, 4, 1, 1]", e.Message);
        var missing = Assert.Throws<InvalidFileException>(() => vae.Require("decoder.conv_out.weight", [3, 2, 3, 3]));
        Assert.Contains("missing tensor 'decoder.conv_out.weight'", missing.Message);
    }

    [Fact]
    public void Fp16_variant_is_found_by_name_and_preferred_when_requested()
    {
        string folder = MakeFolder("diffusion_pytorch_model.fp16.safetensors");
        using (ModelSource fallback = ModelSource.Open(folder))
        {
            Assert.EndsWith("diffusion_pytorch_model.fp16.safetensors", fallback.Weights(ModelComponent.Vae).Source);
        }
        Save(_dir.File("model/vae/diffusion_pytorch_model.safetensors"), ("decoder.conv_in.weight", [1]));
        using (ModelSource plain = ModelSource.Open(folder))
        {
            Assert.EndsWith("diffusion_pytorch_model.safetensors", plain.Weights(ModelComponent.Vae).Source);
        }
        using ModelSource variant = ModelSource.Open(folder, new ModelOpenOptions { Variant = "fp16" });
        Assert.EndsWith("diffusion_pytorch_model.fp16.safetensors", variant.Weights(ModelComponent.Vae).Source);
    }

    [Fact]
    public void Sharded_checkpoint_is_read_through_its_index()
    {
        string folder = MakeFolder("unused.safetensors");
        Save(_dir.File("model/vae/diffusion_pytorch_model-00001-of-00002.safetensors"), ("a", [2]), ("b", [3]));
        Save(_dir.File("model/vae/diffusion_pytorch_model-00002-of-00002.safetensors"), ("c", [4]));
        _dir.WriteText("model/vae/diffusion_pytorch_model.safetensors.index.json",
            "{\"metadata\":{\"total_size\":36},\"weight_map\":{\"a\":\"diffusion_pytorch_model-00001-of-00002.safetensors\"," +
            "\"b\":\"diffusion_pytorch_model-00001-of-00002.safetensors\",\"c\":\"diffusion_pytorch_model-00002-of-00002.safetensors\"}}");
        using ModelSource model = ModelSource.Open(folder);
        WeightSet vae = model.Weights(ModelComponent.Vae);
        Assert.Equal(3, vae.Count);
        Assert.Equal(2, vae.Files.Count);
        Assert.Equal([0f, 1f, 2f, 3f], vae.Require("c", [4]).ReadFloat32());
    }

    [Theory]
    [InlineData("../escape.safetensors", "plain file names")]
    [InlineData("missing.safetensors", "does not exist")]
    public void Sharded_index_with_a_bad_shard_is_refused(string shard, string expected)
    {
        string folder = MakeFolder("unused.safetensors");
        _dir.WriteText("model/vae/diffusion_pytorch_model.safetensors.index.json",
            "{\"weight_map\":{\"a\":\"" + shard + "\"}}");
        using ModelSource model = ModelSource.Open(folder);
        var e = Assert.Throws<InvalidFileException>(() => model.Weights(ModelComponent.Vae));
        Assert.Contains("index.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Shard_index_naming_a_tensor_the_shard_lacks_is_refused()
    {
        string folder = MakeFolder("unused.safetensors");
        Save(_dir.File("model/vae/s1.safetensors"), ("a", [2]));
        _dir.WriteText("model/vae/diffusion_pytorch_model.safetensors.index.json", "{\"weight_map\":{\"zz\":\"s1.safetensors\"}}");
        using ModelSource model = ModelSource.Open(folder);
        var e = Assert.Throws<InvalidFileException>(() => model.Weights(ModelComponent.Vae));
        Assert.Contains("no such tensor", e.Message);
    }

    [Fact]
    public void Folder_without_weights_or_with_only_pickles_says_what_it_looked_for()
    {
        string folder = MakeFolder("unused.safetensors");
        using (ModelSource model = ModelSource.Open(folder))
        {
            var e = Assert.Throws<InvalidFileException>(() => model.Weights(ModelComponent.Vae));
            Assert.Contains("diffusion_pytorch_model.safetensors", e.Message);
        }
        _dir.Write("model/vae/diffusion_pytorch_model.bin", [0x80, 0x02]);
        using ModelSource pickled = ModelSource.Open(folder);
        Assert.Throws<UnsafeFormatException>(() => pickled.Weights(ModelComponent.Vae));
    }

    [Fact]
    public void Folder_without_model_index_is_not_a_model()
    {
        Directory.CreateDirectory(_dir.File("empty"));
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(_dir.File("empty")));
        Assert.Contains("model_index.json", e.Message);
    }

    [Theory]
    [InlineData("{\"block_out_channels\":\"wide\"}", "'block_out_channels' must be a list of integers")]
    [InlineData("{\"scaling_factor\":-1}", "scaling_factor must be in [0.0001, 10000], found -1")]
    [InlineData("{\"scaling_factor\":1e-45}", "scaling_factor must be in [0.0001, 10000], found 1E-45")]
    [InlineData("{\"block_out_channels\":[32,64],\"down_block_types\":[\"DownEncoderBlock2D\"]}", "must have the same length, 1 to 8")]
    [InlineData("{\"layers_per_block\":2147483647}", "'layers_per_block' must be in [1, 128], found 2147483647")]
    [InlineData("{\"block_out_channels\":[1,1,1,1,1,1,1,1,1],\"down_block_types\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"],\"up_block_types\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}", "same length, 1 to 8")]
    [InlineData("{\"sample_size\":48,\"block_out_channels\":[1,1,1,1],\"down_block_types\":[\"a\",\"a\",\"a\",\"a\"],\"up_block_types\":[\"a\",\"a\",\"a\",\"a\"]}", "sample_size must be a positive multiple of 32 (4 x the downscale factor 8), found 48")]
    [InlineData("{\"norm_num_groups\":48,\"block_out_channels\":[128,256],\"down_block_types\":[\"a\",\"a\"],\"up_block_types\":[\"a\",\"a\"]}", "norm_num_groups 48 does not divide block 0's 128 channels")]
    [InlineData("{\"latent_channels\":1073741824}", "'latent_channels/in_channels/out_channels' must be in [1, 65536], found 1073741824")]
    [InlineData("{\"block_out_channels\":[2147483647]}", "'block_out_channels' must be in [1, 65536], found 2147483647")]
    [InlineData("{\"latent_channels\":4,", "well-formed JSON")]
    [InlineData("[]", "JSON object")]
    public void Broken_vae_config_is_refused_with_file_and_key(string json, string expected)
    {
        string path = _dir.WriteText("config.json", json);
        var e = Assert.Throws<InvalidFileException>(() => VaeConfig.Load(path));
        Assert.Contains("config.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("{\"attention_head_dim\":7}", "does not divide")]
    [InlineData("{\"layers_per_block\":[2,2]}", "lists 2 values but the model has 4 blocks")]
    [InlineData("{\"cross_attention_dim\":0}", "'cross_attention_dim' must be in [1, 65536], found 0")]
    [InlineData("{\"block_out_channels\":[1073741824,640,1280,1280],\"attention_head_dim\":1}", "'block_out_channels' must be in [1, 65536], found 1073741824")]
    [InlineData("{\"in_channels\":-4}", "'in_channels/out_channels' must be in [1, 65536], found -4")]
    [InlineData("{\"norm_num_groups\":24}", "norm_num_groups 24 does not divide block 0's 320 channels")]
    [InlineData("{\"norm_num_groups\":0}", "'norm_num_groups' must be in [1, 65536], found 0")]
    [InlineData("{\"conv_in_kernel\":0}", "'conv_in_kernel' must be an odd kernel size in [1, 15], found 0")]
    [InlineData("{\"conv_out_kernel\":4}", "'conv_out_kernel' must be an odd kernel size in [1, 15], found 4")]
    [InlineData("{\"downsample_padding\":-1}", "downsample_padding must not be negative, found -1")]
    [InlineData("{\"norm_eps\":-1}", "'norm_eps' must be a finite epsilon >= 0, found -1")]
    [InlineData("{\"layers_per_block\":100000000}", "'layers_per_block' must be in [1, 128], found 100000000")]
    [InlineData("{\"transformer_layers_per_block\":[1,1,1,1000]}", "'transformer_layers_per_block' must be in [1, 128], found 1000")]
    public void Broken_unet_config_is_refused(string json, string expected)
    {
        string path = _dir.WriteText("unet.json", json);
        var e = Assert.Throws<InvalidFileException>(() => UNetConfig.Load(path));
        Assert.Contains("unet.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_config_built_in_code_is_checked_before_its_layout_is_built()
    {
        // Unchecked, the layout would list parameters for 2^31 layers (and the up blocks' j <= count never ends).
        var layers = Assert.Throws<InvalidFileException>(() => DiffusersLayout.UNet(new UNetConfig { LayersPerBlock = [int.MaxValue, 2, 2, 2] }));
        Assert.Contains("'layers_per_block' must be in [1, 128]", layers.Message);
        var heads = Assert.Throws<InvalidFileException>(() => DiffusersLayout.UNet(new UNetConfig { BlockOutChannels = [129, 640, 1280, 1280] }));
        Assert.Contains("8 does not divide block 0's 129 channels", heads.Message);
        var clip = Assert.Throws<InvalidFileException>(() => DiffusersLayout.ClipText(new ClipTextConfig { NumHiddenLayers = 1 << 30 }));
        Assert.Contains("'num_hidden_layers' must be in [1, 128]", clip.Message);
        var vae = Assert.Throws<InvalidFileException>(() => DiffusersLayout.Vae(new VaeConfig { BlockOutChannels = new int[40], DownBlockTypes = new string[40], UpBlockTypes = new string[40] }));
        Assert.Contains("1 to 8", vae.Message);
    }

    [Theory]
    [InlineData("{\"num_hidden_layers\":100000000}", "'num_hidden_layers' must be in [1, 128], found 100000000")]
    [InlineData("{\"hidden_size\":100,\"num_attention_heads\":3}", "not divisible")]
    [InlineData("{\"vocab_size\":2000000000}", "'vocab_size' must be in [1, 1048576], found 2000000000")]
    [InlineData("{\"intermediate_size\":100000}", "must be in [1, 65536], found 100000")]
    [InlineData("{\"layer_norm_eps\":-1e-5}", "'layer_norm_eps' must be a finite epsilon >= 0, found -1E-05")]
    public void Broken_text_encoder_config_is_refused(string json, string expected)
    {
        string path = _dir.WriteText("clip.json", json);
        var e = Assert.Throws<InvalidFileException>(() => ClipTextConfig.Load(path));
        Assert.Contains("clip.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("{\"steps_offset\":-1}", "steps_offset must be in 0..999 (num_train_timesteps - 1), found -1")]
    [InlineData("{\"steps_offset\":5000}", "found 5000")]
    [InlineData("{\"num_train_timesteps\":0}", "num_train_timesteps must be in 1..100000")]
    [InlineData("{\"timestep_spacing\":\"evenly\"}", "timestep_spacing 'evenly' is not one of leading, linspace, trailing")]
    [InlineData("{\"prediction_type\":\"noise\"}", "prediction_type 'noise' is not one of epsilon, v_prediction, sample")]
    public void Broken_scheduler_config_is_refused(string json, string expected)
    {
        string path = _dir.WriteText("scheduler_config.json", json);
        var e = Assert.Throws<InvalidFileException>(() => SchedulerConfig.Load(path));
        Assert.Contains("scheduler_config.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Sd2_style_configs_expand_per_block_heads_and_gelu()
    {
        string unet = _dir.WriteText("unet2.json",
            "{\"attention_head_dim\":[5,10,20,20],\"cross_attention_dim\":1024,\"use_linear_projection\":true,\"upcast_attention\":true}");
        UNetConfig config = UNetConfig.Load(unet);
        Assert.Equal([5, 10, 20, 20], config.NumAttentionHeads);
        Assert.Equal([1024, 1024, 1024, 1024], config.CrossAttentionDim);
        Assert.True(config.UseLinearProjection);
        string text = _dir.WriteText("clip2.json", "{\"hidden_size\":1024,\"num_attention_heads\":16,\"hidden_act\":\"gelu\"}");
        Assert.Equal(64, ClipTextConfig.Load(text).HeadDim);
        string tokenizer = _dir.WriteText("tok/tokenizer_config.json", "{\"pad_token\":\"!\",\"model_max_length\":77}");
        _dir.WriteText("tok/vocab.json", "{}");
        _dir.WriteText("tok/merges.txt", "#version: 0.2\n");
        Assert.Equal("!", TokenizerFiles.Load(Path.GetDirectoryName(tokenizer)!).PadToken);
    }

    [Fact]
    public void A_tokenizer_padding_past_the_text_encoders_positions_does_not_fit_it()
    {
        _dir.WriteText("longtok/tokenizer_config.json", "{\"model_max_length\":78}");
        _dir.WriteText("longtok/vocab.json", "{}");
        _dir.WriteText("longtok/merges.txt", "#version: 0.2\n");
        TokenizerFiles files = TokenizerFiles.Load(_dir.File("longtok"));
        files.RequireFits(null);
        files.RequireFits(new ClipTextConfig { MaxPositionEmbeddings = 78 });
        var e = Assert.Throws<InvalidFileException>(() => files.RequireFits(new ClipTextConfig()));
        Assert.Contains(Path.Combine("longtok", "tokenizer_config.json"), e.Message);
        Assert.Contains("model_max_length 78 exceeds the text encoder's 77 positions", e.Message);
    }

    [Fact]
    public void A_too_long_default_or_special_tokens_length_names_where_it_came_from()
    {
        // model_max_length from special_tokens_map.json (tokenizer_config.json absent), then CLIP's default 77 with
        // no file giving one, against an encoder of 76 positions.
        _dir.WriteText("maptok/special_tokens_map.json", "{\"model_max_length\":78}");
        _dir.WriteText("maptok/vocab.json", "{}");
        _dir.WriteText("maptok/merges.txt", "#version: 0.2\n");
        var mapped = Assert.Throws<InvalidFileException>(() => TokenizerFiles.Load(_dir.File("maptok")).RequireFits(new ClipTextConfig()));
        Assert.Contains(Path.Combine("maptok", "special_tokens_map.json"), mapped.Message);
        _dir.WriteText("deftok/tokenizer_config.json", "{\"model_max_length\":1e30}");
        _dir.WriteText("deftok/vocab.json", "{}");
        _dir.WriteText("deftok/merges.txt", "#version: 0.2\n");
        TokenizerFiles defaults = TokenizerFiles.Load(_dir.File("deftok"));
        Assert.Null(defaults.ModelMaxLengthSource);
        var e = Assert.Throws<InvalidFileException>(() => defaults.RequireFits(new ClipTextConfig { MaxPositionEmbeddings = 76 }));
        Assert.Contains("model_max_length 77 (CLIP's default: no tokenizer file gives one) exceeds the text encoder's 76 positions", e.Message);
        Assert.DoesNotContain("tokenizer_config.json", e.Message);
    }

    [Theory]
    [InlineData("{\"pad_token\":\"\"}")]
    [InlineData("{\"eos_token\":{\"content\":\"\"}}")]
    public void An_empty_special_token_is_refused_naming_the_file_and_key(string config)
    {
        string path = _dir.WriteText("emptytok/tokenizer_config.json", config);
        _dir.WriteText("emptytok/vocab.json", "{\"\": 5}");
        _dir.WriteText("emptytok/merges.txt", "#version: 0.2\n");
        var e = Assert.Throws<InvalidFileException>(() => TokenizerFiles.Load(Path.GetDirectoryName(path)!));
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Contains("_token", e.Message);
        Assert.Contains("non-empty", e.Message);
    }

    [Fact]
    public void Missing_tokenizer_files_name_the_file_and_the_flag()
    {
        Directory.CreateDirectory(_dir.File("notok"));
        var e = Assert.Throws<FileNotFoundException>(() => TokenizerFiles.Load(_dir.File("notok")));
        Assert.Contains("vocab.json", e.Message);
        Assert.Contains("--tokenizer", e.Message);
    }

    private const string SingleFileVaePrefix = "first_stage_model.";

    /// <summary>The fewest tensors of a one-level single-file VAE of <paramref name="width"/> channels that config inference reads.</summary>
    private static (string Name, long[] Shape)[] SingleFileVae(int width) =>
    [
        (SingleFileVaePrefix + "encoder.conv_in.weight", [width, 3, 3, 3]),
        (SingleFileVaePrefix + "encoder.down.0.block.0.conv2.weight", [width, width, 3, 3]),
        (SingleFileVaePrefix + "decoder.up.0.block.0.conv1.weight", [width, width, 3, 3]),
        (SingleFileVaePrefix + "decoder.up.0.block.1.conv1.weight", [width, width, 3, 3]),
        (SingleFileVaePrefix + "decoder.conv_out.weight", [3, width, 3, 3]),
        (SingleFileVaePrefix + "post_quant_conv.weight", [4, 4, 1, 1]),
    ];

    [Fact]
    public void Single_file_checkpoint_maps_squeezes_ignores_and_reports_unexpected_keys()
    {
        string path = _dir.File("sd.safetensors");
        Save(path, [.. SingleFileVae(32),
            (SingleFileVaePrefix + "encoder.mid.attn_1.q.weight", [32, 32, 1, 1]),
            ("betas", [1000]),
            ("model_ema.decay", []),
            ("some.other.key", [1])]);
        using ModelSource model = ModelSource.Open(path);
        Assert.Equal(ModelSourceKind.SingleFile, model.Kind);
        Assert.Equal([ModelComponent.Vae], model.Components);
        Assert.Equal(2, model.IgnoredKeyCount);
        Assert.Equal(["some.other.key"], model.UnexpectedKeys);
        WeightSet vae = model.Weights(ModelComponent.Vae);
        TensorEntry q = vae.Require("encoder.mid_block.attentions.0.to_q.weight", [32, 32]);
        Assert.Equal(32 * 32, q.ReadFloat32().Length);
        Assert.Equal([32], model.Vae!.BlockOutChannels);
        Assert.Equal(4, model.Vae.LatentChannels);
        Assert.Throws<InvalidFileException>(() => model.Weights(ModelComponent.Unet));
    }

    [Fact]
    public void An_open_clip_in_proj_that_does_not_split_in_three_is_refused_naming_it()
    {
        const string O = "cond_stage_model.model.transformer.resblocks.";
        string path = _dir.File("openclip.safetensors");
        Save(path, (O + "0.attn.in_proj_weight", [4, 2]), (O + "1.attn.in_proj_weight", [4, 2]));
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(path).Dispose());
        Assert.Contains("openclip.safetensors", e.Message);
        Assert.Contains("'cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight' of shape [4, 2] does not split into 3 equal blocks of rows", e.Message);
    }

    [Fact]
    public void A_single_file_whose_widths_do_not_fit_sd_norm_groups_asks_for_a_config()
    {
        // GroupNorm weights do not show the group count; inference assumes SD's 32 and says so when it cannot be.
        string path = _dir.File("narrow.safetensors");
        Save(path, SingleFileVae(8));
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(path).Dispose());
        Assert.Contains("narrow.safetensors", e.Message);
        Assert.Contains("block channels [8] are not all multiples of 32", e.Message);
        Assert.Contains("--config", e.Message);
    }

    [Fact]
    public void Safetensors_file_without_sd_keys_is_not_a_checkpoint()
    {
        string path = _dir.File("other.safetensors");
        Save(path, ("weight", [2]));
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(path));
        Assert.Contains("other.safetensors", e.Message);
        Assert.Contains("not a Stable Diffusion single-file checkpoint", e.Message);
    }
}
