"""Makes the decoding fixtures of grounding's tests and PIL's expected RGB.

Run from the repository root with the tools venv:
    .venv/bin/python grounding/testdata/decode/make.py
Every input image gets want/<name>.png: the RGB pixels Hugging Face's
image processors get from it (transformers image_transforms.convert_to_rgb:
transparency composited onto white, else PIL convert("RGB")), after PIL's
ImageOps.exif_transpose for the orientation cases.
"""

import io
import os

import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 40, 30


def base_rgb():
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack(
        [(x * 6) % 256, (y * 8 + x * 2) % 256, 128 + 60 * np.sin(x / 5.0) * np.cos(y / 4.0)], -1
    ).astype(np.uint8)
    img[8:18, 10:28] = [230, 20, 20]
    return img


def photo_like(w, h):
    """Smooth gradients, fine noise and hard edges: what JPEG decoders
    disagree on."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255.0 / w, y * 255.0 / h, 128 + 100 * np.sin(x / 9.0 + y / 13.0)], -1)
    img += rng.normal(0, 12, img.shape)
    img[h // 4:h // 2, w // 5:w // 2] = [250, 30, 40]
    img[h // 2:, 2 * w // 3:] = [20, 60, 230]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def hf_rgb(im):
    """transformers' convert_to_rgb for a PIL image."""
    if "A" in im.getbands() or im.info.get("transparency") is not None:
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def save(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im) if name.startswith("orient") else im
    os.makedirs(os.path.join(HERE, "want"), exist_ok=True)
    hf_rgb(im).save(os.path.join(HERE, "want", name + ".png"))


def encode(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def main():
    rgb = base_rgb()
    y, x = np.mgrid[0:H, 0:W]
    alpha = ((x * 7 + y * 3) % 256).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    im = Image.fromarray(rgb)
    save("rgb.png", encode(im, "PNG"))
    save("rgba.png", encode(rgba, "PNG"))
    save("la.png", encode(Image.fromarray(np.dstack([rgb[..., 1], alpha]), "LA"), "PNG"))
    save("gray.png", encode(im.convert("L"), "PNG"))
    save("gray16.png", encode(Image.fromarray((x * 1500 + y * 7).astype(np.uint16)), "PNG"))
    pal = im.quantize(16)
    save("palette.png", encode(pal, "PNG"))
    save("palette_trns.png", encode(pal, "PNG", transparency=3))
    save("rgb_trns.png", encode(im, "PNG", transparency=(230, 20, 20)))
    save("ycc444.jpg", encode(im, "JPEG", quality=90, subsampling=0))
    save("ycc422.jpg", encode(im, "JPEG", quality=90, subsampling=1))
    save("ycc420.jpg", encode(im, "JPEG", quality=90, subsampling=2))
    save("gray.jpg", encode(im.convert("L"), "JPEG", quality=90))
    save("cmyk.jpg", encode(im.convert("CMYK"), "JPEG", quality=90))
    # libjpeg-turbo decoding cases: odd sizes (partial MCUs and the edges of
    # fancy upsampling), progressive scans, restart markers, more
    # quantisation (quality 75) on a photo-like image.
    photo = photo_like(333, 217)
    save("ycc420_odd.jpg", encode(photo, "JPEG", quality=75, subsampling=2))
    save("ycc422_odd.jpg", encode(photo, "JPEG", quality=75, subsampling=1))
    save("ycc444_odd.jpg", encode(photo, "JPEG", quality=75, subsampling=0))
    save("progressive420.jpg", encode(photo, "JPEG", quality=75, subsampling=2, progressive=True))
    save("progressive444.jpg", encode(photo, "JPEG", quality=90, subsampling=0, progressive=True))
    save("restart_blocks.jpg", encode(photo, "JPEG", quality=75, subsampling=2, restart_marker_blocks=3))
    save("restart_rows.jpg", encode(photo, "JPEG", quality=75, subsampling=1, restart_marker_rows=1))
    save("gray_progressive.jpg", encode(photo.convert("L"), "JPEG", quality=75, progressive=True))
    save("cmyk_odd.jpg", encode(photo.convert("CMYK"), "JPEG", quality=75))
    save("lossy.webp", encode(im, "WEBP", quality=90))
    save("lossy_alpha.webp", encode(rgba, "WEBP", quality=90))
    save("lossless.webp", encode(rgba, "WEBP", lossless=True))
    frames = [pal, Image.fromarray(255 - rgb).quantize(16)]
    save("anim.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:], transparency=2))
    small = im.resize((8, 6), Image.NEAREST)
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        save(f"orient{o}.png", encode(small, "PNG", exif=exif))
        if o == 6:
            save(f"orient{o}.jpg", encode(small, "JPEG", quality=95, exif=exif))


# Resize cases (source w, h -> target w, h): both pass orders of Pillow 13
# (vertical first when h - oh > 2 * (w - ow) and the image shrinks
# vertically), up- and downscaling, same-size axes.
RESIZES = [(37, 23, 50, 11), (23, 61, 17, 20), (64, 64, 117, 84), (64, 64, 10, 97), (40, 30, 40, 7), (19, 45, 64, 45)]


def make_resizes():
    rng = np.random.default_rng(5)
    out = os.path.join(HERE, "resize")
    os.makedirs(out, exist_ok=True)
    for i, (w, h, ow, oh) in enumerate(RESIZES):
        src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(src).save(os.path.join(out, f"{i}.src.png"))
        Image.fromarray(src).resize((ow, oh), Image.BICUBIC).save(os.path.join(out, f"{i}.bicubic.png"))
        Image.fromarray(src).resize((ow, oh), Image.BILINEAR).save(os.path.join(out, f"{i}.bilinear.png"))
        f = rng.standard_normal((h, w)).astype(np.float32)
        np.save(os.path.join(out, f"{i}.src.npy"), f)
        np.save(os.path.join(out, f"{i}.f-bilinear.npy"), np.asarray(Image.fromarray(f, "F").resize((ow, oh), Image.BILINEAR)))


if __name__ == "__main__":
    make_resizes()
    main()
