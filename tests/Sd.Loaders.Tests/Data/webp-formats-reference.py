"""WebP formats as Pillow reads them: writes webp-formats-reference.json.

Each case is a small WebP made by Pillow's encoder, libwebp's cwebp, or a few lines of C on libwebp (several token
partitions, which neither exposes), wrapped here (a lossy image with a raw alpha plane under each filter), or an
animation (Pillow's, or frames placed by webpmux), with what Pillow's Image.open gives (RGB, or RGBA when the file has
alpha; an animation's first frame on its canvas). "oriented" holds pictures with each EXIF orientation and what
ImageOps.exif_transpose gives. Run with /usr/bin/python3 (Pillow 9.4 on libwebp 1.2.4, numpy), cwebp and webpmux
(Debian's webp) on the PATH, and gcc with Debian's libwebp-dev; the project's tests only read the JSON.
"""
import base64, io, json, os, struct, subprocess, tempfile
import numpy as np
import PIL
from PIL import Image, ImageOps

rng = np.random.default_rng(7)

ENCODER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <webp/encode.h>
int main(int argc, char** argv) {  /* in.rgb width height log2-partitions quality out.webp */
  int w = atoi(argv[2]), h = atoi(argv[3]);
  unsigned char* rgb = malloc(w * h * 3);
  FILE* f = fopen(argv[1], "rb"); if (fread(rgb, 1, w * h * 3, f) != (size_t)(w * h * 3)) return 2; fclose(f);
  WebPConfig config; WebPConfigInit(&config);
  config.quality = atof(argv[5]); config.partitions = atoi(argv[4]);
  config.low_memory = 1;  /* the token buffer would force one partition */
  WebPPicture pic; WebPPictureInit(&pic); pic.width = w; pic.height = h; WebPPictureImportRGB(&pic, rgb, w * 3);
  WebPMemoryWriter out; WebPMemoryWriterInit(&out); pic.writer = WebPMemoryWrite; pic.custom_ptr = &out;
  if (!WebPEncode(&config, &pic)) return 1;
  f = fopen(argv[6], "wb"); fwrite(out.mem, 1, out.size, f); fclose(f); return 0;
}
"""


def picture(width, height, alpha=False, gray=False):
    """Waves in every channel, a saturated patch (so the colour conversion clamps) and noise (so AC terms matter)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([128 + 100 * np.sin(x / 7 + c) * np.cos(y / 5 - c) for c in range(3)], axis=-1)
    rgb += rng.normal(0, 20, (height, width, 3))
    rgb[height // 3: height // 2, width // 4: width // 2] = [250, 20, 30]
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    if gray:
        return Image.fromarray(rgb).convert("L")
    if not alpha:
        return Image.fromarray(rgb, "RGB")
    a = np.clip(255 * x / max(width - 1, 1) + rng.normal(0, 30, (height, width)), 0, 255).astype(np.uint8)
    a[: height // 4] = 255
    a[-height // 4:] = 0
    return Image.fromarray(np.dstack([rgb, a]), "RGBA")


def palette(width, height, colors):
    table = rng.integers(0, 256, (colors, 3), dtype=np.uint8)
    return Image.fromarray(table[rng.integers(0, colors, (height, width))], "RGB")


def structured(width, height):
    """Quadrants a lossless encoder predicts with the rarer modes: constant columns (from the top), diagonals (from
    the top-left), ramps (left + top - top-left) and a quadratic."""
    local = np.random.default_rng(5)
    y, x = np.mgrid[0:height, 0:width]
    columns = local.integers(0, 256, (width, 3))
    diagonals = local.integers(0, 256, (width + height, 3))
    ramp = np.stack([np.clip(3 * x + 5 * y, 0, 255), np.clip(200 - 4 * x + 2 * y, 0, 255),
                     np.clip(7 * x - 3 * y + 50, 0, 255)], -1)
    quadratic = np.stack([np.clip((x * x + y * y) / 8 + local.integers(0, 3, (height, width)), 0, 255),
                          np.clip(x * y / 4, 0, 255), np.clip((x - 20) ** 2 / 3, 0, 255)], -1)
    h, w = height // 2, width // 2
    top = np.concatenate([np.broadcast_to(columns[:w], (h, w, 3)), diagonals[(x - y) + height][:h, :w]], 1)
    bottom = np.concatenate([ramp[:h, :w], quadratic[:h, :w]], 1)
    return Image.fromarray(np.concatenate([top, bottom], 0).astype(np.uint8), "RGB")


def waves(width, height, seed):
    """Crossed waves with a little noise, which a lossless encoder predicts with the half-gradient mode too."""
    local = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    k = local.uniform(0.05, 0.6, 6)
    rgb = np.stack([128 + 100 * np.sin(k[c] * x + k[c + 3] * y * (c + 1)) + 40 * np.cos(k[c] * k[c + 3] * x * y)
                    for c in range(3)], -1)
    rgb += local.normal(0, 3, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def pillow(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", **options)
    return buffer.getvalue()


def cwebp(image, *arguments):
    with tempfile.TemporaryDirectory() as folder:
        source, target = os.path.join(folder, "in.png"), os.path.join(folder, "out.webp")
        image.save(source)
        subprocess.run(["cwebp", "-quiet", *arguments, source, "-o", target], check=True)
        return open(target, "rb").read()


def partitioned(image, log2_partitions, quality):
    with tempfile.TemporaryDirectory() as folder:
        source, program = os.path.join(folder, "enc.c"), os.path.join(folder, "enc")
        open(source, "w").write(ENCODER_C)
        subprocess.run(["gcc", "-O1", source, "-o", program, "-lwebp"], check=True)
        raw, target = os.path.join(folder, "in.rgb"), os.path.join(folder, "out.webp")
        np.asarray(image.convert("RGB")).tofile(raw)
        subprocess.run([program, raw, str(image.width), str(image.height), str(log2_partitions), str(quality), target],
                       check=True)
        return open(target, "rb").read()


def chunk(tag, payload):
    return tag + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def riff(*chunks):
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def with_raw_alpha(image, filter_method):
    """A lossy RGB WebP rewrapped as VP8X + ALPH (uncompressed, filtered by the method: 1 horizontal, 2 vertical,
    3 gradient) + VP8, the alpha plane filtered here as the container specification defines it."""
    rgb = pillow(image.convert("RGB"), quality=70)
    assert rgb[12:16] == b"VP8 "
    vp8 = rgb[12:]
    a = np.asarray(image)[:, :, 3].astype(np.int32)
    height, width = a.shape
    predicted = np.zeros_like(a)
    predicted[0, 1:] = a[0, :-1]
    predicted[1:, 0] = a[:-1, 0]
    if filter_method == 1:
        predicted[1:, 1:] = a[1:, :-1]
    elif filter_method == 2:
        predicted[1:, 1:] = a[:-1, 1:]
    else:
        predicted[1:, 1:] = np.clip(a[1:, :-1] + a[:-1, 1:] - a[:-1, :-1], 0, 255)
    deltas = ((a - predicted) % 256).astype(np.uint8)
    alph = chunk(b"ALPH", bytes([filter_method << 2]) + deltas.tobytes())
    header = bytes([0x10, 0, 0, 0]) + struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3]
    return riff(chunk(b"VP8X", header), alph, vp8)


photo = picture(37, 21)
cases = [
    ("lossy q75", cwebp(photo, "-q", "75")),
    ("lossy q5", cwebp(photo, "-q", "5")),
    ("lossy q100", cwebp(photo, "-q", "100")),
    ("lossy simple loop filter", cwebp(photo, "-q", "60", "-nostrong", "-f", "60")),
    ("lossy no loop filter", cwebp(photo, "-q", "60", "-f", "0")),
    ("lossy sharpness 7, one segment", cwebp(photo, "-q", "70", "-sharpness", "7", "-segments", "1")),
    ("lossy strong filter 100, sharpness 3", cwebp(photo, "-q", "90", "-f", "100", "-sharpness", "3")),
    ("lossy 1x1", cwebp(picture(1, 1), "-q", "80")),
    ("lossy 17x9", cwebp(picture(17, 9), "-q", "40", "-sns", "100")),
    ("lossy gray", cwebp(picture(23, 17, gray=True), "-q", "80")),
    ("lossy by Pillow, method 6", pillow(picture(50, 34), quality=85, method=6)),
    ("lossy, 8 token partitions, 64 wide", partitioned(picture(64, 70), 3, 80)),
    ("lossy, 2 token partitions", partitioned(picture(40, 36), 1, 50)),
    ("lossy alpha, lossless-compressed", cwebp(picture(37, 21, alpha=True), "-q", "70")),
    ("lossy alpha, quantized, fast filter", cwebp(picture(37, 21, alpha=True), "-q", "60", "-alpha_q", "50",
                                                 "-alpha_filter", "fast")),
    ("lossy alpha by Pillow", pillow(picture(29, 18, alpha=True), quality=50)),
    ("lossy alpha raw, horizontal filter", with_raw_alpha(picture(21, 13, alpha=True), 1)),
    ("lossy alpha raw, vertical filter", with_raw_alpha(picture(21, 13, alpha=True), 2)),
    ("lossy alpha raw, gradient filter", with_raw_alpha(picture(21, 13, alpha=True), 3)),
    ("lossless", cwebp(photo, "-lossless")),
    ("lossless -z 9", cwebp(picture(64, 48), "-lossless", "-z", "9")),
    ("lossless -z 0", cwebp(picture(64, 48), "-lossless", "-z", "0")),
    ("lossless 1x1", cwebp(picture(1, 1), "-lossless")),
    ("lossless, top, top-left and gradient predictions", cwebp(structured(40, 30), "-lossless")),
    ("lossless, half-gradient prediction", cwebp(waves(48, 32, 122), "-lossless")),
    ("lossless alpha, exact", cwebp(picture(37, 21, alpha=True), "-lossless", "-exact")),
    ("lossless alpha by Pillow", pillow(picture(29, 18, alpha=True), lossless=True)),
    ("lossless gray", cwebp(picture(23, 17, gray=True), "-lossless")),
    ("near-lossless 40", cwebp(picture(64, 48), "-near_lossless", "40")),
    ("palette of 2 (8 pixels a byte)", cwebp(palette(37, 21, 2), "-lossless")),
    ("palette of 3 (4 pixels a byte)", cwebp(palette(37, 21, 3), "-lossless")),
    ("palette of 5 (2 pixels a byte)", cwebp(palette(37, 21, 5), "-lossless")),
    ("palette of 16", cwebp(palette(37, 21, 16), "-lossless")),
    ("palette of 200", cwebp(palette(37, 21, 200), "-lossless")),
]

out = {"generator": f"webp-formats-reference.py, Pillow {PIL.__version__}", "cases": []}


def add_cases(named_files):
    for name, data in named_files:
        image = Image.open(io.BytesIO(data))
        image.load()  # an animation's first frame, on its canvas
        out["cases"].append({
            "name": name,
            "webp": base64.b64encode(data).decode(),
            "mode": image.mode,
            "width": image.width,
            "height": image.height,
            "pixels": base64.b64encode(image.tobytes()).decode(),
        })
        print(f"{name}: {image.mode} {image.size}, {len(data)} bytes")


add_cases(cases)

# EXIF orientations 1-8: the upright picture is ImageOps.exif_transpose's.
out["oriented"] = []
for orientation in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pillow(picture(13, 7), quality=90, exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    out["oriented"].append({
        "orientation": orientation,
        "webp": base64.b64encode(data).decode(),
        "width": upright.width,
        "height": upright.height,
        "pixels": base64.b64encode(upright.tobytes()).decode(),
    })



def webpmux(*frames, options=()):
    """An animation of (picture, encoder options, webpmux frame options "+duration+x+y+dispose[-b]") frames."""
    with tempfile.TemporaryDirectory() as folder:
        command = ["webpmux"]
        for i, (image, encoding, placement) in enumerate(frames):
            path = os.path.join(folder, f"{i}.webp")
            open(path, "wb").write(pillow(image, **encoding))
            command += ["-frame", path, placement]
        target = os.path.join(folder, "out.webp")
        subprocess.run(command + list(options) + ["-o", target], check=True, capture_output=True)
        return open(target, "rb").read()


def alpha_flag_cleared(data):
    assert data[12:16] == b"VP8X"
    return data[:20] + bytes([data[20] & ~0x10]) + data[21:]


# Animations: the first frame on its canvas (transparent black around it), as Pillow's Image.open shows it.
lossless_alpha_first = webpmux((picture(23, 15, alpha=True), {"lossless": True}, "+100+10+6"),
                               (picture(37, 21), {"quality": 80}, "+100"))
add_cases([
    ("animation, first frame at an offset on an RGB canvas",
     webpmux((picture(23, 15), {"quality": 80}, "+100+10+6"), (picture(37, 21), {"quality": 80}, "+100"),
             options=["-bgcolor", "255,0,0,255", "-loop", "0"])),
    ("animation, lossless first frame with alpha at an offset", lossless_alpha_first),
    ("animation, RGB canvas over a first frame with alpha", alpha_flag_cleared(lossless_alpha_first)),
    ("animation, lossy first frame with alpha, disposed, no blending",
     webpmux((picture(23, 15, alpha=True), {"quality": 80}, "+100+4+2+1-b"), (picture(37, 21), {"quality": 80}, "+100"))),
    ("animation by Pillow, lossy with alpha", pillow(picture(37, 21, alpha=True), save_all=True, quality=70,
                                                     append_images=[picture(37, 21, alpha=True)] * 2)),
    ("animation by Pillow, lossless", pillow(picture(37, 21), save_all=True, lossless=True,
                                             append_images=[picture(37, 21)] * 2)),
])

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "webp-formats-reference.json"), "w") as f:
    json.dump(out, f, indent=1)
