# Writes extras-upscale-reference.json: AUTOMATIC1111's Extras "Upscale" (scripts/postprocessing_upscale.py,
# ScriptPostprocessingUpscale.upscale and .process, and modules/upscaler.py Upscaler.upscale, restated below) with the
# Lanczos and Nearest upscalers and with small ESRGAN models from esrgan-reference.py, on seeded random pictures.
# Run: /usr/bin/python3 extras-upscale-reference.py > extras-upscale-reference.json (PyTorch 1.13, numpy 1.24, Pillow 9.4).
import base64
import importlib.util
import json
import os

import numpy as np
import PIL
from PIL import Image

spec = importlib.util.spec_from_file_location("esrgan_reference", os.path.join(os.path.dirname(__file__), "esrgan-reference.py"))
esrgan = importlib.util.module_from_spec(spec)
spec.loader.exec_module(esrgan)

LANCZOS = Image.LANCZOS
NEAREST = Image.NEAREST


class Upscaler:
    # modules/upscaler.py: Upscaler.upscale with the do_upscale of UpscalerLanczos, UpscalerNearest or an ESRGAN model.
    def __init__(self, name, model=None, tile=0, overlap=0):
        self.name, self.model, self.tile, self.overlap = name, model, tile, overlap

    def do_upscale(self, img):
        if self.model is not None:
            return esrgan.upscale_with_model(self.model, img, self.tile, self.overlap)
        resample = NEAREST if self.name == "Nearest" else LANCZOS
        return img.resize((int(img.width * self.scale), int(img.height * self.scale)), resample=resample)

    def upscale(self, img, scale):
        self.scale = scale
        dest_w = int((img.width * scale) // 8 * 8)
        dest_h = int((img.height * scale) // 8 * 8)
        for i in range(3):
            if img.width >= dest_w and img.height >= dest_h and (i > 0 or scale != 1):
                break
            shape = (img.width, img.height)
            img = self.do_upscale(img)
            if shape == (img.width, img.height):
                break
        if img.width != dest_w or img.height != dest_h:
            img = img.resize((int(dest_w), int(dest_h)), resample=LANCZOS)
        return img


def limit_size_by_one_dimention(w, h, limit):
    if h > w and h > limit:
        w = limit * w // h
        h = limit
    elif w > limit:
        h = limit * h // w
        w = limit
    return int(w), int(h)


def upscale(image, info, upscaler, upscale_mode, upscale_by, max_side_length, upscale_to_width, upscale_to_height, upscale_crop):
    if upscale_mode == 1:
        upscale_by = max(upscale_to_width / image.width, upscale_to_height / image.height)
        info["Postprocess upscale to"] = f"{upscale_to_width}x{upscale_to_height}"
    else:
        info["Postprocess upscale by"] = upscale_by
        if max_side_length != 0 and max(*image.size) * upscale_by > max_side_length:
            upscale_mode = 1
            upscale_crop = False
            upscale_to_width, upscale_to_height = limit_size_by_one_dimention(image.width * upscale_by, image.height * upscale_by, max_side_length)
            upscale_by = max(upscale_to_width / image.width, upscale_to_height / image.height)
            info["Max side length"] = max_side_length
    image = upscaler.upscale(image, upscale_by)
    if upscale_mode == 1 and upscale_crop:
        cropped = Image.new("RGB", (upscale_to_width, upscale_to_height))
        cropped.paste(image, box=(upscale_to_width // 2 - image.width // 2, upscale_to_height // 2 - image.height // 2))
        image = cropped
        info["Postprocess crop to"] = f"{image.width}x{image.height}"
    return image


def process(image, upscaler1, upscaler2, visibility, mode, by, max_side, to_w, to_h, crop):
    info = {}
    upscaled = upscale(image, info, upscaler1, mode, by, max_side, to_w, to_h, crop)
    info["Postprocess upscaler"] = upscaler1.name
    if upscaler2 and visibility > 0:
        second = upscale(image, info, upscaler2, mode, by, max_side, to_w, to_h, crop)
        upscaled = Image.blend(upscaled, second, visibility)
        info["Postprocess upscaler 2"] = upscaler2.name
    return upscaled, info


def main():
    models = {}
    for key, (nf, gc, blocks, shuffle) in {"x4": (16, 16, 1, 1), "x2": (16, 16, 1, 2)}.items():
        model, names = esrgan.build(nf, gc, blocks, shuffle)
        models[key] = (model, {"features": nf, "growth": gc, "blocks": blocks, "shuffle": shuffle, "tensors": names})
    rng = np.random.default_rng(20261125)
    cases = []
    # (upscaler 1, upscaler 2, visibility, picture h x w, mode, scale by, max side, to w, to h, crop)
    for first, second, visibility, (h, w), mode, by, max_side, to_w, to_h, crop in [
            ("Lanczos", None, 0, (21, 30), 0, 2.5, 0, 0, 0, True),
            ("Nearest", None, 0, (17, 13), 0, 3, 0, 0, 0, True),
            ("Lanczos", None, 0, (21, 30), 0, 1, 0, 0, 0, True),
            ("Lanczos", None, 0, (20, 30), 1, 4, 0, 64, 64, True),
            ("Lanczos", None, 0, (20, 30), 1, 4, 0, 50, 50, True),
            ("Nearest", None, 0, (20, 30), 1, 4, 0, 64, 40, False),
            ("Lanczos", None, 0, (40, 36), 1, 4, 0, 24, 16, True),
            ("Lanczos", None, 0, (20, 30), 0, 4, 100, 0, 0, True),
            ("Nearest", None, 0, (31, 20), 0, 3.3, 77, 0, 0, True),
            ("Lanczos", "Nearest", 0.3, (18, 22), 0, 2, 0, 0, 0, True),
            ("Nearest", "Lanczos", 0.75, (20, 30), 1, 4, 0, 50, 50, True),
            ("x4", None, 0, (14, 18), 0, 2, 0, 0, 0, True),
            ("x2", None, 0, (11, 13), 0, 4, 0, 0, 0, True),
            ("x4", None, 0, (17, 19), 0, 1, 0, 0, 0, True),
            ("x4", "Lanczos", 0.5, (20, 22), 1, 4, 0, 56, 48, True)]:
        def make(name):
            if name in models:
                return Upscaler(name, models[name][0], 16, 4)
            return Upscaler(name)
        picture = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        picture[: h // 3, : w // 2] = 255
        out, info = process(Image.fromarray(picture, "RGB"), make(first), make(second) if second else None, visibility,
                            mode, by, max_side, to_w, to_h, crop)
        out = np.asarray(out)
        cases.append({"upscaler": first, "upscaler2": second, "visibility": visibility, "in": [h, w], "mode": mode,
                      "scale": by, "max_side": max_side, "to": [to_w, to_h], "crop": crop,
                      "picture": esrgan.b64(picture), "out": list(out.shape), "upscaled": esrgan.b64(out),
                      "info": [[k, str(v)] for k, v in info.items()]})
    print(json.dumps({"generator": f"tests/Sd.Engine.Tests/Data/extras-upscale-reference.py: Pillow {PIL.__version__}, numpy {np.__version__}",
                      "models": {k: v[1] for k, v in models.items()}, "cases": cases}))


if __name__ == "__main__":
    main()
