"""Reference for A1111's variation seed (ExtraSeedNoise): modules/rng.py's ImageRNG.first with a subseed, on the CPU
generator (A1111's RNG: CPU): the seed's draw and the variation seed's draw, each randn((C, H, W)) from a fresh
torch.Generator().manual_seed(seed), blended by A1111's slerp (modules/rng.py) at the variation strength.

Run: python3 seed-variation-reference.py > seed-variation-reference.json (PyTorch 1.13; the AVX2 capability, whose
normal_fill Sd's generator follows bit for bit)
"""
import json

import torch


def slerp(val, low, high):  # A1111's, as it is: the norms and the dot run over dim 1 of a (C, H, W) draw, its rows
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)

    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)

    omega = torch.acos(dot)
    so = torch.sin(omega)
    res = (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high
    return res


def randn(seed, shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def main():
    cases = []
    for name, seed, subseed, strength, shape in [
        ("4x8x8 0.3", 42, 7, 0.3, (4, 8, 8)),
        ("4x8x8 0.75", 42, 7, 0.75, (4, 8, 8)),
        ("4x6x10 0.5", 1, 2, 0.5, (4, 6, 10)),
        ("4x9x5 1.0", 3, 4, 1.0, (4, 9, 5)),
        ("9x4x4 0.05", 123456789, 987654321, 0.05, (9, 4, 4)),
        ("same seed 0.4", 5, 5, 0.4, (4, 8, 8)),  # dot 1: A1111's linear branch
        ("4x24x24 0.6", 2024, 11, 0.6, (4, 24, 24)),
    ]:
        out = slerp(strength, randn(seed, shape), randn(subseed, shape))
        cases.append({"name": name, "seed": seed, "variation_seed": subseed, "strength": strength, "shape": list(shape),
                      "noise": [float(v) for v in out.flatten()]})
    print(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main()
