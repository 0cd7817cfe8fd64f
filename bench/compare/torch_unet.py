"""A plain-PyTorch UNet2DConditionModel (SD 1.x family) that runs a diffusers `unet/` folder, for timing
PyTorch and ONNX Runtime on the same machine as `sd bench --part unet`. Not used by the build or the tests.

The block structure is read off the checkpoint's keys, the heads off config.json, so the same code runs the
fixtures' tiny UNet (checked against diffusers' output with --check) and SD 1.5's shapes.
Reference: diffusers UNet2DConditionModel (unet_2d_condition.py) with the default attention processor.
"""
import json
import math
import os
import re

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def _count(keys, prefix):
    """Number of children `prefix.N.` present in the checkpoint."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in keys for m in [pattern.match(k)] if m}
    return max(found) + 1 if found else 0


class TorchUNet(torch.nn.Module):
    def __init__(self, unet_dir, dtype=torch.float32):
        super().__init__()
        with open(os.path.join(unet_dir, "config.json")) as f:
            self.config = json.load(f)
        weights = load_file(os.path.join(unet_dir, "diffusion_pytorch_model.safetensors"))
        # Parameter names cannot hold dots: keep the checkpoint key in a side table.
        self.names = {}
        for i, (key, value) in enumerate(sorted(weights.items())):
            name = f"p{i}"
            self.register_buffer(name, value.to(dtype).contiguous())
            self.names[key] = name
        keys = list(weights)
        self.down = [(_count(keys, f"down_blocks.{i}.resnets"), _count(keys, f"down_blocks.{i}.attentions"),
                      f"down_blocks.{i}.downsamplers.0.conv.weight" in weights)
                     for i in range(_count(keys, "down_blocks"))]
        self.up = [(_count(keys, f"up_blocks.{i}.resnets"), _count(keys, f"up_blocks.{i}.attentions"),
                    f"up_blocks.{i}.upsamplers.0.conv.weight" in weights)
                   for i in range(_count(keys, "up_blocks"))]
        heads = self.config.get("num_attention_heads") or self.config["attention_head_dim"]
        self.heads = heads if isinstance(heads, list) else [heads] * len(self.down)
        self.eps = self.config.get("norm_eps", 1e-5)
        self.groups = self.config.get("norm_num_groups", 32)
        self.shift = self.config.get("freq_shift", 0)

    def w(self, key):
        return getattr(self, self.names[key])

    def has(self, key):
        return key in self.names

    def conv(self, x, prefix, stride=1):
        weight = self.w(prefix + ".weight")
        return F.conv2d(x, weight, self.w(prefix + ".bias"), stride=stride, padding=int(weight.shape[-1]) // 2)

    def linear(self, x, prefix):
        bias = self.w(prefix + ".bias") if self.has(prefix + ".bias") else None
        return F.linear(x, self.w(prefix + ".weight"), bias)

    def group_norm(self, x, prefix, eps):
        return F.group_norm(x, self.groups, self.w(prefix + ".weight"), self.w(prefix + ".bias"), eps)

    def layer_norm(self, x, prefix):
        return F.layer_norm(x, (int(x.shape[-1]),), self.w(prefix + ".weight"), self.w(prefix + ".bias"), 1e-5)

    # Reference: diffusers ResnetBlock2D (default time_embedding_norm, output_scale_factor 1).
    def resnet(self, x, temb, prefix):
        h = self.conv(F.silu(self.group_norm(x, prefix + ".norm1", self.eps)), prefix + ".conv1")
        h = h + self.linear(F.silu(temb), prefix + ".time_emb_proj")[:, :, None, None]
        h = self.conv(F.silu(self.group_norm(h, prefix + ".norm2", self.eps)), prefix + ".conv2")
        if self.has(prefix + ".conv_shortcut.weight"):
            x = self.conv(x, prefix + ".conv_shortcut")
        return x + h

    # Reference: diffusers Attention with AttnProcessor2_0 (scaled dot-product attention).
    def attention(self, x, context, prefix, heads):
        q = self.linear(x, prefix + ".to_q")
        k = self.linear(context, prefix + ".to_k")
        v = self.linear(context, prefix + ".to_v")
        b, n, c = q.shape
        # [B, N, C] -> [B, heads, N, C / heads]
        q, k, v = (t.reshape(b, -1, heads, c // heads).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v)
        # [B, heads, N, C / heads] -> [B, N, C]
        return self.linear(o.transpose(1, 2).reshape(b, n, c), prefix + ".to_out.0")

    # Reference: diffusers Transformer2DModel (conv or linear proj_in) with one BasicTransformerBlock.
    def transformer(self, x, context, prefix, heads):
        b, c, hgt, wid = x.shape
        h = self.group_norm(x, prefix + ".norm", 1e-6)
        linear_proj = self.w(prefix + ".proj_in.weight").dim() == 2
        if not linear_proj:
            h = self.conv(h, prefix + ".proj_in")
        # [B, C, H, W] -> [B, H*W, C]
        h = h.permute(0, 2, 3, 1).reshape(b, hgt * wid, -1)
        if linear_proj:
            h = self.linear(h, prefix + ".proj_in")
        block = prefix + ".transformer_blocks.0"
        normed = self.layer_norm(h, block + ".norm1")
        h = h + self.attention(normed, normed, block + ".attn1", heads)
        h = h + self.attention(self.layer_norm(h, block + ".norm2"), context, block + ".attn2", heads)
        hidden, gate = self.linear(self.layer_norm(h, block + ".norm3"), block + ".ff.net.0.proj").chunk(2, -1)
        h = h + self.linear(hidden * F.gelu(gate), block + ".ff.net.2")
        if linear_proj:
            h = self.linear(h, prefix + ".proj_out")
        # [B, H*W, C] -> [B, C, H, W]
        h = h.reshape(b, hgt, wid, -1).permute(0, 3, 1, 2)
        if not linear_proj:
            h = self.conv(h, prefix + ".proj_out")
        return h + x

    def time_embedding(self, timestep, batch):
        dim = int(self.w("conv_in.weight").shape[0])
        half = dim // 2
        t = timestep.to(torch.float32).reshape(-1).expand(batch)
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - self.shift)
        emb = t[:, None] * torch.exp(exponent)[None, :]
        emb = torch.cat([torch.cos(emb), torch.sin(emb)], dim=-1)  # flip_sin_to_cos
        emb = emb.to(self.w("conv_in.weight").dtype)
        return self.linear(F.silu(self.linear(emb, "time_embedding.linear_1")), "time_embedding.linear_2")

    def forward(self, sample, timestep, context):
        temb = self.time_embedding(timestep, sample.shape[0])
        x = self.conv(sample, "conv_in")
        skips = [x]
        for i, (resnets, attentions, downsample) in enumerate(self.down):
            for j in range(resnets):
                x = self.resnet(x, temb, f"down_blocks.{i}.resnets.{j}")
                if attentions:
                    x = self.transformer(x, context, f"down_blocks.{i}.attentions.{j}", self.heads[i])
                skips.append(x)
            if downsample:
                x = self.conv(x, f"down_blocks.{i}.downsamplers.0.conv", stride=2)
                skips.append(x)
        x = self.resnet(x, temb, "mid_block.resnets.0")
        x = self.transformer(x, context, "mid_block.attentions.0", self.heads[-1])
        x = self.resnet(x, temb, "mid_block.resnets.1")
        up_heads = list(reversed(self.heads))
        for i, (resnets, attentions, upsample) in enumerate(self.up):
            for j in range(resnets):
                x = self.resnet(torch.cat([x, skips.pop()], dim=1), temb, f"up_blocks.{i}.resnets.{j}")
                if attentions:
                    x = self.transformer(x, context, f"up_blocks.{i}.attentions.{j}", up_heads[i])
            if upsample:
                # Nearest 2x, or to the next skip's size where an odd size was halved (diffusers' upsample_size).
                x = F.interpolate(x, size=skips[-1].shape[-2:], mode="nearest")
                x = self.conv(x, f"up_blocks.{i}.upsamplers.0.conv")
        x = F.silu(self.group_norm(x, "conv_norm_out", self.eps))
        return self.conv(x, "conv_out")
