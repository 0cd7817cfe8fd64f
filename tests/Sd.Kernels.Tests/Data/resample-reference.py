# Writes resample-reference.json: Pillow's Image.resize(size, filter[, box]) of seeded random RGB and L pictures
# (8-bit; up, down, one axis only, uneven and odd sizes, a picture to 1.5 times its size and back down) with LANCZOS,
# then with BICUBIC (Image.resize's default), and regions (boxes) of pictures, empty ones at an edge included.
# Run: python3 resample-reference.py > resample-reference.json (Pillow 9.4, numpy 1.24).
import base64
import json
import numpy as np
import PIL
from PIL import Image

rng = np.random.default_rng(20261124)
cases = []
for mode, (h, w), (oh, ow) in [("RGB", (8, 8), (12, 16)), ("RGB", (16, 24), (36, 40)), ("RGB", (30, 50), (45, 17)),
                               ("RGB", (32, 32), (48, 48)), ("RGB", (40, 8), (40, 20)), ("RGB", (9, 33), (27, 33)),
                               ("L", (13, 7), (5, 29)), ("RGB", (48, 40), (72, 60)), ("RGB", (72, 60), (64, 56)),
                               ("RGB", (1, 5), (3, 9)), ("L", (100, 3), (7, 1))]:
    channels = 3 if mode == "RGB" else 1
    x = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    # Smooth areas, edges and the extremes: ringing past 0 and 255 is clamped.
    x[: h // 2, : w // 2] = 255
    x[h // 2:, w // 2:] = 0
    image = Image.fromarray(x[:, :, 0] if mode == "L" else x, mode)
    y = np.asarray(image.resize((ow, oh), Image.LANCZOS))
    cases.append({"channels": channels, "in": [h, w], "out": [oh, ow], "filter": "lanczos",
                  "x": base64.b64encode(x.tobytes()).decode(), "y": base64.b64encode(y.tobytes()).decode()})
# Boxes are (left, top, right, bottom), as Pillow takes them.
for mode, (h, w), (oh, ow), box, name in [
        ("RGB", (16, 24), (36, 40), None, "bicubic"), ("RGB", (30, 50), (45, 17), None, "bicubic"),
        ("L", (13, 7), (5, 29), None, "bicubic"), ("RGB", (72, 60), (64, 56), None, "bicubic"),
        ("RGB", (19, 32), (11, 32), (0, 0, 32, 0), "bicubic"), ("RGB", (19, 32), (11, 32), (0, 19, 32, 19), "bicubic"),
        ("L", (24, 9), (24, 5), (0, 0, 0, 24), "bicubic"), ("L", (24, 9), (24, 5), (9, 0, 9, 24), "bicubic"),
        ("RGB", (20, 30), (9, 14), (5, 3, 25, 17), "lanczos"), ("RGB", (20, 30), (40, 20), (2, 4, 12, 20), "bicubic"),
        ("L", (2, 2), (3, 4), (0, 2, 2, 2), "lanczos")]:
    channels = 3 if mode == "RGB" else 1
    x = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    image = Image.fromarray(x[:, :, 0] if mode == "L" else x, mode)
    y = np.asarray(image.resize((ow, oh), Image.BICUBIC if name == "bicubic" else Image.LANCZOS, box=box))
    cases.append({"channels": channels, "in": [h, w], "out": [oh, ow], "filter": name, "box": box,
                  "x": base64.b64encode(x.tobytes()).decode(), "y": base64.b64encode(y.tobytes()).decode()})
print(json.dumps({"generator": "tests/Sd.Kernels.Tests/Data/resample-reference.py: Pillow " + PIL.__version__, "cases": cases}))
