using System.Text;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;

namespace Sd.Loaders.Layout;

/// <summary>
/// The built-in demo model (<see cref="ModelSource.Demo"/>): Stable Diffusion's architecture at toy size (CLIP text
/// encoder, UNet with cross-attention, VAE with SD's 8x latent downscale) with seeded random weights made in memory,
/// so <c>sd generate</c> runs on a fresh machine with no file and no download. The weights are random: the images are
/// noise. Sized for seconds on two cores at the default 512x512 and 20 guided steps: the UNet attends only at its
/// lowest level (16x16 latents for 512x512) and the VAE decoder's two largest levels have 16 channels.
/// The text encoder reads the byte-level tokenizer (no merges, no vocabulary file): 256 byte symbols, the same with
/// "&lt;/w&gt;", then &lt;|startoftext|&gt; and &lt;|endoftext|&gt;, hence vocab_size 514 and bos/eos/pad ids 512/513/513.
/// </summary>
public static class DemoModel
{
    /// <summary>What stands for the model's path in messages and logs.</summary>
    public const string Name = "built-in demo model";

    /// <summary>The weights are the same on every run and machine: the UNet draws with this seed, the VAE and text encoder with the next two.</summary>
    public const ulong WeightSeed = 0;

    public const string UNetJson = """
        {
          "_class_name": "UNet2DConditionModel",
          "attention_head_dim": 2,
          "block_out_channels": [32, 32, 64],
          "cross_attention_dim": 64,
          "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
          "in_channels": 4,
          "layers_per_block": 1,
          "norm_num_groups": 32,
          "out_channels": 4,
          "sample_size": 64,
          "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"]
        }
        """;

    public const string VaeJson = """
        {
          "_class_name": "AutoencoderKL",
          "block_out_channels": [16, 16, 32, 32],
          "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
          "in_channels": 3,
          "latent_channels": 4,
          "layers_per_block": 1,
          "norm_num_groups": 8,
          "out_channels": 3,
          "sample_size": 512,
          "scaling_factor": 0.18215,
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
        }
        """;

    public const string TextEncoderJson = """
        {
          "architectures": ["CLIPTextModel"],
          "bos_token_id": 512,
          "eos_token_id": 513,
          "hidden_act": "quick_gelu",
          "hidden_size": 64,
          "intermediate_size": 128,
          "layer_norm_eps": 1e-05,
          "max_position_embeddings": 77,
          "model_type": "clip_text_model",
          "num_attention_heads": 2,
          "num_hidden_layers": 2,
          "pad_token_id": 513,
          "projection_dim": 64,
          "vocab_size": 514
        }
        """;

    public static UNetConfig UNet => UNetConfig.From(Parse("unet/config.json", UNetJson));

    public static VaeConfig Vae => VaeConfig.From(Parse("vae/config.json", VaeJson));

    public static ClipTextConfig TextEncoder => ClipTextConfig.From(Parse("text_encoder/config.json", TextEncoderJson));

    /// <summary>SD 1.x's scheduler settings.</summary>
    public static SchedulerConfig Scheduler => ConfigInference.Sd1Scheduler;

    /// <summary>Each component's parameters and the seed of its random weights.</summary>
    public static IEnumerable<(ModelComponent Component, List<ParameterSpec> Layout, ulong Seed)> Components()
    {
        yield return (ModelComponent.Unet, DiffusersLayout.UNet(UNet), WeightSeed);
        yield return (ModelComponent.Vae, DiffusersLayout.Vae(Vae), WeightSeed + 1);
        yield return (ModelComponent.TextEncoder, DiffusersLayout.ClipText(TextEncoder), WeightSeed + 2);
    }

    private static JsonConfig Parse(string name, string json) => JsonConfig.Parse($"{Name}/{name}", Encoding.UTF8.GetBytes(json));
}
