"""Reference for A1111's seed resize (ExtraSeedNoise): modules/rng.py's ImageRNG.first with seed_resize_from_h/w, on
the CPU generator (A1111's RNG: CPU): the seed's draw at the resize shape (a fresh generator), varied there by the
subseed's draw of that shape (A1111's slerp) when a strength is given, pasted centred into the first draw of the
image's generator at the full shape, as ImageRNG.first places it.

Run: python3 seed-resize-reference.py > seed-resize-reference.json (PyTorch 1.13; the AVX2 capability, whose
normal_fill Sd's generator follows bit for bit)
"""
import importlib.util
import json
import os


# A1111's slerp and the seeded draws, as the variation seed's reference writes them.
_variation = importlib.util.spec_from_file_location("variation", os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed-variation-reference.py"))
variation = importlib.util.module_from_spec(_variation)
_variation.loader.exec_module(variation)
slerp, randn = variation.slerp, variation.randn


def first(seed, subseed, strength, shape, noise_shape):  # ImageRNG.first for one image, its shape (C, H, W)
    noise = randn(seed, noise_shape)
    if strength != 0:
        noise = slerp(strength, noise, randn(subseed, noise_shape))
    x = randn(seed, shape)
    dx = (shape[2] - noise_shape[2]) // 2
    dy = (shape[1] - noise_shape[1]) // 2
    w = noise_shape[2] if dx >= 0 else noise_shape[2] + 2 * dx
    h = noise_shape[1] if dy >= 0 else noise_shape[1] + 2 * dy
    tx = 0 if dx < 0 else dx
    ty = 0 if dy < 0 else dy
    dx = max(-dx, 0)
    dy = max(-dy, 0)
    x[:, ty:ty + h, tx:tx + w] = noise[:, dy:dy + h, dx:dx + w]
    return x


cases = []
for name, seed, subseed, strength, shape, noise_shape in [
    ("taller, narrower", 42, 0, 0.0, (4, 8, 8), (4, 6, 10)),
    ("odd excess", 7, 0, 0.0, (4, 8, 8), (4, 11, 5)),  # floor(-3 / 2) = -2: the last row keeps the full draw
    ("smaller both", 1234, 0, 0.0, (4, 12, 10), (4, 7, 4)),
    ("larger both", 99, 0, 0.0, (4, 6, 7), (4, 10, 12)),
    ("varied", 42, 7, 0.4, (4, 12, 10), (4, 9, 13)),
    ("varied, all", 5, 6, 1.0, (4, 16, 16), (4, 24, 8)),
]:
    out = first(seed, subseed, strength, shape, noise_shape)
    cases.append({"name": name, "seed": seed, "variation_seed": subseed, "strength": strength, "shape": list(shape),
                  "from": list(noise_shape[1:]), "noise": [float(v) for v in out.flatten()]})
print(json.dumps({"cases": cases}))
