"""Reference for A1111Inpaint: A1111 1.10's inpainting around a run, on Pillow 9.4 and OpenCV 4.6. Its code, as
StableDiffusionProcessingImg2Img.init runs it with masked content "original" (its default) or "fill", and
apply_overlay/uncrop after the run: the mask read (create_binary_mask) and inverted, blurred across then down,
then Whole picture (picture and mask resized by the resize mode, the overlay through twice the mask) or Only masked
(get_crop_region_v2, expand_crop_region, the region cut out and resized by Resize and fill, the overlay through the
blurred mask; a blank mask falls back to plain img2img). The run's output is stood in for by a seeded picture.

Run: python3 a1111-inpaint-reference.py > a1111-inpaint-reference.json
"""
import base64
import importlib.util
import json
import os

import cv2
import numpy as np
from PIL import Image, ImageFilter, ImageOps

_resize = importlib.util.spec_from_file_location("resize", os.path.join(os.path.dirname(os.path.abspath(__file__)), "resize-mode-reference.py"))
resize = importlib.util.module_from_spec(_resize)
_resize.loader.exec_module(resize)
resize_image = resize.resize_image


def flatten(img, bgcolor):  # A1111 1.10, modules/images.py
    if img.mode == "RGBA":
        background = Image.new('RGBA', img.size, bgcolor)
        background.paste(img, mask=img)
        img = background
    return img.convert('RGB')


def create_binary_mask(image):  # A1111 1.10, modules/processing.py (round=True, its default)
    if image.mode == 'RGBA' and image.getextrema()[-1] != (255, 255):
        image = image.split()[-1].convert("L").point(lambda x: 255 if x > 128 else 0)
    else:
        image = image.convert('L')
    return image


def get_crop_region_v2(mask, pad=0):  # A1111 1.10, modules/masking.py
    mask = mask if isinstance(mask, Image.Image) else Image.fromarray(mask)
    if box := mask.getbbox():
        x1, y1, x2, y2 = box
        return (max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, mask.size[0]), min(y2 + pad, mask.size[1])) if pad else box


def expand_crop_region(crop_region, processing_width, processing_height, image_width, image_height):  # modules/masking.py
    x1, y1, x2, y2 = crop_region
    ratio_crop_region = (x2 - x1) / (y2 - y1)
    ratio_processing = processing_width / processing_height
    if ratio_crop_region > ratio_processing:
        desired_height = (x2 - x1) / ratio_processing
        desired_height_diff = int(desired_height - (y2 - y1))
        y1 -= desired_height_diff // 2
        y2 += desired_height_diff - desired_height_diff // 2
        if y2 >= image_height:
            diff = y2 - image_height
            y2 -= diff
            y1 -= diff
        if y1 < 0:
            y2 -= y1
            y1 -= y1
        if y2 >= image_height:
            y2 = image_height
    else:
        desired_width = (y2 - y1) * ratio_processing
        desired_width_diff = int(desired_width - (x2 - x1))
        x1 -= desired_width_diff // 2
        x2 += desired_width_diff - desired_width_diff // 2
        if x2 >= image_width:
            diff = x2 - image_width
            x2 -= diff
            x1 -= diff
        if x1 < 0:
            x2 -= x1
            x1 -= x1
        if x2 >= image_width:
            x2 = image_width
    return x1, y1, x2, y2


def fill(image, mask):  # A1111 1.10, modules/masking.py
    """fills masked regions with colors from image using blur. Not extremely effective."""
    image_mod = Image.new('RGBA', (image.width, image.height))
    image_masked = Image.new('RGBa', (image.width, image.height))
    image_masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert('L')))
    image_masked = image_masked.convert('RGBa')
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = image_masked.filter(ImageFilter.GaussianBlur(radius)).convert('RGBA')
        for _ in range(repeats):
            image_mod.alpha_composite(blurred)
    return image_mod.convert("RGB")


def prepare(image, mask, width, height, resize_mode, mask_blur, full_res, padding, invert, masked_content_fill=False):
    """StableDiffusionProcessingImg2Img.init's pictures: (run picture, run mask or None, overlay or None, paste_to)."""
    crop_region = None
    paste_to = None
    image_mask = create_binary_mask(mask)
    if invert:
        image_mask = ImageOps.invert(image_mask)
    if mask_blur > 0:
        np_mask = np.array(image_mask)
        kernel_size = 2 * int(2.5 * mask_blur + 0.5) + 1
        np_mask = cv2.GaussianBlur(np_mask, (kernel_size, 1), mask_blur)
        image_mask = Image.fromarray(np_mask)
        np_mask = np.array(image_mask)
        np_mask = cv2.GaussianBlur(np_mask, (1, kernel_size), mask_blur)
        image_mask = Image.fromarray(np_mask)
    if full_res:
        mask_for_overlay = image_mask
        m = image_mask.convert('L')
        crop_region = get_crop_region_v2(m, padding)
        if crop_region:
            crop_region = expand_crop_region(crop_region, width, height, m.width, m.height)
            x1, y1, x2, y2 = crop_region
            m = m.crop(crop_region)
            image_mask = resize_image(2, m, width, height)
            paste_to = (x1, y1, x2 - x1, y2 - y1)
        else:
            crop_region = None
            image_mask = None
            mask_for_overlay = None
    else:
        image_mask = resize_image(resize_mode, image_mask, width, height)
        np_mask = np.array(image_mask)
        np_mask = np.clip((np_mask.astype(np.float32)) * 2, 0, 255).astype(np.uint8)
        mask_for_overlay = Image.fromarray(np_mask)
    overlay = None
    image = flatten(image, "#ffffff")  # opts.img2img_background_color's default
    if crop_region is None and resize_mode != 3:
        image = resize_image(resize_mode, image, width, height)
    if image_mask is not None:
        if mask_for_overlay.size != (image.width, image.height):
            mask_for_overlay = resize_image(resize_mode, mask_for_overlay, image.width, image.height)
        image_masked = Image.new('RGBa', (image.width, image.height))
        image_masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask_for_overlay.convert('L')))
        overlay = image_masked.convert('RGBA')
    if crop_region is not None:
        image = image.crop(crop_region)
        image = resize_image(2, image, width, height)
    if image_mask is not None and masked_content_fill:  # inpainting_fill 0; latent_mask is image_mask
        image = fill(image, image_mask)
    return image, image_mask, overlay, paste_to


def apply_overlay(image, paste_loc, overlay):  # A1111 1.10, with uncrop inlined
    if overlay is None:
        return image
    if paste_loc is not None:
        x, y, w, h = paste_loc
        base_image = Image.new('RGBA', (overlay.width, overlay.height))
        image = resize_image(1, image, w, h)
        base_image.paste(image, (x, y))
        image = base_image
    image = image.convert('RGBA')
    image.alpha_composite(overlay)
    return image.convert('RGB')


rng = np.random.default_rng(20261125)


def picture(width, height, mode="RGB"):
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([128 + 100 * np.sin(x / (4 + c) + y / (6 + 2 * c)) for c in range(len(mode))], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8), mode)


def mask_picture(kind, width, height, box):
    x1, y1, x2, y2 = box
    m = np.zeros((height, width), np.uint8)
    m[y1:y2, x1:x2] = 255
    if kind == "L":
        return Image.fromarray(m, "L")
    if kind == "RGB":  # drawn in colour: read as its gray
        return Image.fromarray(np.stack([m, m // 2, m // 3], axis=-1), "RGB")
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., :3] = rng.integers(0, 256, (height, width, 3))
    if kind == "RGBA opaque":  # alpha 255 everywhere: read as its gray
        rgba[..., :3] = np.stack([m, m // 2, m // 3], axis=-1)
        rgba[..., 3] = 255
    else:  # see-through RGBA: its alpha, over 128 or not (129 and 128 at the threshold)
        rgba[..., 3] = np.where(m > 0, rng.integers(129, 256, (height, width)), rng.integers(0, 129, (height, width)))
        rgba[y1, x1:x2], rgba[max(y1 - 1, 0), x1:x2] = [9, 9, 9, 129], [9, 9, 9, 128]
    return Image.fromarray(rgba, "RGBA")


def b64(im):
    return base64.b64encode(np.asarray(im).tobytes()).decode()


def main():
    cases = []
    for name, (w, h), kind, box, (rw, rh), resize_mode, blur, full_res, padding, invert, mask_size in [
        ("whole, blur 4", (48, 40), "L", (10, 8, 30, 24), (48, 40), 0, 4, False, 0, False, None),
        ("whole, no blur", (48, 40), "L", (10, 8, 30, 24), (48, 40), 0, 0, False, 0, False, None),
        ("whole, resized, blur 3", (50, 30), "RGB", (5, 5, 20, 25), (32, 40), 1, 3, False, 0, False, None),
        ("whole, mask of another size", (40, 40), "L", (8, 8, 40, 20), (32, 32), 2, 2, False, 0, False, (56, 24)),
        ("whole, see-through RGBA, inverted", (40, 32), "RGBA", (12, 6, 28, 20), (40, 32), 0, 5, False, 0, True, None),
        ("whole, see-through picture, opaque RGBA mask", (40, 32), "RGBA opaque", (4, 4, 20, 12), (32, 32), 1, 2, False, 0, False, None),
        ("only masked, see-through picture", (48, 40), "RGBA", (20, 16, 30, 26), (32, 32), 0, 2, True, 4, False, None),
        ("only masked, padding 8", (64, 56), "L", (26, 20, 38, 30), (48, 48), 0, 4, True, 8, False, None),
        ("only masked, wide box", (64, 56), "L", (8, 40, 54, 48), (32, 48), 0, 2, True, 4, False, None),
        ("only masked, at an edge", (64, 56), "L", (0, 48, 14, 56), (48, 32), 0, 3, True, 16, False, None),
        ("only masked, padding past the picture", (64, 48), "RGB", (20, 10, 40, 30), (32, 32), 0, 4, True, 200, False, None),
        ("only masked, odd growth", (64, 56), "L", (26, 20, 37, 30), (48, 48), 0, 0, True, 0, False, None),
        ("only masked, no blur, tall run", (64, 48), "L", (24, 16, 40, 24), (32, 64), 0, 0, True, 0, False, None),
        ("only masked, inverted", (64, 48), "L", (0, 0, 64, 40), (32, 32), 0, 1, True, 4, True, None),
        ("only masked, inverted to blank", (40, 32), "L", (0, 0, 40, 32), (32, 32), 0, 0, True, 4, True, None),
        ("only masked, blank", (64, 48), "L", (0, 0, 0, 0), (32, 40), 1, 4, True, 32, False, None),
        ("whole, fill, blur 4", (48, 40), "L", (10, 8, 30, 24), (48, 40), 0, 4, False, 0, False, None),
        ("whole, fill, no blur, resized", (50, 30), "RGB", (5, 5, 20, 25), (32, 40), 1, 0, False, 0, False, None),
        ("whole, fill, a hole at an edge", (64, 40), "L", (0, 0, 20, 40), (64, 40), 0, 2, False, 0, False, None),
        ("whole, fill, all masked", (24, 16), "L", (0, 0, 24, 16), (24, 16), 0, 0, False, 0, False, None),
        ("only masked, fill, padding 8", (64, 56), "L", (26, 20, 38, 30), (48, 48), 0, 4, True, 8, False, None),
        ("only masked, fill, see-through picture", (48, 40), "RGBA", (20, 16, 30, 26), (32, 32), 0, 2, True, 4, False, None),
        ("only masked, fill, blank", (64, 48), "L", (0, 0, 0, 0), (32, 40), 1, 4, True, 32, False, None),
    ]:
        image = picture(w, h, "RGBA" if "see-through picture" in name else "RGB")
        mw, mh = mask_size or (w, h)
        mask = mask_picture(kind, mw, mh, box)
        masked_content_fill = ", fill" in name
        run_picture, run_mask, overlay, paste_to = prepare(image, mask, rw, rh, resize_mode, blur, full_res, padding, invert, masked_content_fill)
        result = picture(rw, rh)
        final = apply_overlay(result, paste_to, overlay)
        cases.append({"name": name, "width": w, "height": h, "picture_mode": image.mode, "picture": b64(image),
                      "mask_mode": kind, "mask_width": mw, "mask_height": mh, "mask": b64(mask),
                      "run_width": rw, "run_height": rh, "resize_mode": resize_mode, "blur": blur, "only_masked": full_res,
                      "padding": padding, "invert": invert, "fill": masked_content_fill,
                      "run_picture": b64(run_picture), "run_mask": None if run_mask is None else b64(run_mask.convert("L")),
                      "paste_to": paste_to, "result": b64(result), "final_width": final.width, "final_height": final.height,
                      "final": b64(final)})
    print(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main()
