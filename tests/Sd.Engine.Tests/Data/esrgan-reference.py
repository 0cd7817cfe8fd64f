# Writes esrgan-reference.json: AUTOMATIC1111's ESRGAN upscaling (modules/upscaler_utils.py upscale_with_model and
# modules/images.py split_grid / combine_grid, restated below) with BasicSR's RRDBNet (rrdbnet_arch.py) and spandrel's
# reflect padding for pixel-unshuffled models, and BasicSR's SRVGGNetCompact (srvgg_arch.py), on small networks whose
# weights follow a formula the tests repeat.
# Run: /usr/bin/python3 esrgan-reference.py > esrgan-reference.json (PyTorch 1.13, numpy 1.24, Pillow 9.4).
import base64
import json
import math
from collections import namedtuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def formula_weights(shape, index, fan_in):
    # value[i] = (((i + 7919 index) * 2654435761) mod 2^32 / 2^32 - 0.5) * 2 / sqrt(fan_in), float64 then float32.
    count = int(np.prod(shape))
    i = np.arange(count, dtype=np.uint64) + np.uint64(7919 * index)
    u = (i * np.uint64(2654435761)) % np.uint64(2 ** 32)
    values = (u.astype(np.float64) / 2.0 ** 32 - 0.5) * (2.0 / math.sqrt(fan_in))
    return torch.from_numpy(values.astype(np.float32).reshape(shape))


class ResidualDenseBlock(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def forward(self, x):
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, nf, gc, blocks, shuffle):
        super().__init__()
        self.shuffle = shuffle
        self.conv_first = nn.Conv2d(3 * shuffle * shuffle, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(blocks)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        _, _, h, w = x.size()
        s = self.shuffle
        if s > 1:  # spandrel: pad_to_multiple (reflect), pixel_unshuffle, then crop
            x = F.pad(x, (0, (s - w % s) % s, 0, (s - h % s) % s), "reflect")
            x = F.pixel_unshuffle(x, s)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        scale = 4 // s
        return out[:, :, : h * scale, : w * scale]


class SRVGGNetCompact(nn.Module):
    # BasicSR srvgg_arch.py with PReLU activations (what spandrel loads).
    def __init__(self, nf, num_conv, upscale):
        super().__init__()
        self.upscale = upscale
        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(3, nf, 3, 1, 1))
        self.body.append(nn.PReLU(num_parameters=nf))
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(nf, nf, 3, 1, 1))
            self.body.append(nn.PReLU(num_parameters=nf))
        self.body.append(nn.Conv2d(nf, 3 * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        out += base
        return out


def build(nf, gc, blocks, shuffle, compact=False):
    torch.manual_seed(0)
    # A compact model: blocks body convolutions after the first, shuffle its pixel-shuffle factor.
    model = (SRVGGNetCompact(nf, blocks, shuffle) if compact else RRDBNet(nf, gc, blocks, shuffle)).eval()
    names = []
    with torch.no_grad():
        for index, (name, p) in enumerate(model.state_dict().items()):
            fan_in = p.shape[1] * 9 if p.dim() == 4 else 1
            p.copy_(formula_weights(tuple(p.shape), index, fan_in) * (0.1 if p.dim() == 1 else 1.0))
            names.append([name, list(p.shape)])
    return model, names


def pil_image_to_torch_bgr(img):
    img = np.array(img.convert("RGB"))
    img = img[:, :, ::-1]
    img = np.transpose(img, (2, 0, 1))
    img = np.ascontiguousarray(img) / 255
    return torch.from_numpy(img)


def torch_bgr_to_pil_image(tensor):
    tensor = tensor.squeeze(0)
    arr = tensor.float().cpu().clamp_(0, 1).numpy()
    arr = 255.0 * np.moveaxis(arr, 0, 2)
    arr = arr.round().astype(np.uint8)
    arr = arr[:, :, ::-1]
    return Image.fromarray(arr, "RGB")


def upscale_pil_patch(model, img):
    with torch.inference_mode():
        tensor = pil_image_to_torch_bgr(img).unsqueeze(0).to(dtype=torch.float32)
        return torch_bgr_to_pil_image(model(tensor))


Grid = namedtuple("Grid", ["tiles", "tile_w", "tile_h", "image_w", "image_h", "overlap"])


def split_grid(image, tile_w=512, tile_h=512, overlap=64):
    w = image.width
    h = image.height
    non_overlap_width = tile_w - overlap
    non_overlap_height = tile_h - overlap
    cols = math.ceil((w - overlap) / non_overlap_width)
    rows = math.ceil((h - overlap) / non_overlap_height)
    dx = (w - tile_w) / (cols - 1) if cols > 1 else 0
    dy = (h - tile_h) / (rows - 1) if rows > 1 else 0
    grid = Grid([], tile_w, tile_h, w, h, overlap)
    for row in range(rows):
        row_images = []
        y = int(row * dy)
        if y + tile_h >= h:
            y = h - tile_h
        for col in range(cols):
            x = int(col * dx)
            if x + tile_w >= w:
                x = w - tile_w
            tile = image.crop((x, y, x + tile_w, y + tile_h))
            row_images.append([x, tile_w, tile])
        grid.tiles.append([y, tile_h, row_images])
    return grid


def combine_grid(grid):
    def make_mask_image(r):
        r = r * 255 / grid.overlap
        r = r.astype(np.uint8)
        return Image.fromarray(r, 'L')

    mask_w = make_mask_image(np.arange(grid.overlap, dtype=np.float32).reshape((1, grid.overlap)).repeat(grid.tile_h, axis=0))
    mask_h = make_mask_image(np.arange(grid.overlap, dtype=np.float32).reshape((grid.overlap, 1)).repeat(grid.image_w, axis=1))
    combined_image = Image.new("RGB", (grid.image_w, grid.image_h))
    for y, h, row in grid.tiles:
        combined_row = Image.new("RGB", (grid.image_w, h))
        for x, w, tile in row:
            if x == 0:
                combined_row.paste(tile, (0, 0))
                continue
            combined_row.paste(tile.crop((0, 0, grid.overlap, h)), (x, 0), mask=mask_w)
            combined_row.paste(tile.crop((grid.overlap, 0, w, h)), (x + grid.overlap, 0))
        if y == 0:
            combined_image.paste(combined_row, (0, 0))
            continue
        combined_image.paste(combined_row.crop((0, 0, combined_row.width, grid.overlap)), (0, y), mask=mask_h)
        combined_image.paste(combined_row.crop((0, grid.overlap, combined_row.width, h)), (0, y + grid.overlap))
    return combined_image


def upscale_with_model(model, img, tile_size, tile_overlap):
    if tile_size <= 0:
        return upscale_pil_patch(model, img)
    grid = split_grid(img, tile_size, tile_size, tile_overlap)
    newtiles = []
    for y, h, row in grid.tiles:
        newrow = []
        for x, w, tile in row:
            output = upscale_pil_patch(model, tile)
            scale_factor = output.width // tile.width
            newrow.append([x * scale_factor, w * scale_factor, output])
        newtiles.append([y * scale_factor, h * scale_factor, newrow])
    newgrid = Grid(newtiles, grid.tile_w * scale_factor, grid.tile_h * scale_factor,
                   grid.image_w * scale_factor, grid.image_h * scale_factor, grid.overlap * scale_factor)
    return combine_grid(newgrid)


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def main():
    rng = np.random.default_rng(20261124)
    cases = []
    for name, (nf, gc, blocks, shuffle), (h, w), (tile, overlap) in [
            ("x4 tiled", (16, 16, 1, 1), (22, 30), (16, 4)),
            ("x4 smaller than a tile", (16, 16, 1, 1), (10, 12), (16, 4)),
            ("x4 whole picture", (16, 8, 2, 1), (9, 7), (0, 0)),
            ("x2 unshuffled, odd size, reflect padded", (16, 16, 1, 2), (13, 11), (0, 0)),
            ("x1 unshuffled by 4, tiled", (16, 16, 1, 4), (20, 24), (16, 4)),
            ("compact x4 tiled", (16, 0, 3, 4), (22, 30), (16, 4)),
            ("compact x2 whole picture", (8, 0, 2, 2), (9, 7), (0, 0))]:
        compact = name.startswith("compact")
        model, names = build(nf, gc, blocks, shuffle, compact)
        picture = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        out = np.array(upscale_with_model(model, Image.fromarray(picture, "RGB"), tile, overlap))
        # The network's float output for a small whole picture, before the bytes: a tight check of the arithmetic.
        with torch.inference_mode():
            raw = model(pil_image_to_torch_bgr(Image.fromarray(picture, "RGB")).unsqueeze(0).float())
        raw = raw.squeeze(0).permute(1, 2, 0).numpy().astype(np.float32) if h * w <= 130 else None
        cases.append({"name": name, "architecture": "compact" if compact else "rrdb", "features": nf, "growth": gc, "blocks": blocks, "shuffle": shuffle,
                      "tensors": names, "in": [h, w], "tile": tile, "overlap": overlap,
                      "picture": b64(picture), "out": list(out.shape), "upscaled": b64(out),
                      "raw": None if raw is None else b64(raw)})
    print(json.dumps({"generator": f"tests/Sd.Engine.Tests/Data/esrgan-reference.py: PyTorch {torch.__version__}, numpy {np.__version__}", "cases": cases}))


if __name__ == "__main__":
    main()
