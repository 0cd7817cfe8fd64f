"""Makes canny-reference.json: OpenCV's cv2.Canny (aperture 3, L1 gradient, the defaults diffusers' ControlNet
examples and A1111's canny preprocessor use) on small synthetic 8-bit pictures, for CvCannyTests.

Run with Debian's python3-opencv 4.6 (no IPP in that build): /usr/bin/python3 canny-reference.py
"""
import base64
import json

import cv2
import numpy as np

rng = np.random.default_rng(20261125)


def smooth(h, w, c, blur):
    noise = rng.integers(0, 256, size=(h, w, c)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), blur).reshape(h, w, c) if blur > 0 else noise


def scene(h, w, c):
    """Shapes over a soft gradient and blurred noise: edges in every direction, strong and weak."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    picture = np.zeros((h, w, c), np.float32)
    for k in range(c):
        picture[..., k] = 60 + 50 * np.sin(x / (7 + 3 * k)) * np.cos(y / (11 - 2 * k))
    picture += (smooth(h, w, c, 2.0) - 128) * 2.5
    cv2.rectangle(picture, (w // 5, h // 6), (w // 2, h // 2), (230, 40, 120)[:c] if c > 1 else 230, -1)
    cv2.circle(picture, (2 * w // 3, 2 * h // 3), min(h, w) // 5, (20, 210, 90)[:c] if c > 1 else 20, -1)
    cv2.line(picture, (0, h - 1), (w - 1, h // 3), (255, 255, 0)[:c] if c > 1 else 255, 2)
    picture = np.clip(picture + rng.normal(0, 6, picture.shape), 0, 255).astype(np.uint8)
    return picture if c > 1 else picture[..., 0]


def ties(h, w):
    """Three levels per channel, blue repeating red: many pixels where two channels' magnitudes tie with different
    gradients, so the first channel's winning changes the edges (checked against the channels swapped)."""
    picture = (rng.integers(0, 3, size=(h, w, 3)) * 60).astype(np.uint8)
    picture[..., 2] = picture[..., 0]
    swapped = np.ascontiguousarray(picture[..., [1, 0, 2]])
    assert (cv2.Canny(picture, 50, 100) != cv2.Canny(swapped, 50, 100)).any()
    return picture


pictures = {}
cases = []


def add(name, picture, low, high, picture_name=None):
    """A case; a picture used by several cases is stored once, under picture_name."""
    picture_name = picture_name or name
    channels = 1 if picture.ndim == 2 else picture.shape[2]
    if picture_name not in pictures:
        pictures[picture_name] = {
            "size": [int(picture.shape[0]), int(picture.shape[1])], "channels": channels,
            "x": base64.b64encode(np.ascontiguousarray(picture).tobytes()).decode(),
        }
    edges = cv2.Canny(picture, low, high)
    assert edges.dtype == np.uint8 and set(np.unique(edges)) <= {0, 255}
    cases.append({
        "name": name, "picture": picture_name, "low": low, "high": high,
        # One bit per pixel, the first pixel in the high bit (np.packbits).
        "edges": base64.b64encode(np.packbits(edges.reshape(-1) > 0).tobytes()).decode(),
    })
    print(name, picture.shape, int((edges > 0).sum()), "edge pixels")


rgb = scene(96, 128, 3)
add("scene rgb 100/200", rgb, 100, 200, "scene rgb")
add("scene rgb 50/120", rgb, 50, 120, "scene rgb")
add("scene rgb thresholds swapped", rgb, 200, 100, "scene rgb")
add("scene rgb fractional thresholds", rgb, 100.7, 150.2, "scene rgb")
add("scene rgb low 0", rgb, 0, 60, "scene rgb")
add("scene gray 100/200", scene(70, 53, 1), 100, 200)
add("noise rgb 100/200", smooth(41, 67, 3, 0).astype(np.uint8), 100, 200)
add("blurred noise gray 20/40", smooth(64, 64, 1, 1.2)[..., 0].astype(np.uint8), 20, 40)
add("tied channels", ties(24, 30), 50, 100)
add("four channels", scene(33, 29, 4), 80, 160)
add("one pixel", np.array([[[255, 0, 9]]], np.uint8), 1, 2)
add("one row", rng.integers(0, 256, size=(1, 17, 3)).astype(np.uint8), 30, 90)
add("one column", rng.integers(0, 256, size=(13, 1)).astype(np.uint8), 30, 90)
add("two by three", rng.integers(0, 256, size=(2, 3, 3)).astype(np.uint8), 10, 20)

with open("canny-reference.json", "w") as f:
    json.dump({"opencv": cv2.__version__, "pictures": pictures, "cases": cases}, f)
