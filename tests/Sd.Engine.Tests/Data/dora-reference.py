# Writes dora-reference.json: DoRA modules merged by the formulas of the tools that make and read them, in float64 on
# PyTorch, from float32 inputs. Run: python3 dora-reference.py > dora-reference.json (any PyTorch >= 1.13).
#
# kohya/LyCORIS/ComfyUI "dora_scale" (lora_unet_ and diffusion_model. names): V = W + alpha/rank x update, and
# LyCORIS's apply_weight_decompose's norm of V per output row ([out, 1, ...]) or per input channel ([1, in, ...])
# plus finfo(float32).eps; at strength s = 1 the result is LyCORIS's m x V / norm. At other strengths Sd blends as
# ComfyUI's weight_decompose does, W + s x (m x V / norm - W): ComfyUI's own result per input channel; per output
# row it is Sd's choice (ComfyUI takes the norm of W there, LyCORIS blends V + s x (m x V / norm - V)).
# diffusers' PEFT "lora_magnitude_vector" (unet. names, alpha from the lora_adapter_metadata config): PEFT's
# LoraLayer.merge, m / ||W + delta||_row x (W + delta), for s = 1; at other strengths Sd blends as above.
import json
import torch

torch.manual_seed(20261124)
EPS = torch.finfo(torch.float32).eps


def rand(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float().double()


def norm(v, per_input):
    if per_input:  # LyCORIS wd_on_out=False: over every dim but 1
        return v.transpose(0, 1).reshape(v.shape[1], -1).norm(dim=1).reshape(1, v.shape[1], *[1] * (v.dim() - 2))
    return v.reshape(v.shape[0], -1).norm(dim=1).reshape(v.shape[0], *[1] * (v.dim() - 1))


def blend(w, update, magnitude, s):
    per_input = magnitude.shape[0] == 1 and magnitude.dim() >= 2
    v = w + update
    m = magnitude.reshape(norm(v, per_input).shape)
    decomposed = v * (m / (norm(v, per_input) + EPS))
    return w + s * (decomposed - w)


def peft(w, delta, magnitude):
    weight_norm = w.add(delta).reshape(w.shape[0], -1).norm(dim=1)  # PEFT get_weight_norm: per output, no eps
    factor = magnitude.reshape(-1) / weight_norm
    return factor.view(-1, *[1] * (w.dim() - 1)) * (w + delta)


def values(t):
    return [float(x) for x in t.float().reshape(-1)]


def case(name, multiplier, w, tensors, merged, prefix="lora_unet_m.", metadata=None):
    out = {"name": name, "multiplier": multiplier, "prefix": prefix,
           "weight": {"shape": list(w.shape), "values": values(w)},
           "bias": values(torch.zeros(w.shape[0])), "merged_bias": values(torch.zeros(w.shape[0])),
           "tensors": {k: {"shape": list(v.shape), "values": values(v)} for k, v in tensors.items()},
           "merged": [float(x) for x in merged.reshape(-1)]}
    if metadata is not None:
        out["metadata"] = metadata
    return out


def lora(name, s, w_shape, rank, alpha, magnitude_shape, prefix="lora_unet_m."):
    out, inp = w_shape[0], w_shape[1]
    w = rand(*w_shape, scale=0.3)
    kernel = list(w_shape[2:])
    up, down = rand(out, rank, *([1, 1] if kernel else []), scale=0.5), rand(rank, inp, *kernel, scale=0.5)
    magnitude = rand(*magnitude_shape).abs() + 0.5
    update = (up.reshape(out, rank) @ down.reshape(rank, -1)).reshape(w_shape) * (alpha / rank)
    tensors = {"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(alpha, dtype=torch.float64),
               "dora_scale": magnitude}
    return case(name, s, w, tensors, blend(w, update, magnitude, s), prefix=prefix)


def loha(name, s, rank, alpha):
    w = rand(12, 10, scale=0.3)
    w1a, w1b, w2a, w2b = rand(12, rank), rand(rank, 10), rand(12, rank), rand(rank, 10)
    magnitude = rand(12, 1).abs() + 0.5
    update = (w1a @ w1b) * (w2a @ w2b) * (alpha / rank)
    tensors = {"hada_w1_a": w1a, "hada_w1_b": w1b, "hada_w2_a": w2a, "hada_w2_b": w2b,
               "alpha": torch.tensor(alpha, dtype=torch.float64), "dora_scale": magnitude}
    return case(name, s, w, tensors, blend(w, update, magnitude, s))


def lokr(name, s, rank, alpha):
    w = rand(12, 10, scale=0.3)
    w1, w2a, w2b = rand(3, 2), rand(4, rank), rand(rank, 5)
    magnitude = rand(1, 10).abs() + 0.5
    update = torch.kron(w1, w2a @ w2b) * (alpha / rank)
    tensors = {"lokr_w1": w1, "lokr_w2_a": w2a, "lokr_w2_b": w2b, "alpha": torch.tensor(alpha, dtype=torch.float64),
               "dora_scale": magnitude}
    return case(name, s, w, tensors, blend(w, update, magnitude, s))


def peft_case(name, s, w_shape, rank, lora_alpha, magnitude_shape, magnitude_name="lora_magnitude_vector.weight"):
    out, inp = w_shape[0], w_shape[1]
    w = rand(*w_shape, scale=0.3)
    kernel = list(w_shape[2:])
    a, b = rand(rank, inp, *kernel, scale=0.5), rand(out, rank, *([1, 1] if kernel else []), scale=0.5)
    magnitude = rand(*magnitude_shape).abs() + 0.5
    delta = (b.reshape(out, rank) @ a.reshape(rank, -1)).reshape(w_shape) * (lora_alpha / rank)
    merged = peft(w, delta, magnitude) if s == 1 else blend(w, delta, magnitude.reshape(out, *[1] * (len(w_shape) - 1)), s)
    metadata = {"lora_adapter_metadata": json.dumps({"unet.r": rank, "unet.lora_alpha": lora_alpha, "unet.use_dora": True})}
    tensors = {"lora_A.weight": a, "lora_B.weight": b, magnitude_name: magnitude}
    return case(name, s, w, tensors, merged, prefix="unet.m.", metadata=metadata)


cases = [
    lora("lora_linear_per_output", 0.7, [12, 10], 3, 1.5, [12, 1]),
    lora("lora_linear_per_input", 1.0, [12, 10], 3, 3.0, [1, 10]),
    lora("locon_conv_per_input", -0.5, [8, 6, 3, 3], 4, 2.0, [1, 6, 1, 1]),
    lora("locon_conv_per_output", 1.3, [8, 6, 3, 3], 4, 8.0, [8, 1, 1, 1]),
    lora("lora_square_per_input", 1.0, [10, 10], 2, 1.0, [1, 10]),
    lora("lora_linear_vector_per_output", 1.0, [12, 10], 3, 1.5, [12]),
    lora("comfy_conv_per_output", 1.0, [8, 6, 3, 3], 4, 4.0, [8, 1, 1, 1], prefix="diffusion_model.m."),
    loha("loha_per_output", 0.8, 3, 2.0),
    loha("loha_per_output_full", 1.0, 2, 2.0),
    lokr("lokr_per_input", 1.0, 2, 1.0),
    peft_case("peft_linear", 1.0, [12, 10], 3, 6.0, [12]),
    peft_case("peft_conv", 1.0, [8, 8, 3, 3], 4, 4.0, [1, 8, 1, 1], magnitude_name="lora_magnitude_vector"),
    peft_case("peft_linear_half", 0.5, [12, 10], 3, 6.0, [12]),
]
print(json.dumps({"generator": "tests/Sd.Engine.Tests/Data/dora-reference.py: LyCORIS apply_weight_decompose with "
                  "ComfyUI's strength blend, and PEFT LoraLayer.merge, on PyTorch " + torch.__version__ + ", float64; "
                  "the files hold the float32 values", "cases": cases}))
