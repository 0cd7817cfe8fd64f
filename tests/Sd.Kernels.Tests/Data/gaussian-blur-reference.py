# Writes gaussian-blur-reference.json: OpenCV's cv2.GaussianBlur of seeded 8-bit gray pictures along one axis, ksize
# (n, 1) across the rows or (1, n) down the columns, as A1111 blurs its inpainting masks (n = 2 int(2.5 sigma + 0.5) + 1
# for a whole sigma) and at other sizes and sigmas: binary masks, noise and lone pixels, pictures narrower than the
# kernel included (reflected again and again).
# Run: python3 gaussian-blur-reference.py > gaussian-blur-reference.json (OpenCV 4.6, numpy 1.24).
import base64
import json
import cv2
import numpy as np

rng = np.random.default_rng(20261125)


def picture(kind, h, w):
    if kind == "noise":
        return rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    x = np.zeros((h, w), np.uint8)
    if kind == "mask":
        x[h // 4: h // 4 + max(1, h // 3), w // 3: w // 3 + max(1, w // 2)] = 255
        x[(np.arange(h)[:, None] - h * 0.7) ** 2 + (np.arange(w)[None, :] - w * 0.3) ** 2 < (min(h, w) / 5) ** 2] = 255
    else:  # lone pixels: each tap shows through
        x[rng.integers(0, h, 6), rng.integers(0, w, 6)] = 255
    return x


cases = []
for kind, (h, w), size, sigma in [
        ("mask", (37, 53), None, 4), ("mask", (64, 96), None, 1), ("noise", (29, 31), None, 2), ("dots", (40, 120), None, 3),
        ("mask", (96, 80), None, 8), ("noise", (23, 200), None, 13), ("mask", (12, 700), None, 64), ("dots", (3, 5), None, 4),
        ("noise", (1, 1), None, 6), ("noise", (2, 9), None, 32), ("mask", (17, 19), None, 5), ("noise", (12, 16), 5, 0.7),
        ("dots", (20, 33), 9, 2.5), ("noise", (16, 17), 3, 10.0)]:
    x = picture(kind, h, w)
    n = size if size is not None else 2 * int(2.5 * sigma + 0.5) + 1
    for across in (True, False):
        y = cv2.GaussianBlur(x, (n, 1) if across else (1, n), sigma)
        cases.append({"size": [h, w], "taps": n, "sigma": sigma, "across": across,
                      "x": base64.b64encode(x.tobytes()).decode(), "y": base64.b64encode(y.tobytes()).decode()})
print(json.dumps({"generator": "tests/Sd.Kernels.Tests/Data/gaussian-blur-reference.py: OpenCV " + cv2.__version__, "cases": cases}))
