"""
Reference image embeddings and noise predictions for Sd's IP-Adapter support: the CLIP vision encoder, the
CLIPImageProcessor preprocessing, the IP-Adapter image projection and the UNet's decoupled cross-attention. Run from the
repository root with the shared fixtures beside it:

    /usr/bin/python3 tests/Sd.Engine.Tests/Data/ip-adapter-reference.py

PyTorch 1.13, NumPy 1.24, Pillow 9.4, float32, CPU. transformers and diffusers are not installed here, so the code below
restates them:

- transformers 4.38's CLIPVisionModelWithProjection (modeling_clip.py: CLIPVisionEmbeddings, CLIPVisionTransformer,
  CLIPEncoderLayer, CLIPAttention, CLIPMLP; hidden_act "gelu" is ACT2FN's GELUActivation, nn.functional.gelu, exact erf).
  patch conv (kernel = stride = patch_size, no bias) -> flatten(2).transpose(1, 2); cat(class_embedding, patches) +
  position_embedding(arange(17)); pre_layrnorm; per layer h += out_proj(attn(layer_norm1(h))), h += fc2(gelu(fc1(
  layer_norm2(h)))), the attention eager: q_proj(h) * head_dim ** -0.5, then q @ k^T, softmax over the keys, no mask;
  pooled = post_layernorm(last_hidden_state[:, 0]); image_embeds = visual_projection(pooled). Every LayerNorm eps is
  config.layer_norm_eps (1e-5).
- transformers 4.38's CLIPImageProcessor (image_processing_clip.py, image_transforms.py) with size {"shortest_edge": 28},
  crop_size 28 x 28, PIL BICUBIC, rescale 1/255, OpenAI CLIP mean/std, convert_to_rgb: get_resize_output_image_size
  with default_to_square=False keeps the short edge at 28 and truncates the long one, int(28 * long / short); resize is
  PIL Image.resize((w, h), BICUBIC) on the 8-bit RGB image; center_crop takes top = (h - 28) // 2, left = (w - 28) // 2;
  rescale multiplies the uint8 array by the Python float 1/255 (float64) and casts to float32; normalize subtracts and
  divides by float32 mean and std arrays in float32; the result is transposed to CHW.
- diffusers 0.27's ImageProjection (embeddings.py: Linear, reshape(-1, 4, D), LayerNorm(D), eps 1e-5) as
  _convert_ip_adapter_image_proj_to_diffusers builds it from h94's "image_proj" (proj -> image_embeds), the
  unconditioned half of classifier-free guidance from zeros_like(image_embeds) (encode_image,
  prepare_ip_adapter_image_embeds: negative first), and IPAdapterAttnProcessor2_0 on every attn2:
  to_out.0(sdpa(Q, K_text, V_text) + scale * sdpa(Q, to_k_ip(tokens), to_v_ip(tokens))), same heads, same Q, default
  sdpa scale head_dim ** -0.5; attn1 keeps AttnProcessor2_0. h94's "ip_adapter" keys number the UNet's attention
  processors in attn_processors order (named_children: down_blocks, up_blocks, then mid_block, as UNet2DConditionModel
  registers them), attn1 even and attn2 odd: _convert_ip_adapter_attn_to_diffusers starts key_id at 1 and adds 2 per
  cross-attention layer.

The UNet is controlnet-reference.py's, checked there against every fixture UNet case (the script runs that check
first); its module-global attention is swapped for one that adds the image branch on attn2.

Everything random comes from seeded torch generators in a fixed draw order (clip_weights, ip_adapter_weights, main):
linear and conv weights (then biases) (U(0,1) x 2 - 1) / sqrt(fan in), LayerNorm weights 1 + 0.1 x N(0,1) and biases
0.1 x N(0,1), class and position embeddings 0.5 x N(0,1).

Outputs under ipadapter/:
- image_encoder/config.json, image_encoder/model.safetensors: a tiny random CLIPVisionModelWithProjection (hidden 32,
  3 layers, 4 heads, 28 x 28 pictures of 7 x 7 patches, projection 24) with transformers' key names (F32).
- ip_adapter.safetensors: a random IP-Adapter for the small fixture UNet in h94's ip-adapter_sd15 layout (F16):
  image_proj.proj.{weight,bias} [4 D, 24], image_proj.norm.{weight,bias} [D], ip_adapter.{N}.to_k_ip.weight and
  ip_adapter.{N}.to_v_ip.weight [C, D] (D = 256, C the attn2's channels; see IP_LAYERS for N).
- picture_wide.png (46 x 31) and picture_small.png (20 x 27): 8-bit RGB inputs; pixel_values_{wide,small}.npy
  [1, 3, 28, 28] (the processor's output) and image_embeds_{wide,small}.npy [1, 24] (the encoder's).
- one folder per case with meta.json, sample.npy (NCHW), encoder_hidden_states.npy [B, 7, D], ip_tokens.npy [B, 4, D]
  (the projection's output the attn2 layers see) and noise_pred.npy (NCHW). guided_two_pictures is one adapter with
  two pictures (several_pictures_tokens): ip_tokens.npy [2, 8, D], the wide picture's 4 tokens, then the small one's.
"""
import importlib.util, json, math, os
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("controlnet_reference", os.path.join(ROOT, "controlnet-reference.py"))
cn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cn)
OUT = os.path.join(ROOT, "ipadapter")

CLIP_CONFIG = {"architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model", "hidden_size": 32,
               "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4, "image_size": 28,
               "patch_size": 7, "num_channels": 3, "projection_dim": 24, "hidden_act": "gelu", "layer_norm_eps": 1e-05,
               "torch_dtype": "float32"}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
TOKENS = 4  # h94's ip-adapter_sd15: proj.weight is [4 x cross_attention_dim, image embed dim]


# ---------------------------------------------------------------- random weights

def _uniform(g, shape, fan_in):
    return (torch.rand(*shape, generator=g) * 2 - 1) / math.sqrt(fan_in)


def clip_weights(cfg, seed):
    """The vision encoder's tensors in a fixed draw order from torch.Generator().manual_seed(seed)."""
    g = torch.Generator().manual_seed(seed)
    w = {}
    e, c, p, inter = cfg["hidden_size"], cfg["num_channels"], cfg["patch_size"], cfg["intermediate_size"]
    positions = (cfg["image_size"] // p) ** 2 + 1

    def linear(name, cin, cout, bias=True):
        w[name + ".weight"] = _uniform(g, (cout, cin), cin)
        if bias:
            w[name + ".bias"] = _uniform(g, (cout,), cin)

    def norm(name, n):
        w[name + ".weight"] = 1 + 0.1 * torch.randn(n, generator=g)
        w[name + ".bias"] = 0.1 * torch.randn(n, generator=g)

    v = "vision_model"
    w[f"{v}.embeddings.class_embedding"] = 0.5 * torch.randn(e, generator=g)
    w[f"{v}.embeddings.patch_embedding.weight"] = _uniform(g, (e, c, p, p), c * p * p)
    w[f"{v}.embeddings.position_embedding.weight"] = 0.5 * torch.randn(positions, e, generator=g)
    norm(f"{v}.pre_layrnorm", e)
    for i in range(cfg["num_hidden_layers"]):
        q = f"{v}.encoder.layers.{i}"
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            linear(f"{q}.self_attn.{proj}", e, e)
        norm(f"{q}.layer_norm1", e)
        linear(f"{q}.mlp.fc1", e, inter)
        linear(f"{q}.mlp.fc2", inter, e)
        norm(f"{q}.layer_norm2", e)
    norm(f"{v}.post_layernorm", e)
    linear("visual_projection", e, cfg["projection_dim"], bias=False)
    return w


def attn2_layers(unet_w):
    """The UNet's cross-attention prefixes in diffusers' attn_processors order (down_blocks, up_blocks, mid_block; inside
    each by block, attention, transformer block) with h94's key numbers 1, 3, 5, ... and their channels."""
    suffix = ".attn2.to_k.weight"
    section = {"down_blocks": 0, "up_blocks": 1, "mid_block": 2}
    prefixes = [k[:-len(".to_k.weight")] for k in unet_w if k.endswith(suffix)]
    prefixes.sort(key=lambda p: (section[p.split(".")[0]], [int(s) for s in p.split(".") if s.isdigit()]))
    return [(p, 2 * i + 1, unet_w[p + ".to_k.weight"].shape[0]) for i, p in enumerate(prefixes)]


def ip_adapter_weights(layers, embed_dim, cross_dim, seed):
    """h94's layout; image_proj first, then to_k_ip and to_v_ip per layer in key order."""
    g = torch.Generator().manual_seed(seed)
    w = {
        "image_proj.proj.weight": _uniform(g, (TOKENS * cross_dim, embed_dim), embed_dim),
        "image_proj.proj.bias": _uniform(g, (TOKENS * cross_dim,), embed_dim),
        "image_proj.norm.weight": 1 + 0.1 * torch.randn(cross_dim, generator=g),
        "image_proj.norm.bias": 0.1 * torch.randn(cross_dim, generator=g),
    }
    for _, n, c in layers:
        w[f"ip_adapter.{n}.to_k_ip.weight"] = _uniform(g, (c, cross_dim), cross_dim)
        w[f"ip_adapter.{n}.to_v_ip.weight"] = _uniform(g, (c, cross_dim), cross_dim)
    return w


# ---------------------------------------------------------------- CLIPImageProcessor

def preprocess(image, size, crop):
    """CLIPImageProcessor.preprocess for one picture: [1, 3, crop, crop] float32."""
    image = image.convert("RGB")
    width, height = image.size
    # get_resize_output_image_size(default_to_square=False): short edge -> size, long edge int(size * long / short).
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    oh, ow = (new_long, new_short) if width <= height else (new_short, new_long)
    array = np.array(image.resize((ow, oh), Image.BICUBIC))  # uint8 HWC, as resize() returns it
    top, left = (oh - crop) // 2, (ow - crop) // 2
    assert top >= 0 and left >= 0
    array = array[top:top + crop, left:left + crop, :]
    array = (array * (1 / 255)).astype(np.float32)  # rescale: uint8 x Python float is float64, then float32
    mean, std = np.array(CLIP_MEAN, dtype=np.float32), np.array(CLIP_STD, dtype=np.float32)
    array = (array - mean) / std  # normalize, channels last, float32
    return array.transpose(2, 0, 1)[None].copy()


# ---------------------------------------------------------------- CLIPVisionModelWithProjection

def clip_vision_states(w, cfg, pixel_values):
    """The hidden_states tuple of output_hidden_states=True (pre_layrnorm's output, then each layer's) and image_embeds."""
    v = "vision_model"
    e, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    d = e // heads
    b = pixel_values.shape[0]

    def ln(name, x):
        return F.layer_norm(x, (e,), w[name + ".weight"], w[name + ".bias"], eps)

    patches = F.conv2d(pixel_values, w[f"{v}.embeddings.patch_embedding.weight"], stride=cfg["patch_size"])
    patches = patches.flatten(2).transpose(1, 2)
    h = torch.cat([w[f"{v}.embeddings.class_embedding"].expand(b, 1, -1), patches], dim=1)
    positions = torch.arange(h.shape[1])
    h = h + F.embedding(positions, w[f"{v}.embeddings.position_embedding.weight"])[None]
    h = ln(f"{v}.pre_layrnorm", h)
    states = [h]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{v}.encoder.layers.{i}"
        x = ln(p + ".layer_norm1", h)
        n = x.shape[1]
        q = cn.linear(w, p + ".self_attn.q_proj", x) * d ** -0.5
        k = cn.linear(w, p + ".self_attn.k_proj", x)
        val = cn.linear(w, p + ".self_attn.v_proj", x)
        q, k, val = (t.reshape(b, n, heads, d).transpose(1, 2).reshape(b * heads, n, d) for t in (q, k, val))
        a = torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1), val)
        a = a.reshape(b, heads, n, d).transpose(1, 2).reshape(b, n, e)
        h = h + cn.linear(w, p + ".self_attn.out_proj", a)
        x = ln(p + ".layer_norm2", h)
        h = h + cn.linear(w, p + ".mlp.fc2", F.gelu(cn.linear(w, p + ".mlp.fc1", x)))
        states.append(h)
    pooled = ln(f"{v}.post_layernorm", h[:, 0, :])
    return states, F.linear(pooled, w["visual_projection.weight"])


def clip_vision(w, cfg, pixel_values):
    return clip_vision_states(w, cfg, pixel_values)[1]


# ---------------------------------------------------------------- IP-Adapter

def image_projection(w, embeds, cross_dim):
    tokens = cn.linear(w, "image_proj.proj", embeds).reshape(embeds.shape[0], TOKENS, cross_dim)
    return F.layer_norm(tokens, (cross_dim,), w["image_proj.norm.weight"], w["image_proj.norm.bias"], 1e-5)


def _sdpa(q, k, v, heads):
    b, n, c = q.shape
    d = c // heads
    q = q.reshape(b, n, heads, d).transpose(1, 2)
    k = k.reshape(b, -1, heads, d).transpose(1, 2)
    v = v.reshape(b, -1, heads, d).transpose(1, 2)
    scores = torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, dim=-1)
    return (scores @ v).transpose(1, 2).reshape(b, n, c)


class IPAttention:
    """Stands in for controlnet-reference's module-global attention(w, p, x, ctx, heads), which its transformer()
    looks up at call time: attn1 as before; attn2 adds scale x the image branch before to_out.0."""

    def __init__(self, plain, ip_w, numbers):
        self.plain, self.ip_w, self.numbers = plain, ip_w, numbers
        self.tokens, self.scale, self.seen = None, 0.0, set()

    def __call__(self, w, p, x, ctx, heads):
        if not p.endswith(".attn2") or self.tokens is None:
            return self.plain(w, p, x, ctx, heads)
        n = self.numbers[p]
        self.seen.add(n)
        q = cn.linear(w, p + ".to_q", x)
        h = _sdpa(q, cn.linear(w, p + ".to_k", ctx), cn.linear(w, p + ".to_v", ctx), heads)
        return cn.linear(w, p + ".to_out.0", self.add_image_attention(n, q, h, heads))

    def add_image_attention(self, n, q, h, heads):
        """h + scale * attention of q to the image tokens through attn2 number n's to_k_ip and to_v_ip."""
        k_ip = F.linear(self.tokens, self.ip_w[f"ip_adapter.{n}.to_k_ip.weight"])
        v_ip = F.linear(self.tokens, self.ip_w[f"ip_adapter.{n}.to_v_ip.weight"])
        return h + self.scale * _sdpa(q, k_ip, v_ip, heads)


def several_pictures_tokens(project, uncond, pictures):
    """diffusers 0.27's one adapter with a list of N pictures, guided (ip_adapter_image=[[a, b, ...]]): encode_image
    gives [N, ...] for the pictures and their unconditioned inputs; prepare_ip_adapter_image_embeds stacks each to
    [1, N, ...] and cats the negative first, [2, N, ...]; MultiIPAdapterImageProjection projects them as [2N, ...] and
    reshapes to [2, N, T, D]. IPAttention's to_k_ip on that and _sdpa's reshape(b, -1, heads, d) (the processor's
    view(batch_size, -1, attn.heads, head_dim)) then put a row's pictures' tokens side by side."""
    embeds = torch.stack([uncond, pictures])
    n = pictures.shape[0]
    tokens = project(embeds.reshape(2 * n, *embeds.shape[2:]))
    return tokens.reshape(2, n, *tokens.shape[1:])


def guided_case(folder, g, h, wd, cross, timestep, attention, unet, tokens, scale, meta):
    """Draws a guided pair of latents [1, 4, h, wd] and a text context [2, 7, cross] from g, runs unet(sample, t, ctx)
    with and without the image tokens, and saves sample, context, the tokens as [2, tokens, D], the prediction and
    meta (with the timestep and scale)."""
    os.makedirs(folder, exist_ok=True)
    latents = torch.randn(1, 4, h, wd, generator=g)
    sample = torch.cat([latents] * 2)
    ctx = torch.randn(2, 7, cross, generator=g)
    t = torch.tensor([timestep], dtype=torch.float32)
    with torch.no_grad():
        attention.tokens, attention.scale, attention.seen = tokens, scale, set()
        pred = unet(sample, t, ctx)
        assert attention.seen == set(attention.numbers.values()), attention.seen
        attention.tokens = None
        plain = unet(sample, t, ctx)
    assert (pred - plain).abs().max() > 1e-3, "the image branch changes nothing"
    np.save(os.path.join(folder, "sample.npy"), sample.numpy())
    np.save(os.path.join(folder, "encoder_hidden_states.npy"), ctx.numpy())
    np.save(os.path.join(folder, "ip_tokens.npy"), tokens.reshape(2, -1, cross).numpy())
    np.save(os.path.join(folder, "noise_pred.npy"), pred.numpy())
    json.dump({"timesteps": [timestep], "scale": scale, "guided": True, **meta}, open(os.path.join(folder, "meta.json"), "w"), indent=1)


# ---------------------------------------------------------------- inputs

def picture(g, width, height, phase):
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    r = 30 + 200 * x / (width - 1)
    gr = 220 - 180 * y / (height - 1)
    b = 128 + 90 * torch.sin(0.35 * x + 0.5 * y + phase)
    rgb = torch.stack([r, gr, b], dim=-1) + 14 * torch.randn(height, width, 3, generator=g)
    return Image.fromarray(rgb.round().clamp(0, 255).to(torch.uint8).numpy(), "RGB")


def save_f16_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for k in sorted(tensors):
        b = np.ascontiguousarray(tensors[k].numpy().astype(np.float16)).tobytes()
        header[k] = {"dtype": "F16", "shape": list(tensors[k].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def main():
    cn.check_unet_port()
    plain_attention = cn.attention
    os.makedirs(os.path.join(OUT, "image_encoder"), exist_ok=True)

    # The vision encoder.
    cw = clip_weights(CLIP_CONFIG, 20261127)
    cn.save_safetensors(os.path.join(OUT, "image_encoder", "model.safetensors"), cw)
    with open(os.path.join(OUT, "image_encoder", "config.json"), "w") as f:
        json.dump(CLIP_CONFIG, f, indent=1)

    # The pictures, their pixel values and embeddings.
    g = torch.Generator().manual_seed(20261129)
    size = CLIP_CONFIG["image_size"]
    embeds = {}
    for name, width, height, phase in [("wide", 46, 31, 0.3), ("small", 20, 27, 2.1)]:
        path = os.path.join(OUT, f"picture_{name}.png")
        picture(g, width, height, phase).save(path)
        pixels = preprocess(Image.open(path), size, size)
        assert pixels.shape == (1, 3, size, size) and pixels.dtype == np.float32
        with torch.no_grad():
            embeds[name] = clip_vision(cw, CLIP_CONFIG, torch.from_numpy(pixels))
        np.save(os.path.join(OUT, f"pixel_values_{name}.npy"), pixels)
        np.save(os.path.join(OUT, f"image_embeds_{name}.npy"), embeds[name].numpy())

    # The IP-Adapter for the small UNet.
    d = json.load(open(f"{cn.FIXTURES}/small/model/unet/config.json"))
    cfg = cn.Cfg(d)
    cross = d["cross_attention_dim"]
    unet_w = cn.load_safetensors(f"{cn.FIXTURES}/small/model/unet/diffusion_pytorch_model.safetensors")
    layers = attn2_layers(unet_w)
    # Stored in float16, as h94's files are (and to keep the file at 1.3 MB): the reference runs on the rounded weights.
    ip_w = {k: v.half().float() for k, v in ip_adapter_weights(layers, CLIP_CONFIG["projection_dim"], cross, 20261128).items()}
    save_f16_safetensors(os.path.join(OUT, "ip_adapter.safetensors"), ip_w)
    ip_layers = {p: n for p, n, _ in layers}

    attention = IPAttention(plain_attention, ip_w, ip_layers)
    cn.attention = attention
    cases = [
        # name, pictures (one per row, or one shared by both halves), latent height, width, timesteps, scale, guided
        ("guided", ["wide"], 8, 8, [500.0], 0.7, True),
        ("two_pictures", ["wide", "small"], 5, 7, [10.0, 900.0], 1.0, False),
    ]
    try:
        for name, pictures, h, wd, timesteps, scale, guided in cases:
            folder = os.path.join(OUT, name)
            os.makedirs(folder, exist_ok=True)
            latents = torch.randn(1 if guided else 2, 4, h, wd, generator=g)
            sample = torch.cat([latents] * 2) if guided else latents
            ctx = torch.randn(2, 7, cross, generator=g)
            t = torch.tensor(timesteps, dtype=torch.float32)
            if guided:
                image_embeds = torch.cat([torch.zeros_like(embeds[pictures[0]]), embeds[pictures[0]]])
            else:
                image_embeds = torch.cat([embeds[p] for p in pictures])
            with torch.no_grad():
                tokens = image_projection(ip_w, image_embeds, cross)
                attention.tokens, attention.scale, attention.seen = tokens, scale, set()
                pred = cn.unet(unet_w, cfg, d["up_block_types"], sample, t, ctx)
                assert attention.seen == set(ip_layers.values()), attention.seen
                attention.scale = 0.0
                unscaled = cn.unet(unet_w, cfg, d["up_block_types"], sample, t, ctx)
                attention.tokens = None
                plain = cn.unet(unet_w, cfg, d["up_block_types"], sample, t, ctx)
            assert (unscaled - plain).abs().max() < 1e-5, "scale 0 should leave the UNet as it was"
            assert (pred - unscaled).abs().max() > 1e-3, "the image branch changes nothing"
            np.save(os.path.join(folder, "sample.npy"), sample.numpy())
            np.save(os.path.join(folder, "encoder_hidden_states.npy"), ctx.numpy())
            np.save(os.path.join(folder, "ip_tokens.npy"), tokens.numpy())
            np.save(os.path.join(folder, "noise_pred.npy"), pred.numpy())
            json.dump({"timesteps": timesteps, "scale": scale, "picture": pictures[0] if guided else pictures,
                       "guided": guided, "unet": "small", "ip_layers": ip_layers},
                      open(os.path.join(folder, "meta.json"), "w"), indent=1)
        # One adapter, two pictures, guided: the unconditioned inputs are zeros_like(image_embeds).
        pictures = torch.cat([embeds["wide"], embeds["small"]])
        tokens = several_pictures_tokens(lambda x: image_projection(ip_w, x, cross), torch.zeros_like(pictures), pictures)
        guided_case(os.path.join(OUT, "guided_two_pictures"), g, 6, 6, cross, 700.0, attention,
                    lambda x, t, ctx: cn.unet(unet_w, cfg, d["up_block_types"], x, t, ctx), tokens, 0.6,
                    {"pictures": ["wide", "small"], "unet": "small", "ip_layers": ip_layers})
    finally:
        cn.attention = plain_attention


if __name__ == "__main__":
    main()
