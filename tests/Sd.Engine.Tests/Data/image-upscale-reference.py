# Writes image-upscale-reference.json: A1111's hires-fix picture resize (modules/images.py resize_image with
# resize_mode 0, and modules/upscaler.py Upscaler.upscale with UpscalerLanczos's or UpscalerNearest's do_upscale;
# "None" resizes directly),
# on Pillow, of seeded random RGB pictures. Run: python3 image-upscale-reference.py > image-upscale-reference.json
# (Pillow 9.4, numpy 1.24).
import base64
import json
import numpy as np
import PIL
from PIL import Image

LANCZOS = Image.LANCZOS
NEAREST = Image.NEAREST


def upscale(img, scale, resample):
    # Upscaler.upscale with UpscalerLanczos's (resample LANCZOS) or UpscalerNearest's (NEAREST) do_upscale.
    dest_w = int((img.width * scale) // 8 * 8)
    dest_h = int((img.height * scale) // 8 * 8)
    for _ in range(3):
        if img.width >= dest_w and img.height >= dest_h and scale != 1:
            break
        shape = (img.width, img.height)
        img = img.resize((int(img.width * scale), int(img.height * scale)), resample=resample)
        if shape == (img.width, img.height):
            break
    if img.width != dest_w or img.height != dest_h:
        img = img.resize((int(dest_w), int(dest_h)), resample=LANCZOS)
    return img


def resize_image(im, width, height, upscaler_name):
    # resize_mode 0 ("Just resize").
    if upscaler_name == "None":
        return im.resize((width, height), resample=LANCZOS)
    scale = max(width / im.width, height / im.height)
    if scale > 1.0:
        im = upscale(im, scale, NEAREST if upscaler_name == "Nearest" else LANCZOS)
    if im.width != width or im.height != height:
        im = im.resize((width, height), resample=LANCZOS)
    return im


rng = np.random.default_rng(112024)
cases = []
for upscaler, (h, w), (oh, ow) in [("Lanczos", (16, 16), (22, 22)), ("Lanczos", (24, 40), (60, 100)), ("Lanczos", (32, 48), (56, 72)),
                                   ("Lanczos", (40, 40), (40, 48)), ("Lanczos", (24, 16), (16, 16)), ("None", (24, 40), (60, 100)),
                                   ("None", (8, 8), (8, 8)), ("Nearest", (24, 40), (60, 100)), ("Nearest", (32, 24), (52, 40)),
                                   ("Nearest", (48, 40), (56, 56)), ("Nearest", (40, 40), (40, 48)), ("Nearest", (8, 8), (20, 20))]:
    x = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    x[: h // 3] = 255
    y = np.asarray(resize_image(Image.fromarray(x, "RGB"), ow, oh, upscaler))
    assert y.shape == (oh, ow, 3)
    cases.append({"upscaler": upscaler, "in": [h, w], "out": [oh, ow],
                  "x": base64.b64encode(x.tobytes()).decode(), "y": base64.b64encode(y.tobytes()).decode()})
print(json.dumps({"generator": "tests/Sd.Engine.Tests/Data/image-upscale-reference.py: Pillow " + PIL.__version__, "cases": cases}))
