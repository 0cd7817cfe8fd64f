"""
Reference features and noise predictions for Sd's T2IAdapterModel and the UNet's adapter path (T2IAdapterTests). Run
from the repository root with the shared fixtures beside it:

    /usr/bin/python3 tests/Sd.Engine.Tests/Data/adapter-reference.py

PyTorch 1.13, float32, CPU. diffusers is not installed here, so the adapter below restates diffusers 0.27's T2IAdapter
with adapter_type "full_adapter" (adapter.py: PixelUnshuffle, conv_in, AdapterBlocks of AvgPool2d(2, ceil_mode=True),
1x1 in_conv and AdapterResnetBlocks of 3x3 conv, ReLU, 1x1 conv and the skip) and the UNet is controlnet-reference.py's,
checked there against every fixture UNet case, with its down path taking the features as diffusers'
down_intrablock_additional_residuals. The adapters have random weights drawn from a seeded torch generator (see
adapter_weights), shaped for the small and tiny fixture UNets. Each case folder holds meta.json (the adapter's config
and seed), its inputs (NCHW), the scaled features feature_{i}.npy and noise_pred.npy.
"""
import importlib.util, json, math, os
import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("controlnet_reference", os.path.join(ROOT, "controlnet-reference.py"))
cn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cn)
OUT = os.path.join(ROOT, "adapter")


def adapter(w, config, x):
    x = F.pixel_unshuffle(x, config["downscale_factor"])
    x = cn.conv(w, "adapter.conv_in", x)
    features = []
    for i in range(len(config["channels"])):
        p = f"adapter.body.{i}"
        if i > 0:
            x = F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)
        if p + ".in_conv.weight" in w:
            x = cn.conv(w, p + ".in_conv", x)
        for j in range(config["num_res_blocks"]):
            q = f"{p}.resnets.{j}"
            h = F.relu(cn.conv(w, q + ".block1", x))
            x = cn.conv(w, q + ".block2", h) + x
        features.append(x)
    return features


def adapter_weights(config, seed):
    """Random weights in a fixed draw order (per layer: weight, then bias, each (U(0,1) x 2 - 1) / sqrt(fan in)) from
    torch.Generator().manual_seed(seed): T2IAdapterTests makes the same tensors with Sd's TorchGenerator, so the
    weights need not be stored."""
    g = torch.Generator().manual_seed(seed)
    w = {}

    def conv_param(name, cin, cout, k):
        bound = 1 / math.sqrt(cin * k * k)
        w[name + ".weight"] = (torch.rand(cout, cin, k, k, generator=g) * 2 - 1) * bound
        w[name + ".bias"] = (torch.rand(cout, generator=g) * 2 - 1) * bound

    channels = config["channels"]
    conv_param("adapter.conv_in", config["in_channels"] * config["downscale_factor"] ** 2, channels[0], 3)
    for i, c in enumerate(channels):
        if i > 0 and channels[i - 1] != c:
            conv_param(f"adapter.body.{i}.in_conv", channels[i - 1], c, 1)
        for j in range(config["num_res_blocks"]):
            conv_param(f"adapter.body.{i}.resnets.{j}.block1", c, c, 3)
            conv_param(f"adapter.body.{i}.resnets.{j}.block2", c, c, 1)
    return w


def main():
    cn.check_unet_port()
    g = torch.Generator().manual_seed(20261126)
    # The small UNet (cross-attention blocks 64, 128, then a plain 256 one; pictures 8x the latents) takes an adapter
    # feature per block; the tiny UNet's first block is plain with a downsampler, so its one feature goes after that.
    models = {
        "small": ({"_class_name": "T2IAdapter", "adapter_type": "full_adapter", "channels": [64, 128, 256], "downscale_factor": 8,
                   "in_channels": 3, "num_res_blocks": 2}, 7),
        "tiny": ({"_class_name": "T2IAdapter", "adapter_type": "full_adapter", "channels": [32], "downscale_factor": 4,
                  "in_channels": 3, "num_res_blocks": 2}, 8),
    }
    cases = [
        # name, model, latent height, width, timesteps, scale, whether the batch's halves repeat (classifier-free guidance)
        ("small_guided", "small", 8, 8, [500.0], 0.8, True),
        ("small_odd_size", "small", 5, 7, [10.0, 900.0], 1.0, False),
        ("tiny_after_downsampler", "tiny", 6, 10, [300.0], 1.2, True),
    ]
    for name, model, h, wd, timesteps, scale, halves in cases:
        config, seed = models[model]
        d = json.load(open(f"{cn.FIXTURES}/{model}/model/unet/config.json"))
        cfg = cn.Cfg(d)
        unet_w = cn.load_safetensors(f"{cn.FIXTURES}/{model}/model/unet/diffusion_pytorch_model.safetensors")
        factor = 2 ** (len(json.load(open(f"{cn.FIXTURES}/{model}/model/vae/config.json"))["block_out_channels"]) - 1)
        w = adapter_weights(config, seed)
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        image = torch.rand(1, 3, factor * h, factor * wd, generator=g)
        latents = torch.randn(1 if halves else 2, 4, h, wd, generator=g)
        sample = torch.cat([latents] * 2) if halves else latents
        ctx = torch.randn(2, 7, d["cross_attention_dim"], generator=g)
        t = torch.tensor(timesteps, dtype=torch.float32)
        with torch.no_grad():
            features = [f * scale for f in adapter(w, config, image)]
            states = [torch.cat([f] * 2) for f in features]
            pred = cn.unet(unet_w, cfg, d["up_block_types"], sample, t, ctx, adapter_states=states)
            plain = cn.unet(unet_w, cfg, d["up_block_types"], sample, t, ctx)
        assert (pred - plain).abs().max() > 1e-3, "the adapter changes nothing"
        np.save(os.path.join(folder, "image.npy"), image.numpy())
        np.save(os.path.join(folder, "sample.npy"), sample.numpy())
        np.save(os.path.join(folder, "encoder_hidden_states.npy"), ctx.numpy())
        for i, f in enumerate(features):
            np.save(os.path.join(folder, f"feature_{i}.npy"), f.numpy())
        np.save(os.path.join(folder, "noise_pred.npy"), pred.numpy())
        json.dump({"model": model, "seed": seed, "config": config, "timesteps": timesteps, "scale": scale, "features": len(features)},
                  open(os.path.join(folder, "meta.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
