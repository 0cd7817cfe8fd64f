using System.Text;
using Sd.Loaders.Config;

namespace Sd.Loaders.Layout;

/// <summary>
/// The Stable Diffusion 1.5 architecture as its diffusers folder describes it (the config files of
/// runwayml/stable-diffusion-v1-5, reduced to the keys that matter). The JSON is the single source: the typed configs
/// are parsed from it, and <c>sd make-random-model --like sd15</c> writes it out.
/// </summary>
public static class Sd15
{
    public const string ModelIndexJson = """
        {
          "_class_name": "StableDiffusionPipeline",
          "_diffusers_version": "0.27.2",
          "feature_extractor": [null, null],
          "requires_safety_checker": false,
          "safety_checker": [null, null],
          "scheduler": ["diffusers", "PNDMScheduler"],
          "text_encoder": ["transformers", "CLIPTextModel"],
          "tokenizer": [null, null],
          "unet": ["diffusers", "UNet2DConditionModel"],
          "vae": ["diffusers", "AutoencoderKL"]
        }
        """;

    public const string UNetJson = """
        {
          "_class_name": "UNet2DConditionModel",
          "act_fn": "silu",
          "attention_head_dim": 8,
          "block_out_channels": [320, 640, 1280, 1280],
          "center_input_sample": false,
          "cross_attention_dim": 768,
          "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
          "downsample_padding": 1,
          "flip_sin_to_cos": true,
          "freq_shift": 0,
          "in_channels": 4,
          "layers_per_block": 2,
          "mid_block_scale_factor": 1,
          "norm_eps": 1e-05,
          "norm_num_groups": 32,
          "out_channels": 4,
          "sample_size": 64,
          "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        }
        """;

    public const string VaeJson = """
        {
          "_class_name": "AutoencoderKL",
          "act_fn": "silu",
          "block_out_channels": [128, 256, 512, 512],
          "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
          "in_channels": 3,
          "latent_channels": 4,
          "layers_per_block": 2,
          "norm_num_groups": 32,
          "out_channels": 3,
          "sample_size": 512,
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
        }
        """;

    public const string TextEncoderJson = """
        {
          "architectures": ["CLIPTextModel"],
          "bos_token_id": 0,
          "eos_token_id": 2,
          "hidden_act": "quick_gelu",
          "hidden_size": 768,
          "intermediate_size": 3072,
          "layer_norm_eps": 1e-05,
          "max_position_embeddings": 77,
          "model_type": "clip_text_model",
          "num_attention_heads": 12,
          "num_hidden_layers": 12,
          "pad_token_id": 1,
          "projection_dim": 768,
          "torch_dtype": "float32",
          "vocab_size": 49408
        }
        """;

    /// <summary>An SD 1.5 ControlNet (lllyasviel/sd-controlnet-canny's config): the UNet's encoder and SD's conditioning embedding.</summary>
    public const string ControlNetJson = """
        {
          "_class_name": "ControlNetModel",
          "act_fn": "silu",
          "attention_head_dim": 8,
          "block_out_channels": [320, 640, 1280, 1280],
          "conditioning_embedding_out_channels": [16, 32, 96, 256],
          "controlnet_conditioning_channel_order": "rgb",
          "cross_attention_dim": 768,
          "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
          "downsample_padding": 1,
          "flip_sin_to_cos": true,
          "freq_shift": 0,
          "in_channels": 4,
          "layers_per_block": 2,
          "mid_block_scale_factor": 1,
          "norm_eps": 1e-05,
          "norm_num_groups": 32
        }
        """;

    public const string SchedulerJson = """
        {
          "_class_name": "PNDMScheduler",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "clip_sample": false,
          "num_train_timesteps": 1000,
          "set_alpha_to_one": false,
          "skip_prk_steps": true,
          "steps_offset": 1,
          "trained_betas": null
        }
        """;

    public static UNetConfig UNet => UNetConfig.From(Parse("sd15/unet/config.json", UNetJson));

    public static VaeConfig Vae => VaeConfig.From(Parse("sd15/vae/config.json", VaeJson));

    public static ControlNetConfig ControlNet => ControlNetConfig.From(Parse("sd15-controlnet/config.json", ControlNetJson));

    /// <summary>An SD 1.5 T2I-Adapter (TencentARC/t2iadapter_canny_sd15v2's config: gray pictures, 77M parameters).</summary>
    public const string T2IAdapterJson = """
        {
          "_class_name": "T2IAdapter",
          "adapter_type": "full_adapter",
          "channels": [320, 640, 1280, 1280],
          "downscale_factor": 8,
          "in_channels": 1,
          "num_res_blocks": 2
        }
        """;

    public static T2IAdapterConfig T2IAdapter => T2IAdapterConfig.From(Parse("sd15-adapter/config.json", T2IAdapterJson));

    /// <summary>IP-Adapter's image encoder for SD 1.5: h94/IP-Adapter's models/image_encoder (OpenCLIP ViT-H/14, 632M parameters).</summary>
    public const string ImageEncoderJson = """
        {
          "architectures": ["CLIPVisionModelWithProjection"],
          "model_type": "clip_vision_model",
          "hidden_act": "gelu",
          "hidden_size": 1280,
          "image_size": 224,
          "intermediate_size": 5120,
          "layer_norm_eps": 1e-05,
          "num_attention_heads": 16,
          "num_channels": 3,
          "num_hidden_layers": 32,
          "patch_size": 14,
          "projection_dim": 1024
        }
        """;

    public static ClipVisionConfig ImageEncoder => ClipVisionConfig.From(Parse("sd15-ip-adapter/image_encoder/config.json", ImageEncoderJson));

    /// <summary>
    /// h94's SD 1.5 image projections, all from the ViT-H/14 encoder to 768-wide tokens: ip-adapter_sd15's Linear (4
    /// tokens from the 1024-wide image_embeds), ip-adapter-plus(-face)_sd15's Resampler (16 queries, 4 layers of 12
    /// heads over the 1280-wide penultimate hidden states) and ip-adapter-full-face_sd15's MLP (one token per position).
    /// </summary>
    public static ImageProjectionShape IpAdapterProjection(ImageProjectionKind kind)
    {
        int cross = UNet.CrossAttentionDim[0], hidden = ImageEncoder.HiddenSize;
        return kind switch
        {
            ImageProjectionKind.Resampler => ImageProjectionShape.Resampler(hidden, cross, cross, 16, 4, 12, 4 * cross),
            ImageProjectionKind.Mlp => ImageProjectionShape.Mlp(hidden, cross, hidden),
            _ => ImageProjectionShape.Linear(ImageEncoder.ProjectionDim, cross, 4),
        };
    }

    /// <summary>An SD 1.5 IP-Adapter's tensors: the image projection, then one k/v pair per cross-attention layer (16).</summary>
    public static List<ParameterSpec> IpAdapter(ImageProjectionKind kind) =>
        DiffusersLayout.IpAdapter(IpAdapterProjection(kind), DiffusersLayout.CrossAttentionWidths(UNet));

    public static ClipTextConfig TextEncoder => ClipTextConfig.From(Parse("sd15/text_encoder/config.json", TextEncoderJson));

    private static JsonConfig Parse(string name, string json) => JsonConfig.Parse(name, Encoding.UTF8.GetBytes(json));
}
