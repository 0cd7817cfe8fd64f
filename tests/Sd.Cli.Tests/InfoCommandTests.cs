using Sd.Cli.Commands;
using Sd.Loaders;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

public sealed class InfoCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Run(params string[] args)
    {
        var output = new StringWriter();
        Assert.Equal(0, InfoCommand.Run(args, output));
        return output.ToString();
    }

    [FixtureFact]
    public void Describes_a_diffusers_folder_with_mixed_dtypes()
    {
        string text = Run(Fixtures.Path("small/model"));
        Assert.Contains("diffusers folder (StableDiffusionPipeline)", text);
        Assert.Contains("unet: 18.15M parameters", text);
        Assert.Contains("F16 x496", text);
        Assert.Contains("text_encoder: 17.41M parameters", text);
        Assert.Contains("BF16 x", text);
        Assert.Contains("scaling factor 0.18215", text);
        Assert.Contains("heads [2, 2, 2]", text);
        Assert.Contains("scheduler: PNDMScheduler", text);
        Assert.Contains("memory:", text);
    }

    [Fact]
    public void Describes_a_single_file_checkpoint_with_inferred_configs()
    {
        const string T = "cond_stage_model.transformer.text_model.";
        var writer = new SafetensorsWriter();
        void Add(string name, params long[] shape)
        {
            long count = 1;
            foreach (long d in shape) count *= d;
            writer.AddFloat32(name, shape, new float[count]);
        }
        Add(T + "embeddings.token_embedding.weight", 100, 64);
        Add(T + "embeddings.position_embedding.weight", 77, 64);
        Add(T + "encoder.layers.0.mlp.fc1.weight", 256, 64);
        Add(T + "encoder.layers.1.mlp.fc1.weight", 256, 64);
        writer.Add(T + "embeddings.position_ids", TensorDType.I64, [1, 77], new byte[77 * 8]);
        Add("alphas_cumprod", 1000);
        string path = _dir.File("tiny-sd.safetensors");
        writer.Save(path);
        string text = Run(path);
        Assert.Contains("single-file checkpoint", text);
        Assert.Contains("text_encoder: ", text);
        Assert.Contains("width 64, 2 layers, 1 heads, MLP 256, gelu, 77 positions, vocab 100", text);
        Assert.Contains("2 ignored", text);
        Assert.Contains("0 unexpected", text);
    }

    [FixtureFact]
    public void Lists_what_a_single_file_leaves_to_guesswork_until_a_config_folder_is_given()
    {
        string single = _dir.File("tiny.safetensors");
        using (var folder = ModelSource.Open(Fixtures.Path("tiny/model")))
        {
            LdmKeyExporter.Write(folder, single);
        }
        string guessed = Run(single);
        Assert.Contains("heads [1, 1]", guessed);
        Assert.Contains("  guessed: attention heads [1, 1], not stored in the file: 64 channels per head as in SD 2.x; a 32-wide text context fits neither", guessed);
        Assert.Contains("  guessed: hidden_act gelu, not stored in the file: ", guessed);
        Assert.Contains("likely wrong; pass --config DIR to override", guessed);
        Assert.Contains("tokenizer: none", guessed);

        string configs = Fixtures.Path("tiny/model");
        string given = Run(single, "--config", configs);
        Assert.Contains($"configs from {configs}", given);
        Assert.Contains("heads [8, 8]", given);
        Assert.Contains("4 heads, MLP 37, quick_gelu", given);
        Assert.DoesNotContain("guessed", given);
        Assert.Contains($"tokenizer: {Path.Combine(configs, "tokenizer")}", given);

        // A config that does not fit fails (exit code 1) with the config named; one for a folder model is refused.
        var e = Assert.Throws<InvalidFileException>(() => Run(single, "--config", Fixtures.Path("small/model")));
        Assert.Contains("does not fit the checkpoint's tensors", e.Message);
        Assert.Equal(1, Program.Main(["info", single, "--config", Fixtures.Path("small/model")]));
        Assert.Equal(1, Program.Main(["info", configs, "--config", configs]));
    }

    [Fact]
    public void Usage_errors_are_reported_as_such()
    {
        Assert.Throws<UsageException>(() => InfoCommand.Run([], TextWriter.Null));
        Assert.Throws<UsageException>(() => InfoCommand.Run(["a", "b"], TextWriter.Null));
        var e = Assert.Throws<UsageException>(() => InfoCommand.Run(["m", "--bogus"], TextWriter.Null));
        Assert.Contains("--bogus", e.Message);
        Assert.Throws<UsageException>(() => InfoCommand.Run(["m", "--variant"], TextWriter.Null));
    }

    [Fact]
    public void Refuses_pickles_and_reports_missing_models_with_nonzero_exit_codes()
    {
        string ckpt = _dir.Write("model.ckpt", [0x80, 0x02, 0, 0]);
        Assert.Throws<UnsafeFormatException>(() => InfoCommand.Run([ckpt], TextWriter.Null));
        Assert.Equal(1, Program.Main(["info", ckpt]));
        Assert.Equal(1, Program.Main(["info", _dir.File("nope")]));
        Assert.Equal(2, Program.Main(["frobnicate"]));
        Assert.Equal(0, Program.Main(["--help"]));
        Assert.Equal(2, Program.Main(["generate"])); // --out and --prompt are required
    }

    /// <summary>A ControlNet folder, and its weights file alone (config inferred), are described as ControlNets.</summary>
    [Fact]
    public void Describes_a_controlnet_folder_and_a_config_less_file()
    {
        string folder = TinyControlNet.Write(_dir.File("tiny-controlnet"));
        string text = Run(folder);
        Assert.Contains($"controlnet: {folder}", text);
        Assert.Contains($"format:     diffusers ControlNetModel names, config from {Path.Combine(folder, "config.json")}", text);
        Assert.Contains("F32 x", text);
        Assert.Contains("encoder:    blocks [32, 64] x2 layers, down [DownBlock2D, CrossAttnDownBlock2D]", text);
        Assert.Contains("picture:    3 channels (RGB order), embedding [8, 16], 2x the latents' size", text);
        Assert.Contains("steers:     UNets of blocks [32, 64] with cross-attention 32 and 4 latent channels\n", text.ReplaceLineEndings("\n"));
        Assert.DoesNotContain("guessed", text);

        string alone = _dir.File("alone");
        Directory.CreateDirectory(alone);
        string file = Path.Combine(alone, "tiny-cn.safetensors");
        File.Copy(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), file);
        text = Run(file);
        Assert.Contains("config inferred from its shapes", text);
        Assert.Contains("  guessed: channel order rgb", text);
        Assert.Contains("a config.json (or an original file's STEM.yaml) beside it overrides it", text);
    }

    /// <summary>The files that go with a model: a LoRA (kohya names, metadata), an embedding and an ESRGAN upscaler.</summary>
    [Fact]
    public void Describes_loras_embeddings_and_upscalers()
    {
        var lora = new SafetensorsWriter();
        lora.AddMetadata("ss_output_name", "tiny-style");
        lora.AddMetadata("ss_network_dim", "4");
        void Module(string key, int rank, int inputs, int outputs, float alpha)
        {
            lora.AddFloat32(key + ".lora_down.weight", [rank, inputs], new float[rank * inputs]);
            lora.AddFloat32(key + ".lora_up.weight", [outputs, rank], new float[outputs * rank]);
            lora.AddFloat32(key + ".alpha", [], [alpha]);
        }
        Module("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 4, 32, 32, 2);
        Module("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k", 8, 32, 32, 2);
        Module("lora_te_text_model_encoder_layers_0_mlp_fc1", 4, 32, 37, 4);
        string loraPath = _dir.File("tiny-style.safetensors");
        lora.Save(loraPath);
        string text = Run(loraPath);
        Assert.Contains($"lora:      {loraPath}", text);
        Assert.Contains("modules:   3 (text encoder 1, UNet 2): LoRA x3", text);
        Assert.Contains("rank:      4 to 8, alpha 2 to 4", text);
        Assert.Contains("  ss_output_name: tiny-style", text);

        var embedding = new SafetensorsWriter();
        embedding.AddFloat32("emb_params", [2, 768], new float[2 * 768]);
        string embeddingPath = _dir.File("EasyThing.safetensors");
        embedding.Save(embeddingPath);
        text = Run(embeddingPath);
        Assert.Contains("vectors:   2 of width 768 (SD 1.x)", text);
        Assert.Contains("token:     EasyThing", text);

        string upscaler = TinyEsrgan.Write(_dir.File("4x-Tiny.safetensors"));
        text = Run(upscaler);
        Assert.Contains("network:   RRDBNet, 8 features, 1 block, 3 to 3 channels, 4x", text);

        // A LoRA or embedding Sd does not read gets its reader's reason, not the model reader's.
        var sdxl = new SafetensorsWriter();
        sdxl.AddFloat32("lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", [4, 32], new float[4 * 32]);
        sdxl.AddFloat32("lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", [37, 4], new float[37 * 4]);
        sdxl.AddFloat32("lora_te2_text_model_encoder_layers_0_mlp_fc2.lora_down.weight", [4, 37], new float[4 * 37]);
        string sdxlPath = _dir.File("sdxl-lora.safetensors");
        sdxl.Save(sdxlPath);
        Assert.Contains("SDXL", Assert.ThrowsAny<Exception>(() => InfoCommand.Run([sdxlPath], TextWriter.Null)).Message);
        var twoEncoders = new SafetensorsWriter();
        twoEncoders.AddFloat32("clip_l", [2, 768], new float[2 * 768]);
        twoEncoders.AddFloat32("clip_g", [2, 1280], new float[2 * 1280]);
        string twoPath = _dir.File("sdxl-embedding.safetensors");
        twoEncoders.Save(twoPath);
        Assert.Contains("SDXL", Assert.ThrowsAny<Exception>(() => InfoCommand.Run([twoPath], TextWriter.Null)).Message);

        // A model's options ask for a model: the LoRA is then not described, and the model reader says what it is not.
        Assert.Contains("not a Stable Diffusion single-file checkpoint",
            Assert.ThrowsAny<IOException>(() => InfoCommand.Run([loraPath, "--config", _dir.Path], TextWriter.Null)).Message);
    }

    [Fact]
    public void Describes_a_t2i_adapter()
    {
        string folder = SmallAdapter.Write(_dir.File("small-adapter"));
        string text = Run(folder);
        Assert.Contains($"t2i-adapter: {folder}", text);
        Assert.Contains("picture:     1 channel (gray), 8x the latents' size", text);
        Assert.Contains("features:    [64, 128, 256] x1 resnets", text);
        Assert.Contains("F32 x", text);
        string file = Path.Combine(folder, "diffusion_pytorch_model.safetensors"), fileText = Run(file);
        Assert.Contains($"t2i-adapter: {file}", fileText);
        Assert.Contains("features:    [64, 128, 256] x1 resnets", fileText);
        Assert.Contains("is a T2I-Adapter; --config applies to models",
            Assert.Throws<UsageException>(() => InfoCommand.Run([folder, "--config", folder], TextWriter.Null)).Message);
        Assert.False(T2IAdapterSource.IsAdapter(_dir.File("missing")));
    }

    [Fact]
    public void Model_options_are_refused_for_a_controlnet_and_other_files_are_no_controlnets()
    {
        string folder = TinyControlNet.Write(_dir.File("tiny-controlnet"));
        Assert.Contains("is a ControlNet; --vae applies to models",
            Assert.Throws<UsageException>(() => InfoCommand.Run([folder, "--vae", folder], TextWriter.Null)).Message);
        string garbage = _dir.File("garbage.safetensors");
        File.WriteAllBytes(garbage, [1, 2, 3]);
        Assert.False(ControlNetSource.IsControlNet(garbage));
        Assert.False(ControlNetSource.IsControlNet(Path.Combine(folder, "config.json")));
        Assert.False(ControlNetSource.IsControlNet(_dir.File("missing")));
        var writer = new SafetensorsWriter();
        writer.AddFloat32("model.diffusion_model.input_blocks.0.0.bias", [4], new float[4]);
        string checkpoint = _dir.File("model.safetensors");
        writer.Save(checkpoint);
        Assert.False(ControlNetSource.IsControlNet(checkpoint));
    }

    [Fact]
    public void Describes_ip_adapters_and_image_encoders()
    {
        string plain = SmallIpAdapter.Write(_dir.File("plain"), ImageProjectionKind.Linear, 16, [8, 12]);
        string text = Run(plain);
        Assert.Contains($"ip-adapter:  {plain}", text);
        Assert.Contains("projection:  Linear (plain IP-Adapter): 4 tokens from the image encoder's image_embeds (24 wide)", text);
        Assert.Contains("steers:      UNets with 2 cross-attention layers of widths [8, 12] and cross-attention 16", text);
        Assert.Contains($"encoder:     {Path.Combine(_dir.File("plain"), "image_encoder")} (beside it", text);
        string plus = SmallIpAdapter.Write(_dir.File("plus"), ImageProjectionKind.Resampler, 16, [8, 12]);
        Assert.Contains("Resampler (IP-Adapter Plus): 6 tokens from the image encoder's penultimate hidden states (32 wide); width 64, 2 layers of 1 head, feed-forward 128",
            Run(plus));
        string face = SmallIpAdapter.Write(_dir.File("face"), ImageProjectionKind.Mlp, 16, [8, 12]);
        Assert.Contains("MLP (full-face IP-Adapter): a token per position of the image encoder's penultimate hidden states (32 wide); hidden 48", Run(face));
        Assert.Contains("is an IP-Adapter; --vae applies to models",
            Assert.Throws<UsageException>(() => InfoCommand.Run([face, "--vae", face], TextWriter.Null)).Message);

        string encoder = Path.Combine(_dir.File("plain"), "image_encoder"), encoderText = Run(encoder);
        Assert.Contains($"image-encoder: {encoder}", encoderText);
        Assert.Contains("network:       CLIP ViT, 2 layers of width 32, 4 heads, MLP 64 gelu; 28x28 pictures in 14x14 patches (5 positions); projection 24", encoderText);
        Assert.Contains("serves:        IP-Adapters taking 24-wide image_embeds (plain) or 32-wide hidden states (Plus, full-face)", encoderText);
        Assert.Contains("image-encoder:", Run(Path.Combine(encoder, "model.safetensors")));
        File.Delete(Path.Combine(encoder, "config.json"));
        Assert.False(ImageEncoderSource.IsImageEncoder(encoder));
    }
}
