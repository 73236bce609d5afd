"""Golden references for paliprompt's Go tests, produced by the reference code.

Sections (all by default; --only picks some):
  images      testdata/images/: the synthetic golden input images
  preprocess  testdata/goldens/preprocess.json (+ PNGs): what transformers'
              slow SiglipImageProcessor makes of each image
  models      testdata/goldens/generate/*.json: input ids, greedy ids,
              first-step top-10 logits and text of the tiny models, from
              transformers itself, checked against the ONNX exports
  maskdecoder testdata/goldens/maskdecoder/: the NumPy reference of
              big_vision's VQ-VAE mask decoder on the random vae-oid npz
  parser      testdata/goldens/parser.json: a reference parse of PaliGemma
              output strings (mirrors grounding/parse.go)

Everything is deterministic: run it twice and every file is byte-identical.
See testdata/README.md for the formats.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import golden_images
from fixture_io import TESTDATA, f32, rel, sha256_bytes, write_json, write_png

IMAGE_SIZE = 448
# Lossy formats: their decoded RGB is stored as PNG so that a decoder which
# differs from libjpeg by a level or two can still test its resize exactly.
LOSSY = (".jpg", ".jpeg")
SAMPLE_POSITIONS = [(0, 0, 0), (1, 224, 224), (2, 447, 447), (0, 100, 300), (1, 447, 0), (2, 0, 447)]


def slow_processor(size: int = IMAGE_SIZE):
    """transformers' slow (PIL + NumPy) SigLIP image processor, as PaliGemma uses it."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    return SiglipImageProcessorPil(size={"height": size, "width": size})


def pixel_lut() -> np.ndarray:
    """uint8 -> float32 value exactly as transformers rescales and normalizes:
    float32(float64(u) * (1/255)), then (x - float32(0.5)) / float32(0.5) in float32."""
    scaled = (np.arange(256, dtype=np.float64) * (1 / 255)).astype(np.float32)
    return (scaled - np.float32(0.5)) / np.float32(0.5)


def to_rgb(image: Image.Image) -> np.ndarray:
    """The RGB uint8 array transformers' convert_to_rgb makes (alpha composited on white)."""
    from transformers.image_transforms import convert_to_rgb

    return convert_to_rgb(image, return_numpy=True)


def preprocess_case(path: Path, processor, lut: np.ndarray, out_dir: Path) -> dict:
    image = Image.open(path)
    rgb = to_rgb(image)
    resized = np.array(Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC))
    pixel_values = processor(Image.open(path), return_tensors="np")["pixel_values"][0]
    assert pixel_values.dtype == np.float32 and pixel_values.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    rebuilt = lut[resized].transpose(2, 0, 1)
    if not np.array_equal(pixel_values.view(np.uint32), np.ascontiguousarray(rebuilt).view(np.uint32)):
        raise SystemExit(f"{path.name}: stored PNG + LUT does not reproduce transformers' pixel_values bit for bit")

    stem = path.name.replace(".", "_")
    resized_png = out_dir / f"{stem}.448.png"
    write_png(resized_png, resized)
    case = {
        "image": rel(path),
        "format": image.format,
        "mode": image.mode,
        "width": image.width,
        "height": image.height,
        "rgb_sha256": sha256_bytes(np.ascontiguousarray(rgb).tobytes()),
        "resized": rel(resized_png),
        "resized_sha256": sha256_bytes(np.ascontiguousarray(resized).tobytes()),
        "pixel_values_sha256": sha256_bytes(np.ascontiguousarray(pixel_values).tobytes()),
        "samples": [
            {"c": c, "y": y, "x": x, "value": f32(pixel_values[c, y, x])} for c, y, x in SAMPLE_POSITIONS
        ],
    }
    if path.suffix.lower() in LOSSY:
        rgb_png = out_dir / f"{stem}.rgb.png"
        write_png(rgb_png, rgb)
        case["rgb"] = rel(rgb_png)
    return case


def make_preprocess(testdata: Path) -> None:
    processor = slow_processor()
    lut = pixel_lut()
    out_dir = testdata / "goldens" / "preprocess"
    cases = [
        preprocess_case(testdata / "images" / spec.name, processor, lut, out_dir)
        for spec in golden_images.IMAGES
    ]
    write_json(
        testdata / "goldens" / "preprocess.json",
        {
            "reference": "transformers SiglipImageProcessorPil (slow path, use_fast=False)",
            "size": [IMAGE_SIZE, IMAGE_SIZE],
            "resample": "PIL Image.resize BICUBIC on uint8 RGB, aspect ratio not kept, reducing_gap None",
            "rgb_conversion": (
                "transformers convert_to_rgb: images with an alpha band or a transparency entry are "
                "converted to RGBA and alpha-composited onto opaque white, then to RGB; others use "
                "PIL convert('RGB') (L: replicate; CMYK: Pillow cmyk2rgb; 16-bit RGB PNG: high byte)"
            ),
            "pixel_rule": (
                "v = float32(float64(u) * (1.0/255.0)); value = (v - float32(0.5)) / float32(0.5), "
                "all float32 after the first cast; layout C-order [3, 448, 448] (CHW, RGB)"
            ),
            "lut": [f32(v) for v in lut],
            "images": cases,
        },
    )


def make_images(testdata: Path) -> None:
    golden_images.write_all(testdata / "images")


SECTIONS = {
    "images": make_images,
    "preprocess": make_preprocess,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--testdata", type=Path, default=TESTDATA, help="output root (default: testdata/)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to make")
    args = parser.parse_args()
    for name in args.only.split(","):
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
        print(f"make_goldens: {name}", flush=True)
        SECTIONS[name](args.testdata)


if __name__ == "__main__":
    main()
