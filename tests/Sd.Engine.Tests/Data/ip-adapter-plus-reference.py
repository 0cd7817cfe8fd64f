"""
Reference hidden states, image tokens and noise predictions for Sd's IP-Adapter Plus and full-face support: the image
encoder's penultimate hidden states, the Resampler and MLP image projections, and the UNet steered by their tokens.
Run from the repository root with the shared fixtures beside it, after ip-adapter-reference.py (whose image encoder,
pictures and pixel values it reads):

    /usr/bin/python3 tests/Sd.Engine.Tests/Data/ip-adapter-plus-reference.py

PyTorch 1.13, float32, CPU. transformers and diffusers are not installed here, so the code below restates them:

- transformers 4.38's CLIPVisionModel with output_hidden_states=True (modeling_clip.py, CLIPEncoder): hidden_states[0]
  is the embeddings after pre_layrnorm, hidden_states[i] the output of layer i, so hidden_states[-2] is the output of
  the next-to-last layer, with no post_layernorm. The encoder is ip-adapter-reference.py's clip_vision_states, checked
  here to give the image_embeds stored beside the weights it reads.
- diffusers 0.27's encode_image(output_hidden_states=True), which IP-Adapter Plus and full-face take (the pipeline
  asks for hidden states unless the projection is an ImageProjection): the picture's hidden_states[-2] and, for the
  unconditioned half of classifier-free guidance, that of torch.zeros_like(pixel_values); negative first, as
  prepare_ip_adapter_image_embeds concatenates them.
- diffusers 0.27's IPAdapterPlusImageProjection and IPAdapterPlusImageProjectionBlock (embeddings.py), as
  _convert_ip_adapter_image_proj_to_diffusers builds them from h94's Resampler keys (heads = to_q rows // 64;
  to_kv split into to_k, to_v in that order; layers.i.0.norm1 -> ln0, norm2 -> ln1; layers.i.1 -> ff):
  latents = latents.repeat(N); x = proj_in(x); per layer: residual = latents; keys = cat(ln0(x), ln1(latents));
  latents = to_out(sdpa(to_q(ln1(latents)), to_k(keys), to_v(keys))) + residual, sdpa's scale head_dim ** -0.5, no
  biases; latents = ff(latents) + latents with ff = Linear(GELU(Linear(LayerNorm))) (FeedForward gelu, bias False,
  exact GELU); then norm_out(proj_out(latents)). Every LayerNorm eps 1e-5.
- diffusers 0.27's IPAdapterFullImageProjection: norm(ff(x)) with FeedForward(E, D, mult=1, activation_fn="gelu")
  (Linear E -> E, exact GELU, Linear E -> D), h94's proj.0 / proj.2 / proj.3: one token per encoder position.
- IPAdapterAttnProcessor2_0 on every attn2, as ip-adapter-reference.py's IPAttention (any number of image tokens).
- diffusers 0.27's set_ip_adapter_scale with a dict (loaders/ip_adapter.py, InstantStyle): _maybe_expand_lora_scales
  (loaders/unet_loader_utils.py) with default_scale 0.0 expands {"up": {"block_0": [...]}, "mid": [...]} to a scale
  per "down_blocks.i.attentions.j" / "up_blocks.i.attentions.j" / "mid_block.attentions.0" (layers_per_block
  transformer models per down block with attentions, layers_per_block + 1 per up block, blocks and parts not named 0),
  and each attn2 processor takes the scale of the name it starts with. The Plus case runs with such a dict.

The UNet is the tiny fixture's, through controlnet-reference.py's checked port. Everything random comes from seeded
torch generators: h94's Resampler latents N(0,1) / sqrt(width), the rest as ip-adapter-reference.py draws them.

Outputs under ipadapter/:
- hidden_states_{wide,small,zeros}.npy [1, 17, 32]: hidden_states[-2] of the pictures' pixel values and of zeros.
- plus/ and full_face/: ip_adapter.safetensors (F16, h94's layout: a Resampler of width 64, 16 queries, 2 layers of 2
  heads, feed-forward 256, from the encoder's 32-wide states to the tiny UNet's 32-wide tokens; an MLP 32 -> 32 -> 32),
  meta.json (with the Plus case's block_scales dict), sample.npy (NCHW, the guided pair), encoder_hidden_states.npy [2, 7, 32], ip_tokens.npy [2, T, 32]
  (unconditioned row first) and noise_pred.npy (NCHW).
- plus_two_pictures/: the Plus adapter with the wide and small pictures in one unit (ip-adapter-reference.py's
  several_pictures_tokens), scale 0.8: the same files, ip_tokens.npy [2, 32, 32] (16 tokens per picture).
- plus_masked/: the same unit with ip_adapter_masks (mask_left.png, mask_right.png; IPAdapterMaskProcessor's
  preprocess and downsample and IPAdapterAttnProcessor2_0's masked branch, restated below), scale 0.9, latents 5 x 7.
- masks.json: the two masks binarized at 56 x 40 and downsampled for several query counts.
"""
import importlib.util, json, math, os
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("ip_adapter_reference", os.path.join(ROOT, "ip-adapter-reference.py"))
ipa = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ipa)
cn = ipa.cn
OUT = ipa.OUT
HEAD_DIM = 64
RESAMPLER = {"width": 64, "queries": 16, "depth": 2, "heads": 2, "ff": 256}


# ---------------------------------------------------------------- random weights (h94's key names and init)

def _linear(g, w, name, cin, cout, bias=True):
    w[name + ".weight"] = ipa._uniform(g, (cout, cin), cin)
    if bias:
        w[name + ".bias"] = ipa._uniform(g, (cout,), cin)


def _norm(g, w, name, n):
    w[name + ".weight"] = 1 + 0.1 * torch.randn(n, generator=g)
    w[name + ".bias"] = 0.1 * torch.randn(n, generator=g)


def resampler_weights(g, embed, cross, r):
    w = {"image_proj.latents": torch.randn(1, r["queries"], r["width"], generator=g) / r["width"] ** 0.5}
    _linear(g, w, "image_proj.proj_in", embed, r["width"])
    _linear(g, w, "image_proj.proj_out", r["width"], cross)
    _norm(g, w, "image_proj.norm_out", cross)
    inner = r["heads"] * HEAD_DIM
    for i in range(r["depth"]):
        p = f"image_proj.layers.{i}"
        _norm(g, w, p + ".0.norm1", r["width"])
        _norm(g, w, p + ".0.norm2", r["width"])
        _linear(g, w, p + ".0.to_q", r["width"], inner, bias=False)
        _linear(g, w, p + ".0.to_kv", r["width"], 2 * inner, bias=False)
        _linear(g, w, p + ".0.to_out", inner, r["width"], bias=False)
        _norm(g, w, p + ".1.0", r["width"])
        _linear(g, w, p + ".1.1", r["width"], r["ff"], bias=False)
        _linear(g, w, p + ".1.3", r["ff"], r["width"], bias=False)
    return w


def mlp_weights(g, embed, cross):
    w = {}
    _linear(g, w, "image_proj.proj.0", embed, embed)
    _linear(g, w, "image_proj.proj.2", embed, cross)
    _norm(g, w, "image_proj.proj.3", cross)
    return w


def layer_weights(g, layers, cross):
    w = {}
    for _, n, c in layers:
        w[f"ip_adapter.{n}.to_k_ip.weight"] = ipa._uniform(g, (c, cross), cross)
        w[f"ip_adapter.{n}.to_v_ip.weight"] = ipa._uniform(g, (c, cross), cross)
    return w


# ---------------------------------------------------------------- diffusers' projections

def resampler(w, x, cross, r):
    def ln(name, t):
        return F.layer_norm(t, (t.shape[-1],), w[name + ".weight"], w[name + ".bias"], 1e-5)

    inner = r["heads"] * HEAD_DIM
    latents = w["image_proj.latents"].repeat(x.shape[0], 1, 1)
    x = cn.linear(w, "image_proj.proj_in", x)
    for i in range(r["depth"]):
        p = f"image_proj.layers.{i}"
        residual = latents
        keys = ln(p + ".0.norm1", x)
        latents = ln(p + ".0.norm2", latents)
        keys = torch.cat([keys, latents], dim=-2)
        to_k, to_v = w[p + ".0.to_kv.weight"].chunk(2, dim=0)
        assert to_k.shape[0] == inner
        q = F.linear(latents, w[p + ".0.to_q.weight"])
        attended = ipa._sdpa(q, F.linear(keys, to_k), F.linear(keys, to_v), r["heads"])
        latents = F.linear(attended, w[p + ".0.to_out.weight"]) + residual
        ff = F.linear(F.gelu(F.linear(ln(p + ".1.0", latents), w[p + ".1.1.weight"])), w[p + ".1.3.weight"])
        latents = ff + latents
    latents = cn.linear(w, "image_proj.proj_out", latents)
    return F.layer_norm(latents, (cross,), w["image_proj.norm_out.weight"], w["image_proj.norm_out.bias"], 1e-5)


def mlp(w, x, cross):
    h = cn.linear(w, "image_proj.proj.2", F.gelu(cn.linear(w, "image_proj.proj.0", x)))
    return F.layer_norm(h, (cross,), w["image_proj.proj.3.weight"], w["image_proj.proj.3.bias"], 1e-5)


def expand_block_scales(scales, d):
    """_maybe_expand_lora_scales_for_one_adapter(scales, ..., default_scale=0.0) for the UNet config d, restated."""
    scales = json.loads(json.dumps(scales))
    with_attn = {"down": [i for i, t in enumerate(d["down_block_types"]) if t.startswith("CrossAttn")],
                 "up": [i for i, t in enumerate(d["up_block_types"]) if t.startswith("CrossAttn")]}
    per_block = {"down": d["layers_per_block"], "up": d["layers_per_block"] + 1}
    if "mid" not in scales:
        scales["mid"] = 0.0
    elif isinstance(scales["mid"], list):
        assert len(scales["mid"]) == 1
        scales["mid"] = scales["mid"][0]
    for updown in ["up", "down"]:
        if updown not in scales:
            scales[updown] = 0.0
        if not isinstance(scales[updown], dict):
            scales[updown] = {f"block_{i}": scales[updown] for i in with_attn[updown]}
        for i in with_attn[updown]:
            block = f"block_{i}"
            if block not in scales[updown]:
                scales[updown][block] = 0.0
            if not isinstance(scales[updown][block], list):
                scales[updown][block] = [scales[updown][block]] * per_block[updown]
            elif len(scales[updown][block]) == 1:
                scales[updown][block] = scales[updown][block] * per_block[updown]
            assert len(scales[updown][block]) == per_block[updown]
        for i in with_attn[updown]:
            for tf, value in enumerate(scales[updown][f"block_{i}"]):
                scales[f"{updown}.block_{i}.{tf}"] = value
        del scales[updown]

    def actual(name):
        if name == "mid":
            return "mid_block.attentions.0"
        updown, block, attn = name.split(".")
        return ".".join((updown.replace("down", "down_blocks").replace("up", "up_blocks"), block.replace("block_", ""), "attentions." + attn))

    return {actual(name): value for name, value in scales.items()}


class BlockScaledAttention(ipa.IPAttention):
    """IPAttention whose scale on each attn2 is the expanded dict's entry its processor name starts with."""

    def __init__(self, plain, ip_w, numbers, layer_scales):
        super().__init__(plain, ip_w, numbers)
        self.layer_scales = layer_scales

    def __call__(self, w, p, x, ctx, heads):
        if p.endswith(".attn2") and self.tokens is not None and self.layer_scales is not None:
            for k, value in self.layer_scales.items():
                if p.startswith(k):
                    self.scale = value
        return super().__call__(w, p, x, ctx, heads)


# ---------------------------------------------------------------- masks (diffusers 0.27 image_processor.py)

def binarize_mask(path, width, height):
    """IPAdapterMaskProcessor.preprocess of one mask picture: resize((width, height), LANCZOS) in its own mode, then
    convert("L"), np.float32 / 255.0, binarize (< 0.5 -> 0, >= 0.5 -> 1): [height, width]."""
    image = Image.open(path).resize((width, height), resample=Image.LANCZOS).convert("L")
    mask = torch.from_numpy(np.array(image).astype(np.float32) / 255.0)
    mask[mask < 0.5] = 0
    mask[mask >= 0.5] = 1
    return mask


def downsample(mask, batch_size, num_queries, value_embed_dim):
    """IPAdapterMaskProcessor.downsample, restated (the warnings left out)."""
    o_h, o_w = mask.shape[1], mask.shape[2]
    ratio = o_w / o_h
    mask_h = int(math.sqrt(num_queries / ratio))
    mask_h = int(mask_h) + int((num_queries % int(mask_h)) != 0)
    mask_w = num_queries // mask_h
    mask_downsample = F.interpolate(mask.unsqueeze(0), size=(mask_h, mask_w), mode="bicubic").squeeze(0)
    if mask_downsample.shape[0] < batch_size:
        mask_downsample = mask_downsample.repeat(batch_size, 1, 1)
    mask_downsample = mask_downsample.view(mask_downsample.shape[0], -1)
    if mask_h * mask_w < num_queries:
        mask_downsample = F.pad(mask_downsample, (0, num_queries - mask_downsample.shape[1]), value=0.0)
    if mask_h * mask_w > num_queries:
        mask_downsample = mask_downsample[:, :num_queries]
    return mask_downsample.view(mask_downsample.shape[0], mask_downsample.shape[1], 1).repeat(1, 1, value_embed_dim)


class MaskedAttention(ipa.IPAttention):
    """IPAdapterAttnProcessor2_0 with ip_adapter_masks ([1, N, H, W] for the one adapter): each picture's tokens
    attended to alone, hidden_states + scale * (attention * downsample(mask[:, i], batch, queries, channels))."""

    def __init__(self, plain, ip_w, numbers, masks):
        super().__init__(plain, ip_w, numbers)
        self.masks = masks

    def add_image_attention(self, n, q, h, heads):
        for i in range(self.masks.shape[1]):
            k_ip = F.linear(self.tokens[:, i], self.ip_w[f"ip_adapter.{n}.to_k_ip.weight"])
            v_ip = F.linear(self.tokens[:, i], self.ip_w[f"ip_adapter.{n}.to_v_ip.weight"])
            a = ipa._sdpa(q, k_ip, v_ip, heads)
            h = h + self.scale * (a * downsample(self.masks[:, i], q.shape[0], a.shape[1], a.shape[2]))
        return h


def mask_pictures(g):
    """mask_left.png (gray 30 x 20: white left of a noisy edge near x = 17) and mask_right.png (RGB 26 x 22: white
    right of x = 11, tinted), other sizes and channel counts than the run's, for the resize and gray conversion."""
    x = torch.arange(30, dtype=torch.float32).expand(20, 30)
    left = ((x < 17 + 2 * torch.randn(20, 30, generator=g)).to(torch.uint8) * 255).numpy()
    Image.fromarray(left, "L").save(os.path.join(OUT, "mask_left.png"))
    x = torch.arange(26, dtype=torch.float32).expand(22, 26)
    right = (x >= 11).to(torch.float32)
    rgb = torch.stack([right * 250, right * 240 + 10, right * 200 + 30], dim=-1).round().to(torch.uint8).numpy()
    Image.fromarray(rgb, "RGB").save(os.path.join(OUT, "mask_right.png"))


def main():
    cn.check_unet_port()
    plain_attention = cn.attention
    cfg = ipa.CLIP_CONFIG
    cw = cn.load_safetensors(os.path.join(OUT, "image_encoder", "model.safetensors"))

    # hidden_states[-2] of each picture and of zero pixels; the last state checked against the stored image_embeds.
    hidden = {}
    for name in ["wide", "small", "zeros"]:
        pixels = torch.zeros(1, 3, cfg["image_size"], cfg["image_size"]) if name == "zeros" \
            else torch.from_numpy(np.load(os.path.join(OUT, f"pixel_values_{name}.npy")))
        with torch.no_grad():
            states, embeds = ipa.clip_vision_states(cw, cfg, pixels)
        assert len(states) == cfg["num_hidden_layers"] + 1
        if name != "zeros":
            stored = np.load(os.path.join(OUT, f"image_embeds_{name}.npy"))
            assert np.abs(embeds.numpy() - stored).max() < 1e-6, "the image encoder is not the one image_embeds were made with"
        hidden[name] = states[-2]
        np.save(os.path.join(OUT, f"hidden_states_{name}.npy"), states[-2].numpy())

    d = json.load(open(f"{cn.FIXTURES}/tiny/model/unet/config.json"))
    ucfg = cn.Cfg(d)
    cross = d["cross_attention_dim"]
    unet_w = cn.load_safetensors(f"{cn.FIXTURES}/tiny/model/unet/diffusion_pytorch_model.safetensors")
    layers = ipa.attn2_layers(unet_w)
    ip_layers = {p: n for p, n, _ in layers}
    embed = cfg["hidden_size"]

    g = torch.Generator().manual_seed(20261201)
    blocks = {"up": {"block_0": [0.0, 1.2, 0.7]}, "mid": [0.5]}
    cases = [
        # name, projection weights, projection, picture, latent height, width, timestep, scale (a number or a dict)
        ("plus", resampler_weights(g, embed, cross, RESAMPLER), lambda w, x: resampler(w, x, cross, RESAMPLER), "wide", 8, 8, 500.0, blocks),
        ("full_face", mlp_weights(g, embed, cross), lambda w, x: mlp(w, x, cross), "small", 6, 10, 300.0, 1.0),
    ]
    weights = {}
    try:
        for name, proj_w, project, picture, h, wd, timestep, scale in cases:
            folder = os.path.join(OUT, name)
            os.makedirs(folder, exist_ok=True)
            # Stored in float16, as h94's files are: the reference runs on the rounded weights.
            ip_w = {k: v.half().float() for k, v in {**proj_w, **layer_weights(g, layers, cross)}.items()}
            ipa.save_f16_safetensors(os.path.join(folder, "ip_adapter.safetensors"), ip_w)
            latents = torch.randn(1, 4, h, wd, generator=g)
            sample = torch.cat([latents] * 2)
            ctx = torch.randn(2, 7, cross, generator=g)
            t = torch.tensor([timestep], dtype=torch.float32)
            layer_scales = expand_block_scales(scale, d) if isinstance(scale, dict) else None
            attention = BlockScaledAttention(plain_attention, ip_w, ip_layers, layer_scales)
            cn.attention = attention
            with torch.no_grad():
                tokens = project(ip_w, torch.cat([hidden["zeros"], hidden[picture]]))
                attention.tokens, attention.scale = tokens, (1.0 if isinstance(scale, dict) else scale)
                pred = cn.unet(unet_w, ucfg, d["up_block_types"], sample, t, ctx)
                assert attention.seen == set(ip_layers.values()), attention.seen
                attention.tokens = None
                plain = cn.unet(unet_w, ucfg, d["up_block_types"], sample, t, ctx)
            assert (pred - plain).abs().max() > 1e-3, "the image branch changes nothing"
            np.save(os.path.join(folder, "sample.npy"), sample.numpy())
            np.save(os.path.join(folder, "encoder_hidden_states.npy"), ctx.numpy())
            np.save(os.path.join(folder, "ip_tokens.npy"), tokens.numpy())
            np.save(os.path.join(folder, "noise_pred.npy"), pred.numpy())
            json.dump({"timesteps": [timestep], "scale": 1.0 if isinstance(scale, dict) else scale,
                       "block_scales": scale if isinstance(scale, dict) else None, "layer_scales": layer_scales,
                       "picture": picture, "guided": True, "unet": "tiny", "tokens": list(tokens.shape), "ip_layers": ip_layers},
                      open(os.path.join(folder, "meta.json"), "w"), indent=1)
            weights[name] = (ip_w, project)
        # The Plus adapter with two pictures, guided: the unconditioned inputs are the zero pixels' states, once per
        # picture (encode_image of zeros_like(pixel_values) for the batch of both).
        ip_w, project = weights["plus"]
        pictures = torch.cat([hidden["wide"], hidden["small"]])
        tokens = ipa.several_pictures_tokens(lambda x: project(ip_w, x), torch.cat([hidden["zeros"]] * 2), pictures)
        cn.attention = ipa.IPAttention(plain_attention, ip_w, ip_layers)
        ipa.guided_case(os.path.join(OUT, "plus_two_pictures"), g, 6, 6, cross, 700.0, cn.attention,
                        lambda x, t, ctx: cn.unet(unet_w, ucfg, d["up_block_types"], x, t, ctx), tokens, 0.8,
                        {"pictures": ["wide", "small"], "unet": "tiny", "ip_layers": ip_layers})
        # The same two pictures, each masked (ip_adapter_masks of the one adapter: [1, 2, 40, 56] for latents 5 x 7,
        # whose cross-attention level of 3 x 4 reads the masks on a 2 x 6 grid: diffusers' rule at this aspect ratio).
        mask_pictures(g)
        names = ["mask_left", "mask_right"]
        masks = torch.stack([binarize_mask(os.path.join(OUT, f"{m}.png"), 56, 40) for m in names]).unsqueeze(0)
        cn.attention = MaskedAttention(plain_attention, ip_w, ip_layers, masks)
        ipa.guided_case(os.path.join(OUT, "plus_masked"), g, 5, 7, cross, 400.0, cn.attention,
                        lambda x, t, ctx: cn.unet(unet_w, ucfg, d["up_block_types"], x, t, ctx), tokens, 0.9,
                        {"pictures": ["wide", "small"], "masks": names, "unet": "tiny", "ip_layers": ip_layers})
        # The masks binarized at the run's size and downsampled for query counts that fit the aspect ratio, pad and cut.
        json.dump({"height": 40, "width": 56, "binary": masks[0].reshape(2, -1).tolist(),
                   "downsampled": {str(q): [downsample(masks[:, i], 1, q, 1).reshape(-1).tolist() for i in range(2)]
                                   for q in [2, 5, 6, 12, 13, 35, 70, 560, 2240]}},
                  open(os.path.join(OUT, "masks.json"), "w"))
    finally:
        cn.attention = plain_attention


if __name__ == "__main__":
    main()
