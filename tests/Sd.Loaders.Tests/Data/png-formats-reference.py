"""PNG formats beyond 8-bit gray/RGB/RGBA as Pillow reads them: writes png-formats-reference.json.

Each case is a small PNG made here byte by byte (every row filtered with a different filter type, so the unfiltering
of sub-byte and 16-bit rows is checked too; interlaced ones in Adam7's seven passes, each filtered on its own), with
what Pillow's Image.open(...).convert("RGB") and convert("RGBA") give. "oriented" holds 13x7 RGB pictures whose EXIF
orientation sits where Pillow's getexif finds it (the eXIf chunk, before or after the image data; ImageMagick's
"Raw profile type exif" text; the XMP packet's tiff:Orientation; and which of them wins), with what
ImageOps.exif_transpose(...).convert("RGB") gives. Run with /usr/bin/python3 (Pillow 9.4, numpy); the project's tests
only read the JSON.
"""
import base64, io, json, struct, zlib
import numpy as np
import PIL
from PIL import Image, ImageOps, PngImagePlugin

rng = np.random.default_rng(41)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filtered(rows, bpp):
    """Row y stored with filter type y % 5."""
    out, prior = b"", bytes(len(rows[0]))
    for y, row in enumerate(rows):
        kind = y % 5
        line = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            c = prior[i - bpp] if i >= bpp else 0
            b = prior[i]
            pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][kind]
            line.append((x - pred) & 0xFF)
        out += bytes([kind]) + bytes(line)
        prior = row
    return out


def stored_rows(samples, per_pixel, depth):
    """Rows of samples [height, width x per_pixel] packed at the bit depth."""
    rows = []
    for values in samples:
        if depth == 16:
            rows.append(b"".join(struct.pack(">H", int(v)) for v in values))
        elif depth == 8:
            rows.append(bytes(int(v) for v in values))
        else:
            bits = "".join(format(int(v), f"0{depth}b") for v in values)
            bits += "0" * (-len(bits) % 8)
            rows.append(bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png(width, height, color_type, depth, samples, plte=None, trns=None, interlaced=False):
    per_pixel = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    bpp = max(1, per_pixel * depth // 8)
    if interlaced:
        pixels = samples.reshape(height, width, per_pixel)
        scanlines = b""
        for x0, y0, dx, dy in ADAM7:
            sub = pixels[y0::dy, x0::dx]
            if sub.size:
                scanlines += filtered(stored_rows(sub.reshape(sub.shape[0], -1), per_pixel, depth), bpp)
    else:
        scanlines = filtered(stored_rows(samples, per_pixel, depth), bpp)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, int(interlaced)))
    if plte is not None:
        data += chunk(b"PLTE", plte)
    if trns is not None:
        data += chunk(b"tRNS", trns)
    return data + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")


def case(name, width, height, color_type, depth, plte=None, trns=None, top=None, interlaced=False):
    per_pixel = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    top = top if top is not None else (1 << depth) - 1
    samples = rng.integers(0, top + 1, (height, width * per_pixel))
    data = png(width, height, color_type, depth, samples, plte, trns, interlaced)
    image = Image.open(io.BytesIO(data))
    image.load()
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    return {"name": name, "png": base64.b64encode(data).decode(), "mode": image.mode,
            "rgb": base64.b64encode(rgb.tobytes()).decode(), "rgba": base64.b64encode(rgba.tobytes()).decode()}


palette7 = bytes(rng.integers(0, 256, 7 * 3, dtype=np.uint8))
cases = [
    case("gray 1-bit", 13, 6, 0, 1),
    case("gray 2-bit", 7, 6, 0, 2),
    case("gray 4-bit", 5, 6, 0, 4),
    case("gray 16-bit (Pillow clamps to 255)", 5, 6, 0, 16, top=600),
    case("gray 16-bit full range", 4, 5, 0, 16),
    case("RGB 16-bit", 5, 6, 2, 16),
    case("RGBA 16-bit", 4, 6, 6, 16),
    case("gray+alpha 8-bit", 5, 6, 4, 8),
    case("gray+alpha 16-bit", 3, 6, 4, 16),
    case("palette 1-bit", 11, 6, 3, 1, plte=palette7[:6]),
    case("palette 2-bit, indices past the palette", 9, 6, 3, 2, plte=palette7[:6]),
    case("palette 4-bit", 5, 6, 3, 4, plte=palette7, top=6),
    case("palette 8-bit, indices past the palette", 6, 6, 3, 8, plte=palette7, top=12),
    case("palette 8-bit with tRNS for 4 of 7 entries", 6, 6, 3, 8, plte=palette7, trns=bytes([0, 90, 180, 255]), top=6),
    case("palette 4-bit with tRNS", 7, 6, 3, 4, plte=palette7, trns=bytes([10, 20, 30, 40, 50, 60, 70]), top=6),
    case("RGB 8-bit interlaced", 13, 11, 2, 8, interlaced=True),
    case("RGBA 8-bit interlaced, 1x1 (one pass)", 1, 1, 6, 8, interlaced=True),
    case("gray 8-bit interlaced, 3x2 (empty passes)", 3, 2, 0, 8, interlaced=True),
    case("palette 2-bit interlaced", 9, 10, 3, 2, plte=palette7[:9], interlaced=True),
    case("gray 16-bit interlaced", 6, 5, 0, 16, top=400, interlaced=True),
    case("gray+alpha 16-bit interlaced", 10, 9, 4, 16, interlaced=True),
]


def exif(orientation=None, other_tag=False):
    e = Image.Exif()
    if orientation is not None:
        e[0x0112] = orientation
    if other_tag:
        e[0x0131] = "Sd test"  # Software
    return e.tobytes()  # "Exif\0\0" + TIFF; Pillow's PNG writer drops the prefix


def raw_profile(data):
    """ImageMagick's text: a blank line, "exif", the byte count, then hex in lines of 72 digits."""
    digits = data.hex()
    return "\nexif\n%8d\n" % len(data) + "\n".join(digits[i:i + 72] for i in range(0, len(digits), 72)) + "\n"


def xmp(body):
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" ' + body + '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def oriented_png(exif_bytes=None, texts=(), exif_after_image=False):
    y, x = np.mgrid[0:7, 0:13]
    rgb = np.stack([x * 19, y * 36, (x * 7 + y * 11) % 256], axis=-1).astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    for key, value, compressed in texts:
        if compressed:
            info.add_text(key, value, zip=True)
        else:
            info.add_itxt(key, value)
    buffer = io.BytesIO()
    options = {"pnginfo": info}
    if exif_bytes is not None:
        options["exif"] = exif_bytes
    Image.fromarray(rgb, "RGB").save(buffer, "PNG", **options)
    data = buffer.getvalue()
    if exif_after_image:  # move the eXIf chunk to just before IEND
        at = data.index(b"eXIf") - 4
        length = struct.unpack(">I", data[at:at + 4])[0]
        piece = data[at:at + 12 + length]
        data = data[:at] + data[at + 12 + length:]
        data = data[:-12] + piece + data[-12:]
    return data


oriented_cases = [(f"eXIf, orientation {o}", oriented_png(exif(o))) for o in range(1, 9)] + [
    ("eXIf after the image data, orientation 6", oriented_png(exif(6), exif_after_image=True)),
    ("raw profile (zTXt), orientation 8", oriented_png(texts=[("Raw profile type exif", raw_profile(exif(8)), True)])),
    ("raw profile without the Exif prefix, orientation 3",
     oriented_png(texts=[("Raw profile type exif", raw_profile(exif(3)[6:]), True)])),
    ("XMP attribute, orientation 6", oriented_png(texts=[("XML:com.adobe.xmp", xmp('tiff:Orientation="6"/>'), False)])),
    ("XMP element, orientation 5",
     oriented_png(texts=[("XML:com.adobe.xmp", xmp('><tiff:Orientation>5</tiff:Orientation></rdf:Description>'), False)])),
    ("XMP, a first tiff:Orientation in single quotes is passed over",
     oriented_png(texts=[("XML:com.adobe.xmp", xmp("tiff:Orientation='3' tiff:Orientation=\"8\"/>"), False)])),
    ("eXIf orientation 1 wins over XMP 6",
     oriented_png(exif(1), texts=[("XML:com.adobe.xmp", xmp('tiff:Orientation="6"/>'), False)])),
    ("eXIf without an orientation, XMP 7",
     oriented_png(exif(other_tag=True), texts=[("XML:com.adobe.xmp", xmp('tiff:Orientation="7"/>'), False)])),
    ("eXIf 2 wins over a raw profile's 3",
     oriented_png(exif(2), texts=[("Raw profile type exif", raw_profile(exif(3)), True)])),
    ("eXIf without an orientation hides a raw profile's 6",
     oriented_png(exif(other_tag=True), texts=[("Raw profile type exif", raw_profile(exif(6)), True)])),
]
oriented = []
for name, data in oriented_cases:
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    oriented.append({"name": name, "png": base64.b64encode(data).decode(), "width": upright.width,
                     "height": upright.height, "rgb": base64.b64encode(upright.tobytes()).decode()})
    print(f"{name}: upright {upright.size}")

with open(__file__.replace(".py", ".json"), "w") as f:
    json.dump({"generator": f"png-formats-reference.py, Pillow {PIL.__version__}", "cases": cases,
               "oriented": oriented}, f, indent=1)
