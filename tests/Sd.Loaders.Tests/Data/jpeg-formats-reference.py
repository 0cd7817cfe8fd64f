"""JPEG formats as Pillow reads them: writes jpeg-formats-reference.json.

Each case is a small JPEG made by Pillow's encoder, libjpeg-turbo's cjpeg (sampling factors Pillow cannot ask for,
restart intervals, non-interleaved and custom progressive scans, RGB without YCbCr) or a few lines of C on libjpeg
(YCCK, CMYK without the Adobe marker, CMYK sampling factors), with what Pillow's Image.open(...).convert("RGB") gives;
and pictures with each EXIF orientation, with what ImageOps.exif_transpose gives. Run with /usr/bin/python3 (Pillow
9.4 on libjpeg-turbo, numpy), cjpeg (Debian's libjpeg-turbo-progs) on the PATH, and gcc with Debian's
libjpeg62-turbo-dev; the project's tests only read the JSON.
"""
import base64, io, json, os, subprocess, tempfile
import numpy as np
import PIL
from PIL import Image, ImageOps

rng = np.random.default_rng(42)
ink_rng = np.random.default_rng(43)  # its own, so the CMYK cases leave the other pictures as they were

CMYK_ENCODER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
int main(int argc, char** argv) {  /* in.cmyk width height quality cmyk|ycck adobe-marker progressive hv,hv,hv,hv */
  int w = atoi(argv[2]), h = atoi(argv[3]);
  unsigned char* raw = malloc((size_t)w * h * 4);
  FILE* f = fopen(argv[1], "rb"); if (fread(raw, 1, (size_t)w * h * 4, f) != (size_t)w * h * 4) return 2; fclose(f);
  struct jpeg_compress_struct c; struct jpeg_error_mgr e;
  c.err = jpeg_std_error(&e); jpeg_create_compress(&c); jpeg_stdio_dest(&c, stdout);
  c.image_width = w; c.image_height = h; c.input_components = 4; c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c); jpeg_set_colorspace(&c, strcmp(argv[5], "ycck") == 0 ? JCS_YCCK : JCS_CMYK);
  jpeg_set_quality(&c, atoi(argv[4]), TRUE);
  c.write_Adobe_marker = atoi(argv[6]);
  for (int i = 0; i < 4; i++) { c.comp_info[i].h_samp_factor = argv[8][3 * i] - '0'; c.comp_info[i].v_samp_factor = argv[8][3 * i + 1] - '0'; }
  if (atoi(argv[7])) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) { JSAMPROW row = raw + (size_t)c.next_scanline * w * 4; jpeg_write_scanlines(&c, &row, 1); }
  jpeg_finish_compress(&c); return 0;
}
"""


def picture(width, height, gray=False):
    """Gradients in every channel, a saturated corner (so color conversion clamps) and noise (so AC terms matter)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 128 + 127 * np.sin((x + 2 * y) / 3)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 24, (height, width, 3))
    rgb[: height // 3, : width // 3] = [255, 0, 255]
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    return image.convert("L") if gray else image


def inks(width, height):
    """CMYK: gradients in C, M and K, a wave in Y, a full-ink corner and an empty one, noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    c = 255 * x / max(width - 1, 1)
    m = 255 * y / max(height - 1, 1)
    yellow = 128 + 127 * np.sin((x + 2 * y) / 3)
    k = 255 * (x + y) / max(width + height - 2, 1)
    cmyk = np.stack([c, m, yellow, k], axis=-1) + ink_rng.normal(0, 24, (height, width, 4))
    cmyk[: height // 3, : width // 3] = 255
    cmyk[-(height // 3):, -(width // 3):] = 0
    return Image.fromarray(np.clip(cmyk, 0, 255).astype(np.uint8), "CMYK")


def libjpeg_cmyk(image, space, adobe_marker=True, progressive=False, sampling="11,11,11,11", quality=85):
    with tempfile.TemporaryDirectory() as folder:
        source, program = os.path.join(folder, "enc.c"), os.path.join(folder, "enc")
        open(source, "w").write(CMYK_ENCODER_C)
        subprocess.run(["gcc", "-O1", source, "-o", program, "-ljpeg"], check=True)
        raw = os.path.join(folder, "in.cmyk")
        np.asarray(image).tofile(raw)
        command = [program, raw, str(image.width), str(image.height), str(quality), space, str(int(adobe_marker)),
                   str(int(progressive)), sampling]
        return subprocess.run(command, check=True, capture_output=True).stdout


def adobe_transform(data, transform):
    """The file with its Adobe marker's color transform byte set to another value."""
    at = data.index(b"\xff\xee") + 4
    assert data[at:at + 5] == b"Adobe"
    return data[:at + 11] + bytes([transform]) + data[at + 12:]


def pillow(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def cjpeg(image, *arguments, scans=None):
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "in.ppm")
        image.save(source)
        command = ["cjpeg", *arguments]
        if scans:
            script = os.path.join(folder, "scans.txt")
            with open(script, "w") as f:
                f.write(scans)
            command += ["-scans", script]
        return subprocess.run(command + [source], check=True, capture_output=True).stdout


# Luma's DC and AC in two bits, then chroma, then refinements: successive approximation on every kind of scan.
REFINING_SCANS = """0,1,2: 0-0, 0, 1;
0: 1-5, 0, 2;
2: 1-63, 0, 1;
1: 1-63, 0, 1;
0: 6-63, 0, 2;
0: 1-63, 2, 1;
0,1,2: 0-0, 1, 0;
2: 1-63, 1, 0;
1: 1-63, 1, 0;
0: 1-63, 1, 0;
"""

# Baseline, one component per scan (non-interleaved), as some encoders write it.
SEPARATE_SCANS = """0: 0-63, 0, 0;
1: 0-63, 0, 0;
2: 0-63, 0, 0;
"""

cases = [
    ("baseline 4:2:0", pillow(picture(37, 21), quality=75)),
    ("baseline 4:4:4", pillow(picture(37, 21), quality=95, subsampling=0)),
    ("baseline 4:2:2", pillow(picture(37, 21), quality=85, subsampling=1)),
    ("baseline 4:2:0 optimized tables", pillow(picture(40, 24), quality=60, optimize=True)),
    ("progressive 4:2:0", pillow(picture(37, 21), quality=80, progressive=True)),
    ("progressive 4:4:4 quality 100", pillow(picture(29, 19), quality=100, subsampling=0, progressive=True)),
    ("gray baseline", pillow(picture(23, 17, gray=True), quality=90)),
    ("gray progressive", pillow(picture(23, 17, gray=True), quality=70, progressive=True)),
    ("1x1", pillow(picture(1, 1), quality=90)),
    ("3x2 4:2:0", pillow(picture(3, 2), quality=90)),
    ("2x9 4:2:0 (chroma 1 wide: box upsampling)", pillow(picture(2, 9), quality=90)),
    ("17x33 4:2:0", pillow(picture(17, 33), quality=50)),
    ("sampling 1x2 (4:4:0)", cjpeg(picture(37, 21), "-quality", "85", "-sample", "1x2")),
    ("sampling 4x1 (4:1:1)", cjpeg(picture(37, 21), "-quality", "85", "-sample", "4x1")),
    ("sampling 2x2 with 2x1 chroma", cjpeg(picture(37, 21), "-quality", "85", "-sample", "2x2,2x1,1x1")),
    ("restart every MCU row", cjpeg(picture(37, 21), "-quality", "85", "-restart", "1")),
    ("restart every 3 MCUs, progressive", cjpeg(picture(37, 21), "-quality", "85", "-restart", "3B", "-progressive")),
    ("custom refining scans", cjpeg(picture(37, 21), "-quality", "90", scans=REFINING_SCANS)),
    ("non-interleaved baseline", cjpeg(picture(37, 21), "-quality", "90", "-sample", "2x2", scans=SEPARATE_SCANS)),
    ("RGB (Adobe transform 0)", cjpeg(picture(37, 21), "-quality", "90", "-rgb")),
    ("gray, 16-bit quantization table", cjpeg(picture(23, 17, gray=True), "-grayscale", "-quality", "5")),
    ("CMYK from Pillow (Adobe transform 0)", pillow(inks(37, 21), quality=90)),
    ("CMYK progressive", pillow(inks(29, 19), quality=75, progressive=True)),
    ("CMYK without an Adobe marker", libjpeg_cmyk(inks(37, 21), "cmyk", adobe_marker=False)),
    ("CMYK sampled 2x2,2x1,1x1,1x2", libjpeg_cmyk(inks(37, 21), "cmyk", sampling="22,21,11,12")),
    ("YCCK 4:2:0 (Adobe transform 2)", libjpeg_cmyk(inks(37, 21), "ycck", sampling="22,11,11,22")),
    ("YCCK progressive 4:4:4", libjpeg_cmyk(inks(23, 17), "ycck", progressive=True, quality=95)),
    ("4 components, Adobe transform 1 (read as YCCK)",
     adobe_transform(libjpeg_cmyk(inks(37, 21), "ycck", sampling="22,11,11,22"), 1)),
]

out = {"generator": f"jpeg-formats-reference.py, Pillow {PIL.__version__}", "cases": []}
for name, data in cases:
    image = Image.open(io.BytesIO(data))
    rgb = image.convert("RGB")
    out["cases"].append({
        "name": name,
        "jpeg": base64.b64encode(data).decode(),
        "mode": image.mode,
        "width": image.width,
        "height": image.height,
        "rgb": base64.b64encode(rgb.tobytes()).decode(),
    })
    print(f"{name}: {image.mode} {image.size}, {len(data)} bytes")

# EXIF orientations 1-8 (Pillow writes the EXIF little-endian): the upright picture is ImageOps.exif_transpose's.
out["oriented"] = []
for orientation in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pillow(picture(13, 7), quality=90, exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    out["oriented"].append({
        "orientation": orientation,
        "jpeg": base64.b64encode(data).decode(),
        "width": upright.width,
        "height": upright.height,
        "rgb": base64.b64encode(upright.tobytes()).decode(),
    })

# Arithmetic coding is refused by name; the tests check the message.
out["arithmetic"] = base64.b64encode(cjpeg(picture(16, 16), "-arithmetic")).decode()
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "jpeg-formats-reference.json"), "w") as f:
    json.dump(out, f, indent=1)
