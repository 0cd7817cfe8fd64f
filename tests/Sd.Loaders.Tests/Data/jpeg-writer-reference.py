"""JPEG files as A1111 writes them: writes jpeg-writer-reference.json.

Each case is a picture (raw 8-bit pixels: L, RGB or RGBA) with the bytes Pillow's encoder writes for it at a JPEG
quality, as A1111's images.save_image_with_geninfo saves a .jpg: RGBA converted to RGB, image.save(format="JPEG",
quality=q), then, when it has generation parameters, piexif.insert of piexif.dump({"Exif": {UserComment:
UserComment.dump(parameters, encoding="unicode")}}) (which puts the EXIF segment where the JFIF one was). Run with
/usr/bin/python3 (Pillow 9.4 on Debian's libjpeg-turbo 2.1.5, numpy, python3-piexif 1.1.3); the project's tests only
read the JSON.
"""
import base64, io, json, os
import numpy as np
import PIL
import piexif
import piexif.helper
from PIL import Image

rng = np.random.default_rng(7)


def photo(width, height, channels):
    """Gradients, a wave, a saturated corner (so color conversion clamps), a sharp disc and noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 128 + 127 * np.sin((x + 2 * y) / 5)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 16, (height, width, 3))
    rgb[: height // 4, : width // 4] = [255, 0, 255]
    disc = (x - width * 0.6) ** 2 + (y - height * 0.6) ** 2 < (min(width, height) * 0.25) ** 2
    rgb[disc] = [250, 250, 10]
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    if channels == 1:
        return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    if channels == 4:
        alpha = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        return np.concatenate([rgb, alpha], axis=-1)
    return rgb


def noise(width, height, channels):
    return rng.integers(0, 256, (height, width, channels), dtype=np.uint8).squeeze(-1 if channels == 1 else None)


def checker(width, height, channels):
    """Black and white pixels alternating: the largest AC terms, long codes and 0xFF bytes to stuff."""
    y, x = np.mgrid[0:height, 0:width]
    v = ((x + y) % 2 * 255).astype(np.uint8)
    return v if channels == 1 else np.repeat(v[..., None], channels, axis=-1)


def flat(value):
    def make(width, height, channels):
        shape = (height, width) if channels == 1 else (height, width, channels)
        return np.full(shape, value, dtype=np.uint8)
    return make


MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def save(pixels, channels, quality, parameters):
    """A1111's save_image_with_geninfo for a .jpg."""
    image = Image.fromarray(pixels, MODES[channels])
    if image.mode == "RGBA":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, lossless=False)
    data = buffer.getvalue()
    if parameters is not None:
        exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(parameters, encoding="unicode")}})
        out = io.BytesIO()
        piexif.insert(exif, data, out)
        data = out.getvalue()
    return data


PARAMETERS = "a cat in a hat\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 1, Size: 64x48"

CASES = [
    # name, make, width, height, channels, quality, parameters
    ("photo-64x48-q80", photo, 64, 48, 3, 80, None),
    ("photo-64x48-q80-parameters", photo, 64, 48, 3, 80, PARAMETERS),
    ("photo-96x64-q95", photo, 96, 64, 3, 95, None),
    ("photo-37x23-q80", photo, 37, 23, 3, 80, None),
    ("photo-33x47-q75", photo, 33, 47, 3, 75, None),
    ("photo-17x9-q90", photo, 17, 9, 3, 90, None),
    ("photo-100x3-q80", photo, 100, 3, 3, 80, None),
    ("photo-3x100-q80", photo, 3, 100, 3, 80, None),
    ("photo-1x1-q80", photo, 1, 1, 3, 80, None),
    ("photo-8x8-q80", photo, 8, 8, 3, 80, None),
    ("photo-16x16-q80", photo, 16, 16, 3, 80, None),
    ("photo-24x40-q1", photo, 24, 40, 3, 1, None),
    ("photo-24x40-q10", photo, 24, 40, 3, 10, None),
    ("photo-24x40-q25", photo, 24, 40, 3, 25, None),
    ("photo-24x40-q50", photo, 24, 40, 3, 50, None),
    ("photo-24x40-q99", photo, 24, 40, 3, 99, None),
    ("photo-24x40-q100", photo, 24, 40, 3, 100, None),
    ("noise-40x24-q100", noise, 40, 24, 3, 100, None),
    ("noise-41x25-q80", noise, 41, 25, 3, 80, None),
    ("checker-32x32-q100", checker, 32, 32, 3, 100, None),
    ("checker-19x13-q80", checker, 19, 13, 3, 80, None),
    ("black-16x16-q80", flat(0), 16, 16, 3, 80, None),
    ("white-21x11-q100", flat(255), 21, 11, 3, 100, None),
    ("gray-photo-45x30-q80", photo, 45, 30, 1, 80, None),
    ("gray-noise-9x17-q100", noise, 9, 17, 1, 100, None),
    ("gray-checker-16x8-q80-parameters", checker, 16, 8, 1, 80, "Steps: 1, Sampler: Euler, Seed: 2"),
    ("rgba-photo-30x20-q80", photo, 30, 20, 4, 80, None),
    ("photo-20x12-q80-unicode-parameters", photo, 20, 12, 3, 80, "猫, café 😀\nNegative prompt: \nSteps: 2, Seed: 3"),
    ("photo-20x12-q80-empty-parameters", photo, 20, 12, 3, 80, ""),
]


def main():
    cases = []
    for name, make, width, height, channels, quality, parameters in CASES:
        pixels = make(width, height, channels)
        assert pixels.shape[:2] == (height, width)
        case = {"name": name, "width": width, "height": height, "channels": channels, "quality": quality,
                "pixels": base64.b64encode(pixels.tobytes()).decode(),
                "jpeg": base64.b64encode(save(pixels, channels, quality, parameters)).decode()}
        if parameters is not None:
            case["parameters"] = parameters
        cases.append(case)
    out = {"pillow": PIL.__version__, "piexif": piexif.VERSION, "cases": cases}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jpeg-writer-reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
