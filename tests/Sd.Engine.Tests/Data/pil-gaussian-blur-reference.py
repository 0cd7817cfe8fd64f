"""Reference for PilGaussianBlur: Pillow 9.4's ImageFilter.GaussianBlur (three extended box-blur passes each way, in
fixed point) on RGBa and L pictures at the radii A1111's masked content "fill" uses and others, on pictures
narrower than the box, 1 pixel wide and flat; with the box radius Pillow computes for each radius (float32).

Run: /usr/bin/python3 pil-gaussian-blur-reference.py > pil-gaussian-blur-reference.json
"""
import base64
import json
import math

import numpy as np
import PIL
from PIL import Image, ImageFilter

rng = np.random.default_rng(20261125)


def box_radius(radius, passes=3):
    """libImaging/BoxBlur.c's _gaussian_blur_radius, in float32 as C's floats."""
    f = np.float32
    sigma2 = f(radius) * f(radius) / f(passes)
    length = f(math.sqrt(12.0 * float(sigma2) + 1.0))
    whole = f(math.floor((float(length) - 1.0) / 2.0))
    a = (f(2) * whole + f(1)) * (whole * (whole + f(1)) - f(3) * sigma2)
    a /= f(6) * (sigma2 - (whole + f(1)) * (whole + f(1)))
    return float(whole + a)


def picture(width, height, mode):
    bands = len(mode)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([128 + 100 * np.sin(x / (3 + c) + y / (5 + 2 * c)) for c in range(bands)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
    if mode == "RGBa":  # premultiplied: colours at most the alpha, a hole of alpha 0 in the middle
        alpha = pixels[..., 3].astype(np.uint16)
        alpha[height // 4: height // 2 + 1, width // 4: width // 2 + 1] = 0
        pixels[..., 3] = alpha
        pixels[..., :3] = (pixels[..., :3].astype(np.uint16) * alpha[..., None] // 255).astype(np.uint8)
    return pixels[..., 0] if mode == "L" else pixels


def main():
    cases = []
    for name, (w, h), mode, radius in [
        ("RGBa 40x30 radius 2", (40, 30), "RGBa", 2),
        ("RGBa 40x30 radius 4", (40, 30), "RGBa", 4),
        ("RGBa 40x30 radius 16", (40, 30), "RGBa", 16),
        ("RGBa 40x30 radius 64 (box wider than the picture)", (40, 30), "RGBa", 64),
        ("RGBa 40x30 radius 256", (40, 30), "RGBa", 256),
        ("RGBa 40x30 radius 0", (40, 30), "RGBa", 0),
        ("RGBa 97x13 radius 16", (97, 13), "RGBa", 16),
        ("RGBa 300x7 radius 64 (box inside the rows)", (300, 7), "RGBa", 64),
        ("RGBa 1x9 radius 2", (1, 9), "RGBa", 2),
        ("RGBa 1x1 radius 4", (1, 1), "RGBa", 4),
        ("L 33x21 radius 0.5", (33, 21), "L", 0.5),
        ("L 33x21 radius 1.7", (33, 21), "L", 1.7),
        ("L 33x21 radius 7.25", (33, 21), "L", 7.25),
        ("L 5x50 radius 3", (5, 50), "L", 3),
    ]:
        pixels = picture(w, h, mode)
        image = Image.frombytes(mode, (w, h), pixels.tobytes())
        blurred = image.filter(ImageFilter.GaussianBlur(radius))
        assert blurred.mode == image.mode
        cases.append({"name": name, "width": w, "height": h, "channels": len(mode), "radius": radius,
                      "box_radius": box_radius(radius), "pixels": base64.b64encode(pixels.tobytes()).decode(),
                      "blurred": base64.b64encode(blurred.tobytes()).decode()})
    print(json.dumps({"pillow": PIL.__version__, "cases": cases}))


if __name__ == "__main__":
    main()
