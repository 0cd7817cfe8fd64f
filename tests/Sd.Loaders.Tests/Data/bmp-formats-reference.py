"""BMP formats as Pillow reads them: writes bmp-formats-reference.json.

Each case is a small BMP, saved by Pillow (1-bit, 8-bit gray and palette, 24-bit) or written here byte by byte (every
header Pillow reads, 1- to 32-bit, palettes with fewer colors, bitfields, top-down rows, RLE8 and RLE4 with every
escape, and Pillow's quirks: a 2-color black-and-white palette read as 1-bit pixels whatever the depth, RLE4's odd
absolute runs, a data offset that leaves no room for the palette), with what Pillow's Image.open gives: the mode, and
the pixels as Sd reads them (1 and L as gray, P and RGB as RGB, RGBA as RGBA). "refused" holds files Pillow refuses.
Run with /usr/bin/python3 (Pillow 9.4, numpy); the project's tests only read the JSON.
"""
import base64, io, json, struct
import numpy as np
import PIL
from PIL import Image

rng = np.random.default_rng(11)


def info_header(size, width, height, bits, compression, colors=0, top_down=False, masks=None):
    if size == 12:
        return struct.pack("<IHHHH", 12, width, height, 1, bits)
    head = struct.pack("<IiiHHIIiiII", size, width, -height if top_down else height, 1, bits, compression, 0, 2835, 2835, colors, 0)
    rest = bytearray(size - 40)
    if masks is not None and size >= 56:
        rest[0:16] = struct.pack("<IIII", *masks)
    return head + bytes(rest)


def bmp(size, width, height, bits, data, compression=0, palette=None, colors=0, top_down=False, masks=None, offset=None):
    """A BMP file: the headers, masks after a 40-byte header, the palette (BGR0, or BGR for the 12-byte header)."""
    header = info_header(size, width, height, bits, compression, colors, top_down, masks)
    after = struct.pack("<III", *masks[:3]) if masks is not None and size == 40 else b""
    table = b"".join(bytes((b, g, r) + ((0,) if size != 12 else ())) for r, g, b in (palette or []))
    start = 14 + len(header) + len(after) + len(table) if offset is None else offset
    body = header + after + table
    body += bytes(max(0, start - 14 - len(body)))
    total = 14 + len(body) + len(data)
    return b"BM" + struct.pack("<IHHI", total, 0, 0, start) + body + data


def rows(values, bits, top_down=False):
    """Pixel rows (top first) packed at bits per pixel, each padded to 4 bytes, bottom row first unless top_down."""
    packed = []
    for row in values:
        bitstring = "".join(format(int(v), f"0{bits}b") for v in row)
        bitstring += "0" * (-len(bitstring) % 32)
        packed.append(int(bitstring, 2).to_bytes(len(bitstring) // 8, "big") if bitstring else b"")
    return b"".join(packed if top_down else packed[::-1])


def rgb_rows(pixels, order, top_down=False):
    """RGB(A) pixels as bytes in channel order, e.g. "BGR", "BGRX" (X written as 0x5A), rows padded to 4 bytes."""
    out = []
    for row in pixels:
        line = bytearray()
        for p in row:
            line += bytes(p[i] if c in "RGBA" and (i := "RGBA".index(c)) < len(p) else 0x5A for c in order)
        line += bytes(-len(line) % 4)
        out.append(bytes(line))
    return b"".join(out if top_down else out[::-1])


def colors(n):
    return [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]


def indices(width, height, count):
    return rng.integers(0, count, (height, width))


def picture(width, height, channels=3):
    return rng.integers(0, 256, (height, width, channels)).tolist()


def expected(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    mode = image.mode
    if mode in ("1", "L"):
        pixels = image.convert("L").tobytes()
    elif mode == "RGBA":
        pixels = image.tobytes()
    else:
        pixels = image.convert("RGB").tobytes()
    return {"width": image.width, "height": image.height, "mode": mode, "pixels": base64.b64encode(pixels).decode()}


def saved(image):
    out = io.BytesIO()
    image.save(out, "BMP")
    return out.getvalue()


cases = []


def case(name, data):
    cases.append({"name": name, "bmp": base64.b64encode(data).decode(), **expected(data)})


W, H = 37, 21
noise = np.clip(rng.normal(128, 60, (H, W, 3)), 0, 255).astype(np.uint8)
case("pillow-rgb24", saved(Image.fromarray(noise, "RGB")))
case("pillow-gray8", saved(Image.fromarray(noise[..., 0], "L")))
case("pillow-palette8", saved(Image.fromarray(noise, "RGB").quantize(50)))
case("pillow-bilevel", saved(Image.fromarray(noise[..., 1], "L").convert("1")))

pal16 = colors(16)
case("palette4-odd-width", bmp(40, W, H, 4, rows(indices(W, H, 16), 4), palette=pal16))
case("palette1-colored", bmp(40, 13, 5, 1, rows(indices(13, 5, 2), 1), palette=colors(2)))
# Fewer colors than the depth holds (biClrUsed), indices past them included: Pillow's palette holds its gray ramp there.
case("palette8-short", bmp(40, 19, 7, 8, rows(indices(19, 7, 40), 8), palette=colors(20), colors=20))
# No color count and a palette shorter than the depth's: Pillow reads 256 entries' worth, the pixel data's bytes too,
# as far as the file goes (whole entries; its gray ramp after them).
case("palette8-cut-short", bmp(40, 9, 3, 8, rows(indices(9, 3, 256), 8), palette=colors(16)))
case("palette8-top-down", bmp(40, 19, 7, 8, rows(indices(19, 7, 256), 8, top_down=True), palette=colors(256), top_down=True))
case("gray4-ramp", bmp(40, 3, 4, 4, rows(indices(3, 4, 16), 4), palette=[(i, i, i) for i in range(16)]))
# A black-and-white palette makes Pillow's mode "1", which it unpacks at 1 bit a pixel whatever the depth.
case("bilevel-palette-8bit", bmp(40, 21, 6, 8, rows(indices(21, 6, 256), 8), palette=[(0, 0, 0), (255, 255, 255)], colors=2))
case("gray8-ramp", bmp(40, 17, 5, 8, rows(indices(17, 5, 256), 8), palette=[(i, i, i) for i in range(256)]))
# The data offset right after the header: Pillow skips 4 bytes a color more, as if the palette were not counted.
pal8 = colors(8)
data8 = rows(indices(11, 3, 8), 8)
case("offset-without-palette", bmp(40, 11, 3, 8, bytes(4 * 8) + data8, palette=pal8, colors=8, offset=14 + 40))
case("os2-v1-palette8", bmp(12, 23, 9, 8, rows(indices(23, 9, 256), 8), palette=colors(256)))
case("os2-v1-rgb24", bmp(12, 23, 9, 24, rgb_rows(picture(23, 9), "BGR")))
case("os2-v2-rgb24", bmp(64, 23, 9, 24, rgb_rows(picture(23, 9), "BGR")))
case("v5-rgb24", bmp(124, 23, 9, 24, rgb_rows(picture(23, 9), "BGR")))
case("v4-top-down-rgb24", bmp(108, 23, 9, 24, rgb_rows(picture(23, 9), "BGR", top_down=True), top_down=True))
# The last row without its padding: Pillow's raw decoder skips a row's padding only before the next row.
case("unpadded-last-row", bmp(40, 5, 3, 24, rgb_rows(picture(5, 3), "BGR", top_down=True)[:-1], top_down=True))
case("rgb32-bgrx", bmp(40, 15, 6, 32, rgb_rows(picture(15, 6), "BGRX")))
px16 = indices(15, 6, 1 << 16)
le16 = b"".join(b"".join(struct.pack("<H", int(v)) for v in row) + bytes(-(2 * 15) % 4) for row in px16[::-1])
case("rgb16-555", bmp(40, 15, 6, 16, le16))
case("bitfields16-565", bmp(40, 15, 6, 16, le16, compression=3, masks=(0xF800, 0x7E0, 0x1F)))
case("bitfields16-555-v4", bmp(108, 15, 6, 16, le16, compression=3, masks=(0x7C00, 0x3E0, 0x1F, 0)))
case("bitfields24", bmp(40, 15, 6, 24, rgb_rows(picture(15, 6), "BGR"), compression=3, masks=(0xFF0000, 0xFF00, 0xFF)))
for order, masks in (("BGRX", (0xFF0000, 0xFF00, 0xFF, 0)), ("XBGR", (0xFF000000, 0xFF0000, 0xFF00, 0)),
                     ("ABGR", (0xFF000000, 0xFF0000, 0xFF00, 0xFF)), ("RGBA", (0xFF, 0xFF00, 0xFF0000, 0xFF000000)),
                     ("BGRA", (0xFF0000, 0xFF00, 0xFF, 0xFF000000)), ("BGRA", (0, 0, 0, 0))):
    case(f"bitfields32-{order.lower()}-{masks[3]:x}", bmp(108, 15, 6, 32, rgb_rows(picture(15, 6, 4), order), compression=3, masks=masks))
case("bitfields32-v3-bgrx", bmp(40, 15, 6, 32, rgb_rows(picture(15, 6), "BGRX"), compression=3, masks=(0xFF0000, 0xFF00, 0xFF)))

# RLE8: runs, an absolute run (odd, so padded to a word), a delta (Pillow 9.4 reads 4 bytes for it and moves by the
# last 2), end of line before the row is full and when it is, a run past the row's end (cut at it), a delta past the
# last row; Pillow refuses a bitmap that ends before its last pixel.
rle8 = (bytes([5, 7, 0, 3, 1, 2, 3, 0, 0, 2, 4, 0, 0, 0]) + bytes([12, 9, 0, 4, 10, 11, 12, 13, 0, 0]) + bytes([200, 3, 0, 0])
        + bytes([0, 2, 1, 1, 3, 5, 0, 0]) + bytes([16, 6, 0, 1]))
case("rle8", bmp(40, 16, 6, 8, rle8, compression=1, palette=colors(16), colors=16))
# RLE4: two-color runs, an even absolute run, an odd one (Pillow reads half its pixel count, rounded down, of bytes,
# and moves x by the whole count, so the next byte starts a run), end of line.
rle4 = bytes([6, 0x1F, 0, 4, 0x23, 0x45, 0, 0]) + bytes([3, 0x7C, 0, 5, 0x89, 0xAB, 0xC0, 0x33, 0, 0]) + bytes([9, 0x21, 0, 0, 10, 0x56])
case("rle4", bmp(40, 10, 4, 4, rle4, compression=2, palette=colors(16)))
# RLE8 at a 4-bit depth: Pillow decodes by the compression, a byte a pixel.
case("rle8-at-4bit", bmp(40, 8, 2, 4, bytes([8, 3, 0, 0, 4, 15, 4, 1, 0, 1]), compression=1, palette=colors(16)))

refused = []


def refuse(name, data):
    try:
        Image.open(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 - any refusal
        refused.append({"name": name, "bmp": base64.b64encode(data).decode(), "pillow": f"{type(e).__name__}: {e}"})
        return
    raise AssertionError(f"Pillow reads {name}")


good = bmp(40, 8, 2, 24, rgb_rows(picture(8, 2), "BGR"))
refuse("header-52", good[:14] + struct.pack("<I", 52) + good[18:])
refuse("depth-2", bmp(40, 8, 2, 2, rows(indices(8, 2, 4), 2), palette=colors(4)))
refuse("compression-jpeg", bmp(40, 8, 2, 24, b"\xff\xd8", compression=4))
refuse("bitfields-odd-masks", bmp(108, 8, 2, 32, rgb_rows(picture(8, 2, 4), "BGRA"), compression=3, masks=(0xFF00, 0xFF0000, 0xFF, 0)))
refuse("bitfields-8bit", bmp(40, 8, 2, 8, rows(indices(8, 2, 4), 8), compression=3, palette=colors(4), masks=(0xFF0000, 0xFF00, 0xFF)))
refuse("truncated-pixels", good[:-5])
refuse("truncated-header", good[:30])
refuse("rle8-short", bmp(40, 16, 6, 8, bytes([5, 7, 0, 1]), compression=1, palette=colors(16)))
refuse("rle8-delta-cut", bmp(40, 16, 6, 8, bytes([16, 7, 0, 2, 1, 1]), compression=1, palette=colors(16), colors=16))
refuse("rle-at-24bit", bmp(40, 8, 2, 24, bytes([8, 3, 0, 1]), compression=1))
refuse("gray4-ramp-wide", bmp(40, 37, 2, 4, rows(indices(37, 2, 16), 4), palette=[(i, i, i) for i in range(16)]))

print(json.dumps({"generator": f"tests/Sd.Loaders.Tests/Data/bmp-formats-reference.py: Pillow {PIL.__version__}, numpy {np.__version__}",
                  "cases": cases, "refused": refused}))
