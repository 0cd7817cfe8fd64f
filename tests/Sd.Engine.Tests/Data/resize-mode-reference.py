"""Reference for PictureResize: A1111's images.resize_image (modules/images.py, without an img2img upscaler, as its
default) in its three modes, 0 "Just resize", 1 "Crop and resize", 2 "Resize and fill", on RGB pictures and on
masks (mode L), with Pillow 9.4; and Pillow's convert("L") of RGB and RGBA pictures (masks are read as that).

Run: python3 resize-mode-reference.py > resize-mode-reference.json (a1111-inpaint-reference.py imports its resize_image)
"""
import json

import numpy as np
from PIL import Image

LANCZOS = Image.LANCZOS


def resize_image(resize_mode, im, width, height):  # A1111's, its resize() without an upscaler
    def resize(im, w, h):
        return im.resize((w, h), resample=LANCZOS)

    if resize_mode == 0:
        res = resize(im, width, height)
    elif resize_mode == 1:
        ratio = width / height
        src_ratio = im.width / im.height
        src_w = width if ratio > src_ratio else im.width * height // im.height
        src_h = height if ratio <= src_ratio else im.height * width // im.width
        resized = resize(im, src_w, src_h)
        res = Image.new("RGB", (width, height))
        res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    else:
        ratio = width / height
        src_ratio = im.width / im.height
        src_w = width if ratio < src_ratio else im.width * height // im.height
        src_h = height if ratio >= src_ratio else im.height * width // im.width
        resized = resize(im, src_w, src_h)
        res = Image.new("RGB", (width, height))
        res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        if ratio < src_ratio:
            fill_height = height // 2 - src_h // 2
            if fill_height > 0:
                res.paste(resized.resize((width, fill_height), box=(0, 0, width, 0)), box=(0, 0))
                res.paste(resized.resize((width, fill_height), box=(0, resized.height, width, resized.height)), box=(0, fill_height + src_h))
        elif ratio > src_ratio:
            fill_width = width // 2 - src_w // 2
            if fill_width > 0:
                res.paste(resized.resize((fill_width, height), box=(0, 0, 0, height)), box=(0, 0))
                res.paste(resized.resize((fill_width, height), box=(resized.width, 0, resized.width, height)), box=(fill_width + src_w, 0))
    return res


rng = np.random.default_rng(2026)


def picture(mode, width, height):
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    # Smooth shapes plus noise, so that resampling has something to do at every scale.
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(128 + 100 * np.sin(x / (3 + c) + y / (5 + 2 * c))) for c in range(channels)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)


def main():
    cases = []
    for mode, (w, h), (tw, th), resize_mode in [
        ("RGB", (37, 23), (32, 40), 0),
        ("RGB", (13, 9), (40, 32), 0),
        ("RGB", (37, 23), (32, 40), 1),
        ("RGB", (50, 20), (24, 24), 1),
        ("RGB", (37, 23), (32, 40), 2),
        ("RGB", (50, 20), (24, 24), 2),
        ("RGB", (20, 50), (24, 16), 2),
        ("RGB", (21, 20), (24, 24), 2),  # one row to fill above and below
        ("RGB", (41, 40), (24, 24), 2),
        ("RGB", (64, 48), (64, 48), 1),
        ("L", (29, 31), (16, 24), 0),
        ("L", (29, 31), (16, 24), 1),
        ("L", (29, 31), (16, 24), 2),
        ("L", (31, 17), (24, 24), 2),
        ("L", (17, 31), (24, 24), 2),  # bands left and right
    ]:
        im = picture(mode, w, h)
        out = resize_image(resize_mode, im, tw, th)
        if mode == "L":
            out = out.convert("L")  # pasted into A1111's RGB canvas: the gray repeated
        cases.append({"mode": mode, "resize_mode": resize_mode, "width": w, "height": h, "to_width": tw, "to_height": th,
                      "pixels": np.asarray(im).flatten().tolist(), "expected": np.asarray(out).flatten().tolist()})

    gray = []
    for mode in ["RGB", "RGBA"]:
        im = picture(mode, 11, 7)
        gray.append({"mode": mode, "width": 11, "height": 7, "pixels": np.asarray(im).flatten().tolist(),
                     "expected": np.asarray(im.convert("L")).flatten().tolist()})
    print(json.dumps({"cases": cases, "gray": gray}))


if __name__ == "__main__":
    main()
