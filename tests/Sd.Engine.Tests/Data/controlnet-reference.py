"""
Reference residuals and noise predictions for Sd's ControlNetModel and UNet2DConditionModel with ControlNet residuals
(ControlNetTests). Run from the repository root with the shared fixtures beside it:

    /usr/bin/python3 tests/Sd.Engine.Tests/Data/controlnet-reference.py

PyTorch 1.13, float32, CPU. diffusers is not installed here, so the UNet and ControlNet forwards below restate diffusers
0.27's UNet2DConditionModel and ControlNetModel (controlnet.py) for SD's block types; before writing anything the
script checks its UNet against every tiny and small fixture UNet case, which diffusers itself made, to 1e-5.

The ControlNet is diffusers' ControlNetModel.from_unet(tiny UNet) (its encoder's weights copied) with a conditioning
embedding of stages (8, 16) (factor 2, the tiny VAE's) and random, not zero, 1x1 convolutions, so every residual
counts. Those new tensors are written to controlnet/extra.safetensors; the test joins them to the fixture UNet's.
Each case folder holds its inputs (NCHW), meta.json, the residuals down_{i}.npy and mid.npy, and noise_pred.npy: the
UNet's prediction with the residuals added.
"""
import json, math, os, struct
import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(ROOT, "..", "..", "..", "..", "shared", "fixtures")
OUT = os.path.join(ROOT, "controlnet")
DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}

def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        raw = data[base + a:base + b]
        if v["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[v["dtype"]]).astype(np.float32)
        out[k] = torch.from_numpy(arr.reshape(v["shape"]).copy())
    return out

def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for k in sorted(tensors):
        arr = np.ascontiguousarray(tensors[k].detach().numpy().astype(np.float32))
        b = arr.tobytes()
        header[k] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

class Cfg:
    def __init__(self, d):
        self.blocks = list(d["block_out_channels"])
        self.layers = d.get("layers_per_block", 2)
        self.down_types = list(d["down_block_types"])
        heads = d.get("num_attention_heads") or d.get("attention_head_dim", 8)
        self.heads = [heads] * len(self.blocks) if isinstance(heads, int) else list(heads)
        self.groups = d.get("norm_num_groups", 32)
        self.eps = d.get("norm_eps", 1e-5)
        self.linear_proj = d.get("use_linear_projection", False)
        self.flip = d.get("flip_sin_to_cos", True)
        self.shift = d.get("freq_shift", 0)

def timestep_embedding(t, dim, flip, shift):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(0, half, dtype=torch.float32) / (half - shift)
    emb = torch.exp(exponent)
    emb = t[:, None].float() * emb[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb

def conv(w, p, x, stride=1):
    k = w[p + ".weight"]
    return F.conv2d(x, k, w.get(p + ".bias"), stride=stride, padding=k.shape[-1] // 2)

def linear(w, p, x):
    return F.linear(x, w[p + ".weight"], w.get(p + ".bias"))

def group_norm(w, p, x, groups, eps):
    return F.group_norm(x, groups, w[p + ".weight"], w[p + ".bias"], eps)

def resnet(w, p, x, temb, cfg):
    h = F.silu(group_norm(w, p + ".norm1", x, cfg.groups, cfg.eps))
    h = conv(w, p + ".conv1", h)
    h = h + linear(w, p + ".time_emb_proj", F.silu(temb))[:, :, None, None]
    h = F.silu(group_norm(w, p + ".norm2", h, cfg.groups, cfg.eps))
    h = conv(w, p + ".conv2", h)
    if p + ".conv_shortcut.weight" in w:
        x = conv(w, p + ".conv_shortcut", x)
    return x + h

def attention(w, p, x, ctx, heads):
    q = linear(w, p + ".to_q", x)
    k = linear(w, p + ".to_k", ctx)
    v = linear(w, p + ".to_v", ctx)
    b, n, c = q.shape
    d = c // heads
    q = q.reshape(b, n, heads, d).transpose(1, 2)
    k = k.reshape(b, -1, heads, d).transpose(1, 2)
    v = v.reshape(b, -1, heads, d).transpose(1, 2)
    scores = torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, dim=-1)
    o = (scores @ v).transpose(1, 2).reshape(b, n, c)
    return linear(w, p + ".to_out.0", o)

def transformer(w, p, x, ctx, heads, cfg):
    b, c, hh, ww = x.shape
    res = x
    h = F.group_norm(x, cfg.groups, w[p + ".norm.weight"], w[p + ".norm.bias"], 1e-6)
    if cfg.linear_proj:
        h = h.permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        h = linear(w, p + ".proj_in", h)
    else:
        h = conv(w, p + ".proj_in", h)
        h = h.permute(0, 2, 3, 1).reshape(b, hh * ww, c)
    t = p + ".transformer_blocks.0"
    j = 0
    while f"{p}.transformer_blocks.{j}.norm1.weight" in w:
        t = f"{p}.transformer_blocks.{j}"
        n = F.layer_norm(h, (c,), w[t + ".norm1.weight"], w[t + ".norm1.bias"], 1e-5)
        h = attention(w, t + ".attn1", n, n, heads) + h
        n = F.layer_norm(h, (c,), w[t + ".norm2.weight"], w[t + ".norm2.bias"], 1e-5)
        h = attention(w, t + ".attn2", n, ctx, heads) + h
        n = F.layer_norm(h, (c,), w[t + ".norm3.weight"], w[t + ".norm3.bias"], 1e-5)
        a, gate = linear(w, t + ".ff.net.0.proj", n).chunk(2, dim=-1)
        h = linear(w, t + ".ff.net.2", a * F.gelu(gate)) + h
        j += 1
    if cfg.linear_proj:
        h = linear(w, p + ".proj_out", h)
        h = h.reshape(b, hh, ww, c).permute(0, 3, 1, 2)
    else:
        h = h.reshape(b, hh, ww, c).permute(0, 3, 1, 2)
        h = conv(w, p + ".proj_out", h)
    return h + res

def time_embed(w, t, batch, cfg):
    t = t.expand(batch) if t.dim() == 1 and t.shape[0] == 1 else t.reshape(-1).expand(batch)
    e = timestep_embedding(t, cfg.blocks[0], cfg.flip, cfg.shift)
    return linear(w, "time_embedding.linear_2", F.silu(linear(w, "time_embedding.linear_1", e)))

def down_and_mid(w, h, temb, ctx, cfg, adapter_states=None):
    """The down path and mid block; adapter_states (T2I-Adapter features, diffusers' down_intrablock_additional_residuals)
    go into the down blocks in order: a cross-attention block adds its state to its last (resnet, attention) output
    before that is a skip and before the downsampler; another block adds it in place to its output, the last skip."""
    states = list(adapter_states or [])
    skips = [h]
    for i, kind in enumerate(cfg.down_types):
        cross = kind.startswith("CrossAttn")
        for j in range(cfg.layers):
            h = resnet(w, f"down_blocks.{i}.resnets.{j}", h, temb, cfg)
            if cross:
                h = transformer(w, f"down_blocks.{i}.attentions.{j}", h, ctx, cfg.heads[i], cfg)
                if j == cfg.layers - 1 and states:
                    h = h + states.pop(0)
            skips.append(h)
        if i < len(cfg.blocks) - 1:
            h = conv(w, f"down_blocks.{i}.downsamplers.0.conv", h, stride=2)
            skips.append(h)
        if not cross and states:
            h = h + states.pop(0)
            skips[-1] = h
    h = resnet(w, "mid_block.resnets.0", h, temb, cfg)
    h = transformer(w, "mid_block.attentions.0", h, ctx, cfg.heads[-1], cfg)
    h = resnet(w, "mid_block.resnets.1", h, temb, cfg)
    return skips, h

def unet(w, cfg, up_types, sample, t, ctx, down_residuals=None, mid_residual=None, adapter_states=None):
    temb = time_embed(w, t, sample.shape[0], cfg)
    h = conv(w, "conv_in", sample)
    skips, h = down_and_mid(w, h, temb, ctx, cfg, adapter_states)
    if down_residuals is not None:
        skips = [s + r for s, r in zip(skips, down_residuals)]
        h = h + mid_residual
    n = len(cfg.blocks)
    for i, kind in enumerate(up_types):
        level = n - 1 - i
        for j in range(cfg.layers + 1):
            skip = skips.pop()
            h = resnet(w, f"up_blocks.{i}.resnets.{j}", torch.cat([h, skip], dim=1), temb, cfg)
            if kind.startswith("CrossAttn"):
                h = transformer(w, f"up_blocks.{i}.attentions.{j}", h, ctx, cfg.heads[level], cfg)
        if i < n - 1:
            size = skips[-1].shape[2:]
            h = F.interpolate(h, size=size, mode="nearest")
            h = conv(w, f"up_blocks.{i}.upsamplers.0.conv", h)
    h = F.silu(group_norm(w, "conv_norm_out", h, cfg.groups, cfg.eps))
    return conv(w, "conv_out", h)

def controlnet(w, cfg, sample, t, ctx, cond, scale, guess_mode=False, bgr=False, global_pool=False):
    if bgr:
        cond = torch.flip(cond, dims=[1])
    temb = time_embed(w, t, sample.shape[0], cfg)
    h = conv(w, "conv_in", sample)
    e = F.silu(conv(w, "controlnet_cond_embedding.conv_in", cond))
    j = 0
    while f"controlnet_cond_embedding.blocks.{j}.weight" in w:
        e = F.silu(conv(w, f"controlnet_cond_embedding.blocks.{j}", e, stride=2 if j % 2 == 1 else 1))
        j += 1
    h = h + conv(w, "controlnet_cond_embedding.conv_out", e)
    skips, h = down_and_mid(w, h, temb, ctx, cfg)
    down = [conv(w, f"controlnet_down_blocks.{i}", s) for i, s in enumerate(skips)]
    mid = conv(w, "controlnet_mid_block", h)
    if guess_mode and not global_pool:
        scales = torch.logspace(-1, 0, len(down) + 1) * scale
        down = [d * s for d, s in zip(down, scales)]
        mid = mid * scales[-1]
    else:
        down = [d * scale for d in down]
        mid = mid * scale
    if global_pool:
        down = [torch.mean(d, dim=(2, 3), keepdim=True) for d in down]
        mid = torch.mean(mid, dim=(2, 3), keepdim=True)
    return down, mid


def check_unet_port():
    for model in ["tiny", "small"]:
        d = json.load(open(f"{FIXTURES}/{model}/model/unet/config.json"))
        w = load_safetensors(f"{FIXTURES}/{model}/model/unet/diffusion_pytorch_model.safetensors")
        for case in ["t999", "t500", "t1", "t761.25_float", "per_sample_t", "nonsquare", "odd_size"]:
            c = f"{FIXTURES}/{model}/ref/unet/{case}"
            t = torch.from_numpy(np.load(f"{c}/timestep.npy")).reshape(-1)
            with torch.no_grad():
                out = unet(w, Cfg(d), d["up_block_types"], torch.from_numpy(np.load(f"{c}/sample.npy")), t,
                           torch.from_numpy(np.load(f"{c}/encoder_hidden_states.npy"))).numpy()
            err = np.abs(out - np.load(f"{c}/noise_pred.npy")).max()
            assert err < 1e-5, (model, case, err)


def check_logspace():
    # ControlNetModel.ResidualScale restates torch.logspace(-1, 0, n + 1) as doubles rounded to float32.
    for n in range(1, 40):
        ours = [np.float32(10.0 ** (-1.0 + i / n if i < (n + 1) // 2 else 0.0 - (1.0 / n) * (n - i))) for i in range(n + 1)]
        assert np.array_equal(np.array(ours, dtype=np.float32), torch.logspace(-1, 0, n + 1).numpy()), n


def main():
    check_unet_port()
    check_logspace()
    os.makedirs(OUT, exist_ok=True)
    d = json.load(open(f"{FIXTURES}/tiny/model/unet/config.json"))
    cfg = Cfg(d)
    w = load_safetensors(f"{FIXTURES}/tiny/model/unet/diffusion_pytorch_model.safetensors")
    g = torch.Generator().manual_seed(20261125)
    stages = [8, 16]
    extra = {}

    def conv_param(name, cin, cout, k):
        bound = 1 / math.sqrt(cin * k * k)
        extra[name + ".weight"] = (torch.rand(cout, cin, k, k, generator=g) * 2 - 1) * bound
        extra[name + ".bias"] = (torch.rand(cout, generator=g) * 2 - 1) * bound

    conv_param("controlnet_cond_embedding.conv_in", 3, stages[0], 3)
    for i in range(len(stages) - 1):
        conv_param(f"controlnet_cond_embedding.blocks.{2 * i}", stages[i], stages[i], 3)
        conv_param(f"controlnet_cond_embedding.blocks.{2 * i + 1}", stages[i], stages[i + 1], 3)
    conv_param("controlnet_cond_embedding.conv_out", stages[-1], cfg.blocks[0], 3)
    skips = [cfg.blocks[0]]
    for i, c in enumerate(cfg.blocks):
        skips += [c] * cfg.layers + ([c] if i < len(cfg.blocks) - 1 else [])
    for i, c in enumerate(skips):
        conv_param(f"controlnet_down_blocks.{i}", c, c, 1)
    conv_param("controlnet_mid_block", cfg.blocks[-1], cfg.blocks[-1], 1)
    save_safetensors(os.path.join(OUT, "extra.safetensors"), extra)
    cn = {k: v for k, v in w.items() if k.startswith(("conv_in.", "time_embedding.", "down_blocks.", "mid_block."))}
    cn.update(extra)

    context = torch.from_numpy(np.load(f"{FIXTURES}/tiny/ref/unet/t500/encoder_hidden_states.npy"))
    cases = [
        # name, batch, image batch, timesteps, scale, guess mode, bgr, global pool
        ("shared_image", 2, 1, [500.0], 0.75, False, False, False),
        ("guess_mode", 1, 1, [761.25], 1.3, True, False, False),
        ("bgr_pooled_per_image", 2, 2, [10.0, 900.0], 1.0, False, True, True),
    ]
    for name, batch, images, timesteps, scale, guess, bgr, pool in cases:
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        h, wd = 12, 10
        sample = torch.randn(batch, 4, h, wd, generator=g)
        image = torch.rand(images, 3, 2 * h, 2 * wd, generator=g)
        ctx = context[:batch].clone()
        t = torch.tensor(timesteps, dtype=torch.float32)
        with torch.no_grad():
            down, mid = controlnet(cn, cfg, sample, t, ctx, image.expand(batch, -1, -1, -1), scale, guess, bgr, pool)
            pred = unet(w, cfg, d["up_block_types"], sample, t, ctx, down, mid)
        np.save(os.path.join(folder, "sample.npy"), sample.numpy())
        np.save(os.path.join(folder, "image.npy"), image.numpy())
        np.save(os.path.join(folder, "encoder_hidden_states.npy"), ctx.numpy())
        for i, r in enumerate(down):
            np.save(os.path.join(folder, f"down_{i}.npy"), expand_pooled(r, i, h, wd, cfg) if pool else r.numpy())
        np.save(os.path.join(folder, "mid.npy"), mid.numpy() if not pool else expand_pooled(mid, len(down), h, wd, cfg))
        np.save(os.path.join(folder, "noise_pred.npy"), pred.numpy())
        json.dump({"timesteps": timesteps, "scale": scale, "guess_mode": guess, "bgr": bgr, "global_pool": pool,
                   "residuals": len(down) + 1}, open(os.path.join(folder, "meta.json"), "w"), indent=1)
        json.dump({"_class_name": "ControlNetModel", "conditioning_embedding_out_channels": stages,
                   "controlnet_conditioning_channel_order": "bgr" if bgr else "rgb", "global_pool_conditions": pool,
                   **{k: d[k] for k in ["attention_head_dim", "block_out_channels", "cross_attention_dim", "down_block_types",
                                        "flip_sin_to_cos", "freq_shift", "in_channels", "layers_per_block", "norm_eps",
                                        "norm_num_groups", "use_linear_projection"]}},
                  open(os.path.join(folder, "config.json"), "w"), indent=1)


def expand_pooled(r, index, h, w, cfg):
    """A pooled residual [B, C, 1, 1] at its skip's full size, as the UNet broadcasts it."""
    sizes = [(h, w)]
    for i in range(len(cfg.blocks)):
        sizes += [sizes[-1]] * cfg.layers
        if i < len(cfg.blocks) - 1:
            sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    sizes.append(sizes[-1])
    return r.expand(-1, -1, *sizes[index]).contiguous().numpy()


if __name__ == "__main__":
    main()
