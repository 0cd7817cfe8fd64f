using Sd.Loaders.Config;

namespace Sd.Loaders.Layout;

/// <summary>One parameter of a diffusers component: its state-dict key and shape.</summary>
public readonly record struct ParameterSpec(string Name, long[] Shape)
{
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (long d in Shape) count *= d;
            return count;
        }
    }

    /// <summary>Input features (fan-in) for initialization: all dims but the first; 1-D tensors have none.</summary>
    public long FanIn => Shape.Length < 2 ? 0 : ElementCount / Shape[0];
}

/// <summary>
/// The state-dict layout (key and shape of every parameter) that diffusers / transformers produce for a config:
/// what a checkpoint of that architecture must contain. Used to write random models of real shape
/// (<c>sd make-random-model</c>); tests check it against real files (the fixtures and SD 1.5's key map). Each config
/// is validated first (<see cref="ConfigLimits"/>), so a config built in code cannot make the layout grow without bound.
/// Reference: diffusers UNet2DConditionModel / AutoencoderKL and transformers CLIPTextModel state dicts.
/// </summary>
public static class DiffusersLayout
{
    public static List<ParameterSpec> UNet(UNetConfig config)
    {
        config.Validate(nameof(config));
        var p = new List<ParameterSpec>();
        List<int> skips = Encoder(p, config);
        int[] ch = config.BlockOutChannels;
        int n = ch.Length;
        int temb = ch[0] * 4;
        int prev = ch[^1];
        for (int i = 0; i < n; i++)
        {
            string block = $"up_blocks.{i}";
            int level = n - 1 - i;
            bool attention = config.UpBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal);
            for (int j = 0; j <= config.LayersPerBlock[level]; j++)
            {
                int skip = skips[^1];
                skips.RemoveAt(skips.Count - 1);
                Resnet(p, $"{block}.resnets.{j}", (j == 0 ? prev : ch[level]) + skip, ch[level], temb);
                if (attention) Transformer(p, $"{block}.attentions.{j}", ch[level], config.CrossAttentionDim[level], config.TransformerLayersPerBlock[level], config.UseLinearProjection);
            }
            if (i < n - 1) Conv(p, $"{block}.upsamplers.0.conv", ch[level], ch[level], 3);
            prev = ch[level];
        }
        Norm(p, "conv_norm_out", ch[0]);
        Conv(p, "conv_out", ch[0], config.OutChannels, config.ConvOutKernel);
        return p;
    }

    /// <summary>
    /// The width of each cross-attention (attn2) layer of a UNet in diffusers' attention-processor order: down blocks,
    /// up blocks, then the mid block, as UNet2DConditionModel registers them. IP-Adapter files number their layers so.
    /// </summary>
    public static int[] CrossAttentionWidths(UNetConfig config)
    {
        List<CrossAttentionLayer> layers = CrossAttentionLayers(config);
        var widths = new int[layers.Count];
        for (int i = 0; i < widths.Length; i++) widths[i] = layers[i].Width;
        return widths;
    }

    /// <summary>
    /// Each cross-attention layer of a UNet in processor order (<see cref="CrossAttentionWidths"/>), with the
    /// transformer model it is in (one layer per transformer block of it) and its width.
    /// </summary>
    public static List<CrossAttentionLayer> CrossAttentionLayers(UNetConfig config)
    {
        config.Validate(nameof(config));
        var layers = new List<CrossAttentionLayer>();
        int[] ch = config.BlockOutChannels;
        int n = ch.Length;
        void Add(string part, int block, int level, int models)
        {
            for (int m = 0; m < models; m++)
            {
                for (int t = 0; t < config.TransformerLayersPerBlock[level]; t++) layers.Add(new(part, block, m, ch[level], level));
            }
        }
        for (int i = 0; i < n; i++)
        {
            if (config.DownBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal)) Add("down", i, i, config.LayersPerBlock[i]);
        }
        for (int i = 0; i < n; i++)
        {
            if (config.UpBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal)) Add("up", i, n - 1 - i, config.LayersPerBlock[n - 1 - i] + 1);
        }
        Add("mid", 0, n - 1, 1);
        return layers;
    }

    /// <summary>
    /// h94's IP-Adapter layout (<see cref="IpAdapterSource"/>): the image projection, then to_k_ip and to_v_ip
    /// [width, cross_attention_dim] per cross-attention layer as ip_adapter.1, .3, ...
    /// </summary>
    public static List<ParameterSpec> IpAdapter(ImageProjectionShape projection, IReadOnlyList<int> layerWidths)
    {
        List<ParameterSpec> p = ImageProjection(projection);
        for (int i = 0; i < layerWidths.Count; i++)
        {
            foreach (string part in new[] { "to_k_ip", "to_v_ip" })
            {
                p.Add(new(IpAdapterSource.LayerKey(i, part), [layerWidths[i], projection.CrossAttentionDim]));
            }
        }
        return p;
    }

    /// <summary>
    /// An IP-Adapter's image_proj.* tensors as h94 names them: proj and norm (Linear); latents, proj_in, proj_out,
    /// norm_out and per layer i layers.i.0 (PerceiverAttention: norm1 over the image features, norm2 over the latents,
    /// to_q, to_kv, to_out, no biases) and layers.i.1 (FeedForward: 0 LayerNorm, 1 and 3 Linear without bias)
    /// (Resampler); proj.0, proj.2 and proj.3 (MLP: Linear, GELU, Linear, LayerNorm).
    /// </summary>
    public static List<ParameterSpec> ImageProjection(ImageProjectionShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        int e = shape.InputWidth, d = shape.CrossAttentionDim, w = shape.Width;
        var p = new List<ParameterSpec>();
        switch (shape.Kind)
        {
            case ImageProjectionKind.Linear:
                ConfigLimits.CheckWidths(nameof(shape), "image embed/cross-attention widths and tokens", [e, d, shape.Tokens]);
                Linear(p, "image_proj.proj", e, shape.Tokens * d);
                Norm(p, "image_proj.norm", d);
                break;
            case ImageProjectionKind.Resampler:
                ConfigLimits.CheckWidths(nameof(shape), "Resampler widths, queries and heads", [e, d, w, shape.Tokens, shape.Heads, shape.FeedForward]);
                ConfigLimits.CheckCount(nameof(shape), "Resampler depth", shape.Depth, ConfigLimits.MaxLayers);
                int inner = shape.Heads * ImageProjectionShape.HeadDim;
                p.Add(new("image_proj.latents", [1, shape.Tokens, w]));
                Linear(p, "image_proj.proj_in", e, w);
                Linear(p, "image_proj.proj_out", w, d);
                Norm(p, "image_proj.norm_out", d);
                for (int i = 0; i < shape.Depth; i++)
                {
                    string layer = $"image_proj.layers.{i}";
                    Norm(p, $"{layer}.0.norm1", w);
                    Norm(p, $"{layer}.0.norm2", w);
                    Linear(p, $"{layer}.0.to_q", w, inner, bias: false);
                    Linear(p, $"{layer}.0.to_kv", w, 2 * inner, bias: false);
                    Linear(p, $"{layer}.0.to_out", inner, w, bias: false);
                    Norm(p, $"{layer}.1.0", w);
                    Linear(p, $"{layer}.1.1", w, shape.FeedForward, bias: false);
                    Linear(p, $"{layer}.1.3", shape.FeedForward, w, bias: false);
                }
                break;
            case ImageProjectionKind.Mlp:
                ConfigLimits.CheckWidths(nameof(shape), "MLP widths", [e, d, w]);
                Linear(p, "image_proj.proj.0", e, w);
                Linear(p, "image_proj.proj.2", w, d);
                Norm(p, "image_proj.proj.3", d);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(shape), shape.Kind, "not an image projection kind");
        }
        return p;
    }

    /// <summary>
    /// A diffusers ControlNetModel's state dict: the UNet's encoder (conv_in, time embedding, down blocks, mid block),
    /// the conditioning image's embedding, and a 1x1 convolution per skip connection and for the mid block.
    /// </summary>
    public static List<ParameterSpec> ControlNet(ControlNetConfig config)
    {
        config.Validate(nameof(config));
        var p = new List<ParameterSpec>();
        List<int> skips = Encoder(p, config.Encoder);
        int[] stages = config.ConditioningEmbeddingOutChannels;
        Conv(p, "controlnet_cond_embedding.conv_in", config.ConditioningChannels, stages[0], 3);
        for (int i = 0; i < stages.Length - 1; i++)
        {
            Conv(p, $"controlnet_cond_embedding.blocks.{2 * i}", stages[i], stages[i], 3);
            Conv(p, $"controlnet_cond_embedding.blocks.{2 * i + 1}", stages[i], stages[i + 1], 3);
        }
        Conv(p, "controlnet_cond_embedding.conv_out", stages[^1], config.Encoder.BlockOutChannels[0], 3);
        for (int i = 0; i < skips.Count; i++)
        {
            Conv(p, $"controlnet_down_blocks.{i}", skips[i], skips[i], 1);
        }
        Conv(p, "controlnet_mid_block", config.Encoder.BlockOutChannels[^1], config.Encoder.BlockOutChannels[^1], 1);
        return p;
    }

    /// <summary>A T2I-Adapter's tensors (full_adapter): adapter.conv_in, then per block an in_conv where the width changes and its resnets.</summary>
    public static List<ParameterSpec> T2IAdapter(T2IAdapterConfig config)
    {
        config.Validate(nameof(config));
        var p = new List<ParameterSpec>();
        int[] ch = config.Channels;
        Conv(p, "adapter.conv_in", config.InChannels * config.DownscaleFactor * config.DownscaleFactor, ch[0], 3);
        for (int i = 0; i < ch.Length; i++)
        {
            if (i > 0 && ch[i - 1] != ch[i])
            {
                Conv(p, $"adapter.body.{i}.in_conv", ch[i - 1], ch[i], 1);
            }
            for (int j = 0; j < config.NumResBlocks; j++)
            {
                Conv(p, $"adapter.body.{i}.resnets.{j}.block1", ch[i], ch[i], 3);
                Conv(p, $"adapter.body.{i}.resnets.{j}.block2", ch[i], ch[i], 1);
            }
        }
        return p;
    }

    /// <summary>conv_in, the time embedding, the down blocks and the mid block; returns the skip connections' channels.</summary>
    private static List<int> Encoder(List<ParameterSpec> p, UNetConfig config)
    {
        int[] ch = config.BlockOutChannels;
        int n = ch.Length;
        int temb = ch[0] * 4;
        Conv(p, "conv_in", config.InChannels, ch[0], config.ConvInKernel);
        Linear(p, "time_embedding.linear_1", ch[0], temb);
        if (config.TimeCondProjDim is { } condDim)
        {
            Linear(p, "time_embedding.cond_proj", condDim, ch[0], bias: false); // LCM-distilled UNets
        }
        Linear(p, "time_embedding.linear_2", temb, temb);
        var skips = new List<int> { ch[0] };
        for (int i = 0; i < n; i++)
        {
            string block = $"down_blocks.{i}";
            bool attention = config.DownBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal);
            for (int j = 0; j < config.LayersPerBlock[i]; j++)
            {
                Resnet(p, $"{block}.resnets.{j}", j == 0 ? (i == 0 ? ch[0] : ch[i - 1]) : ch[i], ch[i], temb);
                if (attention) Transformer(p, $"{block}.attentions.{j}", ch[i], config.CrossAttentionDim[i], config.TransformerLayersPerBlock[i], config.UseLinearProjection);
                skips.Add(ch[i]);
            }
            if (i < n - 1)
            {
                Conv(p, $"{block}.downsamplers.0.conv", ch[i], ch[i], 3);
                skips.Add(ch[i]);
            }
        }
        Resnet(p, "mid_block.resnets.0", ch[^1], ch[^1], temb);
        Transformer(p, "mid_block.attentions.0", ch[^1], config.CrossAttentionDim[^1], config.TransformerLayersPerBlock[^1], config.UseLinearProjection);
        Resnet(p, "mid_block.resnets.1", ch[^1], ch[^1], temb);
        return skips;
    }

    public static List<ParameterSpec> Vae(VaeConfig config)
    {
        config.Validate(nameof(config));
        var p = new List<ParameterSpec>();
        int[] ch = config.BlockOutChannels;
        int n = ch.Length;
        int latent = config.LatentChannels;
        Conv(p, "encoder.conv_in", config.InChannels, ch[0], 3);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < config.LayersPerBlock; j++)
            {
                Resnet(p, $"encoder.down_blocks.{i}.resnets.{j}", j == 0 ? (i == 0 ? ch[0] : ch[i - 1]) : ch[i], ch[i], 0);
            }
            if (i < n - 1) Conv(p, $"encoder.down_blocks.{i}.downsamplers.0.conv", ch[i], ch[i], 3);
        }
        VaeMid(p, "encoder.mid_block", ch[^1], config.MidBlockAddAttention);
        Norm(p, "encoder.conv_norm_out", ch[^1]);
        Conv(p, "encoder.conv_out", ch[^1], 2 * latent, 3);
        Conv(p, "decoder.conv_in", latent, ch[^1], 3);
        VaeMid(p, "decoder.mid_block", ch[^1], config.MidBlockAddAttention);
        int prev = ch[^1];
        for (int i = 0; i < n; i++)
        {
            int c = ch[n - 1 - i];
            for (int j = 0; j <= config.LayersPerBlock; j++)
            {
                Resnet(p, $"decoder.up_blocks.{i}.resnets.{j}", j == 0 ? prev : c, c, 0);
            }
            if (i < n - 1) Conv(p, $"decoder.up_blocks.{i}.upsamplers.0.conv", c, c, 3);
            prev = c;
        }
        Norm(p, "decoder.conv_norm_out", ch[0]);
        Conv(p, "decoder.conv_out", ch[0], config.OutChannels, 3);
        if (config.UseQuantConv) Conv(p, "quant_conv", 2 * latent, 2 * latent, 1);
        if (config.UsePostQuantConv) Conv(p, "post_quant_conv", latent, latent, 1);
        return p;
    }

    public static List<ParameterSpec> ClipText(ClipTextConfig config)
    {
        config.Validate(nameof(config));
        var p = new List<ParameterSpec>();
        int w = config.HiddenSize;
        p.Add(new("text_model.embeddings.token_embedding.weight", [config.VocabSize, w]));
        p.Add(new("text_model.embeddings.position_embedding.weight", [config.MaxPositionEmbeddings, w]));
        ClipEncoder(p, "text_model.encoder", config.NumHiddenLayers, w, config.IntermediateSize);
        Norm(p, "text_model.final_layer_norm", w);
        return p;
    }

    /// <summary>
    /// A transformers CLIPVisionModelWithProjection (IP-Adapter's image encoder): patch and position embeddings, a
    /// class token, pre_layrnorm (sic), the encoder, post_layernorm and visual_projection (no bias).
    /// </summary>
    public static List<ParameterSpec> ClipVision(ClipVisionConfig config)
    {
        config.Validate(nameof(config));
        var p = new List<ParameterSpec>();
        int w = config.HiddenSize;
        p.Add(new("vision_model.embeddings.class_embedding", [w]));
        p.Add(new("vision_model.embeddings.patch_embedding.weight", [w, config.NumChannels, config.PatchSize, config.PatchSize]));
        p.Add(new("vision_model.embeddings.position_embedding.weight", [config.Positions, w]));
        Norm(p, "vision_model.pre_layrnorm", w);
        ClipEncoder(p, "vision_model.encoder", config.NumHiddenLayers, w, config.IntermediateSize);
        Norm(p, "vision_model.post_layernorm", w);
        Linear(p, "visual_projection", w, config.ProjectionDim, bias: false);
        return p;
    }

    /// <summary>transformers' CLIPEncoder: pre-LayerNorm layers of self-attention and a two-layer MLP.</summary>
    private static void ClipEncoder(List<ParameterSpec> p, string name, int layers, int width, int intermediate)
    {
        for (int i = 0; i < layers; i++)
        {
            string layer = $"{name}.layers.{i}";
            Norm(p, $"{layer}.layer_norm1", width);
            foreach (string projection in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
            {
                Linear(p, $"{layer}.self_attn.{projection}", width, width);
            }
            Norm(p, $"{layer}.layer_norm2", width);
            Linear(p, $"{layer}.mlp.fc1", width, intermediate);
            Linear(p, $"{layer}.mlp.fc2", intermediate, width);
        }
    }

    private static void Conv(List<ParameterSpec> p, string name, int cin, int cout, int kernel)
    {
        p.Add(new($"{name}.weight", [cout, cin, kernel, kernel]));
        p.Add(new($"{name}.bias", [cout]));
    }

    private static void Linear(List<ParameterSpec> p, string name, int inFeatures, int outFeatures, bool bias = true)
    {
        p.Add(new($"{name}.weight", [outFeatures, inFeatures]));
        if (bias) p.Add(new($"{name}.bias", [outFeatures]));
    }

    private static void Norm(List<ParameterSpec> p, string name, int channels)
    {
        p.Add(new($"{name}.weight", [channels]));
        p.Add(new($"{name}.bias", [channels]));
    }

    private static void Resnet(List<ParameterSpec> p, string name, int cin, int cout, int temb)
    {
        Norm(p, $"{name}.norm1", cin);
        Conv(p, $"{name}.conv1", cin, cout, 3);
        if (temb > 0) Linear(p, $"{name}.time_emb_proj", temb, cout);
        Norm(p, $"{name}.norm2", cout);
        Conv(p, $"{name}.conv2", cout, cout, 3);
        if (cin != cout) Conv(p, $"{name}.conv_shortcut", cin, cout, 1);
    }

    private static void Transformer(List<ParameterSpec> p, string name, int c, int context, int layers, bool linearProjection)
    {
        Norm(p, $"{name}.norm", c);
        Projection(p, $"{name}.proj_in", c, linearProjection);
        for (int t = 0; t < layers; t++)
        {
            string block = $"{name}.transformer_blocks.{t}";
            Norm(p, $"{block}.norm1", c);
            Attention(p, $"{block}.attn1", c, c);
            Norm(p, $"{block}.norm2", c);
            Attention(p, $"{block}.attn2", c, context);
            Norm(p, $"{block}.norm3", c);
            Linear(p, $"{block}.ff.net.0.proj", c, 8 * c);
            Linear(p, $"{block}.ff.net.2", 4 * c, c);
        }
        Projection(p, $"{name}.proj_out", c, linearProjection);
    }

    private static void Projection(List<ParameterSpec> p, string name, int c, bool linear)
    {
        if (linear) Linear(p, name, c, c);
        else Conv(p, name, c, c, 1);
    }

    private static void Attention(List<ParameterSpec> p, string name, int c, int keyDim)
    {
        Linear(p, $"{name}.to_q", c, c, bias: false);
        Linear(p, $"{name}.to_k", keyDim, c, bias: false);
        Linear(p, $"{name}.to_v", keyDim, c, bias: false);
        Linear(p, $"{name}.to_out.0", c, c);
    }

    private static void VaeMid(List<ParameterSpec> p, string name, int c, bool attention)
    {
        Resnet(p, $"{name}.resnets.0", c, c, 0);
        if (attention)
        {
            Norm(p, $"{name}.attentions.0.group_norm", c);
            foreach (string projection in new[] { "to_q", "to_k", "to_v", "to_out.0" })
            {
                Linear(p, $"{name}.attentions.0.{projection}", c, c);
            }
        }
        Resnet(p, $"{name}.resnets.1", c, c, 0);
    }
}

/// <summary>
/// One cross-attention layer of a UNet (<see cref="DiffusersLayout.CrossAttentionLayers"/>): its part ("down", "up" or
/// "mid"), the block's index in down_blocks / up_blocks (0 for mid), the transformer model in it (attentions.N), its
/// width, and the level it runs at (0 at the latents' size, each next one halved, rounded up).
/// </summary>
public readonly record struct CrossAttentionLayer(string Part, int Block, int Model, int Width, int Level);
