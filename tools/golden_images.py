"""Deterministic synthetic input images for the golden references.

Every image is drawn from a fixed seed (shapes, gradients, noise and text,
so the resampler sees edges and texture rather than flat colour) and
written in the file format whose decoding and RGB conversion it exercises.
Nothing here depends on the clock or the machine: the same Pillow and
NumPy versions (tools/requirements.txt) give the same bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class GoldenImage:
    """One golden input image: its file name, size and what it exercises."""

    name: str  # file name under testdata/images/
    width: int
    height: int
    seed: int
    exercises: str
    noise: float = 4.0  # std of the Gaussian pixel noise; 0 keeps large PNGs small
    jpeg: tuple = ()  # JPEG save options, as (name, value) pairs


IMAGES = [
    GoldenImage("scene_landscape.png", 640, 427, 1, "RGB PNG, moderate downscale, landscape", noise=2),
    GoldenImage("large_portrait.png", 1080, 1620, 2, "large RGB PNG, strong downscale, portrait", noise=0),
    GoldenImage("small_landscape.png", 120, 80, 3, "tiny RGB PNG, upscale"),
    GoldenImage("gray_portrait.png", 300, 500, 4, "8-bit grayscale PNG (L)"),
    GoldenImage("palette_transparent.png", 256, 192, 5, "palette PNG with a transparent colour (tRNS)"),
    GoldenImage("cmyk.jpg", 400, 300, 6, "CMYK JPEG (Adobe, inverted), 4:4:4"),
    GoldenImage("rgb16.png", 200, 150, 7, "16-bit per channel RGB PNG"),
    GoldenImage("photo_420.jpg", 560, 420, 8, "RGB JPEG with 4:2:0 chroma subsampling"),
    GoldenImage("animated.gif", 200, 150, 9, "GIF, two frames (only the first is used)"),
    GoldenImage("lossless.webp", 360, 240, 10, "lossless WebP"),
    # JPEG variants for the libjpeg-turbo decoder (appended: the generate
    # goldens use the first seven images only).
    GoldenImage("photo_444.jpg", 480, 320, 11, "RGB JPEG, 4:4:4", jpeg=(("quality", 90), ("subsampling", 0))),
    GoldenImage("photo_422_odd.jpg", 333, 221, 12, "RGB JPEG, 4:2:2, odd size (partial MCUs)",
                jpeg=(("quality", 80), ("subsampling", 1))),
    GoldenImage("photo_progressive.jpg", 501, 377, 13, "progressive RGB JPEG, 4:2:0, odd size",
                jpeg=(("quality", 80), ("subsampling", 2), ("progressive", True))),
    GoldenImage("gray_restart.jpg", 350, 260, 14, "greyscale JPEG with restart markers",
                jpeg=(("quality", 85), ("restart_marker_blocks", 5))),
]


def _font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled default font: no system font, so the bytes do not
    # depend on what the machine has installed.
    return ImageFont.load_default(size=size)


def draw_scene(width: int, height: int, seed: int, noise: float) -> Image.Image:
    """An RGB scene: a two-axis gradient, noise, shapes and a line of text."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    c0, c1, c2 = rng.uniform(0, 255, size=(3, 3))
    base = (
        c0[None, None, :] * (x / max(width - 1, 1))[..., None]
        + c1[None, None, :] * (y / max(height - 1, 1))[..., None]
        + c2[None, None, :] * 0.5 * (1 + np.sin((x + 2 * y) / max(width, height) * 9.0))[..., None]
    ) / 2.0
    base += rng.normal(0, noise, size=base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(img)
    scale = min(width, height)
    for _ in range(6):
        x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        w, h = rng.uniform(0.1, 0.4) * scale, rng.uniform(0.1, 0.4) * scale
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        outline = tuple(int(v) for v in rng.integers(0, 256, size=3))
        box = [x0, y0, min(x0 + w, width - 1), min(y0 + h, height - 1)]
        if rng.uniform() < 0.5:
            draw.ellipse(box, fill=fill, outline=outline, width=max(1, scale // 100))
        else:
            draw.rectangle(box, fill=fill, outline=outline, width=max(1, scale // 100))
    for _ in range(4):
        pts = [tuple(rng.uniform(0, 1, size=2) * (width, height)) for _ in range(2)]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 256, size=3)), width=max(1, scale // 60))
    size = max(8, scale // 8)
    draw.text((scale // 20, height - size - scale // 20), "PALI 42", font=_font(size), fill=(250, 250, 240))
    return img


def write_png_rgb16(path: Path, rgb16: np.ndarray) -> None:
    """Write a 16-bit-per-channel RGB PNG (Pillow cannot write one).

    rgb16 is uint16 [H, W, 3]. Rows are stored unfiltered and compressed at
    level 9, so the bytes depend only on the pixels and zlib.
    """
    height, width, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def write_image(spec: GoldenImage, out_dir: Path) -> Path:
    """Draw one golden image and write it in its format under out_dir."""
    path = out_dir / spec.name
    scene = draw_scene(spec.width, spec.height, spec.seed, spec.noise)
    if spec.name.startswith("gray") and not spec.jpeg:
        scene.convert("L").save(path, optimize=False)
    elif spec.name.startswith("palette"):
        pal = scene.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        # Make every pixel of one palette entry transparent: a binary alpha,
        # so compositing on white is exact in any implementation.
        counts = np.bincount(np.array(pal).ravel(), minlength=64)
        pal.save(path, transparency=int(np.argmax(counts)), optimize=False)
    elif spec.jpeg and spec.name.startswith("gray"):
        scene.convert("L").save(path, **dict(spec.jpeg))
    elif spec.jpeg:
        scene.save(path, **dict(spec.jpeg))
    elif spec.name.endswith(".jpg") and "cmyk" in spec.name:
        scene.convert("CMYK").save(path, quality=90, subsampling=0)
    elif spec.name.endswith(".jpg"):
        scene.save(path, quality=85, subsampling=2)
    elif spec.name.startswith("rgb16"):
        rng = np.random.default_rng(spec.seed + 100)
        wide = np.array(scene).astype(np.uint16) * 257
        # Low bytes carry noise that an 8-bit reader must drop, not round.
        wide = wide - (wide % 256) + rng.integers(0, 256, size=wide.shape, dtype=np.uint16)
        write_png_rgb16(path, wide)
    elif spec.name.endswith(".gif"):
        first = scene.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        second = Image.eval(scene, lambda v: 255 - v).quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        first.save(path, save_all=True, append_images=[second], duration=100, loop=0, optimize=False)
    elif spec.name.endswith(".webp"):
        scene.save(path, lossless=True, quality=100, method=4, exact=True)
    else:
        scene.save(path, optimize=False)
    return path


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_image(spec, out_dir) for spec in IMAGES]


if __name__ == "__main__":
    import sys

    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "testdata/images")):
        print(p, p.stat().st_size)
