"""Golden references for paliprompt's Go tests, produced by the reference code.

Sections (all by default; --only picks some):
  images      testdata/images/: the synthetic golden input images
  preprocess  testdata/goldens/preprocess.json (+ PNGs): what transformers'
              slow SiglipImageProcessor makes of each image
  models      testdata/goldens/generate/*.json: input ids, greedy ids,
              first-step top-10 logits and text of the tiny models, from
              transformers itself, checked against the ONNX exports
  inputs_embeds
              testdata/goldens/inputs_embeds.json (+ inputs_embeds/*.npy):
              the merged prefill input transformers' decoder receives, on
              the tiny model whose sqrt(hidden) is inexact
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
import ref_parser
import vae_oid
from fixture_io import REPO, TESTDATA, f32, rel, sha256_bytes, write_json, write_npy, write_png

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


# ---------------------------------------------------------------- generation

HF_DIR = REPO / "out" / "tiny-hf"
MAX_NEW_TOKENS = 24
TOP_K = 10
PROMPTS = [
    "caption en",
    "detect cat ; dog",
    "segment red circle",
    "answer en what color is the car?",
    "ocr",
    # A long prefix (tens of tokens, some words outside the vocabulary, so
    # byte fallback and sub-word pieces appear in the input ids).
    "answer en is there a small red circle above the big blue square on the left side of the white "
    "house near the tall green tree, and how many people are standing in front of the zebra?",
]
GEN_IMAGES = [spec.name for spec in golden_images.IMAGES[:7]]
BATCH_PROMPTS = ["ocr", "detect red circle ; blue square", PROMPTS[-1]]
MODELS = {
    # golden name: (HF checkpoint under out/tiny-hf, exported folders that
    # must reproduce it, how many of GEN_IMAGES)
    "tiny-paligemma2": ("paligemma2", ["tiny-paligemma2", "tiny-paligemma2-community", "tiny-paligemma2-v1"], 7),
    "tiny-paligemma1": ("paligemma1", ["tiny-paligemma1"], 7),
    "tiny-paligemma2-hidden12": ("paligemma2-hidden12", ["tiny-paligemma2-hidden12"], 3),
}
# The merged inputs_embeds golden: a model whose sqrt(hidden) is not exact.
EMBEDS_MODEL = ("paligemma2-hidden12", "tiny-paligemma2-hidden12")
EMBEDS_CASES = [(GEN_IMAGES[0], "detect red circle ; blue square"), (GEN_IMAGES[2], "caption en")]


def hf_generate(model, processor, images: list, prompts: list[str]) -> list[dict]:
    """Greedy generation with transformers (fp32, eager attention, slow image
    processor); one dict per prompt with ids, first-step top-k and text."""
    import torch

    inputs = processor(images=images, text=["<image>" + p for p in prompts], return_tensors="pt", padding="longest")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    prompt_len = inputs["input_ids"].shape[1]
    eos = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
              else [model.generation_config.eos_token_id])
    pad = model.generation_config.pad_token_id
    rows = []
    for r in range(len(prompts)):
        new = out.sequences[r, prompt_len:].tolist()
        # Cut at the first eos (inclusive); batch rows that finished early are padded after it.
        for i, t in enumerate(new):
            if t in eos:
                new = new[: i + 1]
                break
        step_logits = [out.logits[i][r].float().numpy() for i in range(len(new))]
        first = step_logits[0]
        top = np.argsort(-first, kind="stable")[:TOP_K]
        margins = [float(np.sort(l)[-1] - np.sort(l)[-2]) for l in step_logits]
        mask = inputs["attention_mask"][r].tolist()
        ids = inputs["input_ids"][r].tolist()
        rows.append({
            "prompt": prompts[r],
            "input_ids": ids,
            "attention_mask": mask,
            "generated_ids": new,
            "pad_token_id": pad,
            "first_step_top_ids": [int(i) for i in top],
            "first_step_top_logits": [f32(first[i]) for i in top],
            "min_top2_margin": float(f"{min(margins):.3g}"),
            "text": processor.decode(new, skip_special_tokens=False),
            "text_skip_special": processor.decode(new, skip_special_tokens=True),
        })
    return rows


def compact_ids(ids: list[int], image_token: int, pad_token: int) -> dict:
    """input_ids stored as [pad]*pads + [image]*image_tokens + text_ids."""
    pads = 0
    while pads < len(ids) and ids[pads] == pad_token:
        pads += 1
    n = pads
    while n < len(ids) and ids[n] == image_token:
        n += 1
    return {"pad_tokens": pads, "image_tokens": n - pads, "text_ids": ids[n:]}


def expand_ids(c: dict, image_token: int, pad_token: int) -> list[int]:
    return [pad_token] * c["pad_tokens"] + [image_token] * c["image_tokens"] + c["text_ids"]


_SESSIONS: dict = {}


def ort_model(folder: Path):
    import ort_generate

    if folder not in _SESSIONS:
        _SESSIONS[folder] = ort_generate.OrtPaliGemma(folder)
    return _SESSIONS[folder]


def check_with_onnxruntime(folders: list[Path], processor, image: Image.Image, row: dict) -> None:
    """The exported folders must reproduce transformers' greedy ids and first-step logits."""
    pixels = processor.image_processor(image, return_tensors="np")["pixel_values"][0]
    for folder in folders:
        gen = ort_model(folder).generate(pixels, [row["prompt"]], MAX_NEW_TOKENS)[0]
        want_ids = [t for t, m in zip(row["input_ids"], row["attention_mask"]) if m]
        if gen.input_ids != want_ids:
            raise SystemExit(f"{folder.name}: prompt ids differ from transformers for {row['prompt']!r}")
        if gen.generated != row["generated_ids"]:
            raise SystemExit(f"{folder.name}: onnxruntime generated {gen.generated}, transformers "
                             f"{row['generated_ids']} for {row['prompt']!r}")
        diff = float(np.abs(gen.first_logits[row["first_step_top_ids"]] - np.array(row["first_step_top_logits"])).max())
        if diff > 1e-4:
            raise SystemExit(f"{folder.name}: first-step logits differ by {diff} for {row['prompt']!r}")


def make_models(testdata: Path) -> None:
    import torch
    from transformers import AutoProcessor, PaliGemmaForConditionalGeneration

    torch.manual_seed(0)
    for golden, (hf_name, exports, n_images) in MODELS.items():
        checkpoint = HF_DIR / hf_name
        if not (checkpoint / "config.json").exists():
            raise SystemExit(f"{checkpoint} is missing: run tools/make_test_models.py first")
        processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")
        if type(processor.image_processor).__name__ != "SiglipImageProcessorPil":
            raise SystemExit(f"expected the slow image processor, got {type(processor.image_processor).__name__}")
        model = PaliGemmaForConditionalGeneration.from_pretrained(
            checkpoint, dtype=torch.float32, attn_implementation="eager").eval()
        cfg = model.config
        image_token, pad = cfg.image_token_index, model.generation_config.pad_token_id
        folders = [testdata / "models" / e for e in exports]
        cases = []
        for name in GEN_IMAGES[:n_images]:
            image = Image.open(testdata / "images" / name)
            for prompt in PROMPTS:
                row = hf_generate(model, processor, [image], [prompt])[0]
                check_with_onnxruntime(folders, processor, image, row)
                cases.append({"image": f"images/{name}", **compact_ids(row.pop("input_ids"), image_token, pad),
                              **{k: v for k, v in row.items() if k not in ("attention_mask", "pad_token_id")}})
        # One left-padded batch: three prompts of different lengths on one image.
        image = Image.open(testdata / "images" / GEN_IMAGES[0])
        batch = hf_generate(model, processor, [image] * len(BATCH_PROMPTS), BATCH_PROMPTS)
        for folder in folders:
            check_batch_with_onnxruntime(folder, processor, image, batch)
        batch_rows = []
        for row in batch:
            alone = hf_generate(model, processor, [image], [row["prompt"]])[0]["generated_ids"]
            batch_rows.append({**compact_ids(row.pop("input_ids"), image_token, pad),
                               **{k: v for k, v in row.items() if k not in ("attention_mask", "pad_token_id")},
                               "unbatched_generated_ids": alone})
        write_json(testdata / "goldens" / "generate" / f"{golden}.json", {
            "reference": "transformers PaliGemmaForConditionalGeneration.generate, fp32, eager attention, greedy "
                         "(do_sample=False), slow image processor; checked against onnxruntime on the exports",
            "models": [f"models/{e}" for e in exports],
            "max_new_tokens": MAX_NEW_TOKENS,
            "image_token_id": image_token,
            "pad_token_id": pad,
            "eos_token_ids": sorted(set(cfg.text_config.eos_token_id if isinstance(cfg.text_config.eos_token_id, list)
                                        else [cfg.text_config.eos_token_id])),
            "cases": cases,
            "batch": {"image": f"images/{GEN_IMAGES[0]}", "rows": batch_rows},
        })
        print(f"  {golden}: {len(cases)} cases + batch of {len(batch_rows)}", flush=True)


def check_batch_with_onnxruntime(folder: Path, processor, image: Image.Image, batch: list[dict]) -> None:
    """An own-layout export, run as one left-padded batch, must reproduce the batched ids."""
    if not ort_model(folder).with_mask:
        return
    pixels = processor.image_processor(image, return_tensors="np")["pixel_values"][0]
    gens = ort_model(folder).generate(pixels, [r["prompt"] for r in batch], MAX_NEW_TOKENS)
    for gen, row in zip(gens, batch):
        if gen.generated != row["generated_ids"]:
            raise SystemExit(f"{folder.name} batched: onnxruntime {gen.generated} != transformers {row['generated_ids']}")


def make_inputs_embeds(testdata: Path) -> None:
    """transformers' merged inputs_embeds (what its Gemma 2 decoder gets) for
    a few image + prompt cases on a model whose sqrt(hidden) is inexact.

    The image rows are the export's own vision encoder output (onnxruntime),
    handed to transformers as mm_encoder_outputs: torch and onnxruntime
    differ in the last bits of SigLIP's arithmetic (kernels, not the scale
    convention), so only this isolates the merge. The text rows are
    transformers' scaled embeddings."""
    import torch
    from transformers import AutoProcessor, PaliGemmaForConditionalGeneration
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    hf_name, export = EMBEDS_MODEL
    checkpoint, folder = HF_DIR / hf_name, testdata / "models" / export
    processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")
    model = PaliGemmaForConditionalGeneration.from_pretrained(
        checkpoint, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    hidden = cfg.text_config.hidden_size
    scale = np.float32(hidden**0.5)
    captured = []
    hook = model.model.language_model.register_forward_pre_hook(
        lambda _m, _a, kw: captured.append(kw["inputs_embeds"].detach().numpy().copy()), with_kwargs=True)
    vision = ort_model(folder).vision
    cases = []
    for image_name, prompt in EMBEDS_CASES:
        image = Image.open(testdata / "images" / image_name)
        inputs = processor(images=[image], text=["<image>" + prompt], return_tensors="pt")
        features = vision.run(None, {"pixel_values": inputs["pixel_values"].numpy()})[0]
        with torch.no_grad():
            torch_features = model.model.get_image_features(inputs["pixel_values"]).pooler_output.numpy()
        captured.clear()
        with torch.no_grad():
            model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                  token_type_ids=inputs["token_type_ids"],
                  mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=torch.from_numpy(features))})
        merged = captured[0][0]
        ids = inputs["input_ids"][0].tolist()
        image_rows = np.array(ids) == cfg.image_token_index
        if not np.array_equal(merged[image_rows].view(np.uint32), features[0].view(np.uint32)):
            raise SystemExit("transformers changed the image features while merging them")
        # What the own layout's first version fed the decoder: features
        # divided by sqrt(hidden) in the graph, multiplied back in it.
        round_trip = (features[0] / scale) * scale
        stem = f"{export}.{image_name.replace('.', '_')}"
        path = testdata / "goldens" / "inputs_embeds" / f"{stem}.npy"
        write_npy(path, merged)
        cases.append({
            "image": f"images/{image_name}", "prompt": prompt,
            **compact_ids(ids, cfg.image_token_index, model.generation_config.pad_token_id),
            "inputs_embeds": rel(path),
            "inputs_embeds_sha256": sha256_bytes(np.ascontiguousarray(merged).tobytes()),
            "old_scaling_changed_values": int((round_trip.view(np.uint32) != features[0].view(np.uint32)).sum()),
            "image_values": int(features[0].size),
            "torch_vs_onnxruntime_image_features_max_abs_diff": float(f"{np.abs(torch_features - features).max():.3g}"),
        })
    hook.remove()
    if not all(c["old_scaling_changed_values"] > 0 for c in cases):
        raise SystemExit(f"{export}: sqrt({hidden}) scaling round trip changes nothing; the golden would prove nothing")
    write_json(testdata / "goldens" / "inputs_embeds.json", {
        "reference": "transformers PaliGemmaModel.forward (fp32): the inputs_embeds its language model receives "
                     "(embed_tokens * float32(sqrt(hidden)) for text rows, image features unscaled), with the "
                     "image features from the export's vision_encoder.onnx run by onnxruntime (CPU) passed as "
                     "mm_encoder_outputs, the slow image processor's pixel_values",
        "model": f"models/{export}",
        "hidden_size": hidden,
        "image_token_id": cfg.image_token_index,
        "cases": cases,
    })
    print(f"  inputs_embeds: {len(cases)} cases on {export}", flush=True)


# ---------------------------------------------------------------- mask decoder

MASK_CODES = {
    "zeros": [0] * 16,
    "ramp": list(range(16)),
    "high": list(range(112, 128)),
    "random_a": [int(v) for v in np.random.default_rng(11).integers(0, 128, 16)],
    "random_b": [int(v) for v in np.random.default_rng(12).integers(0, 128, 16)],
}
# (codes, loc bins y0 x0 y1 x1, image width, height): downscale, upscale,
# full frame, odd sizes, a box on the right/bottom edge, a sub-pixel box.
MASK_PLACEMENTS = [
    ("random_a", (100, 200, 700, 900), 200, 150),
    ("random_b", (0, 0, 1023, 1023), 97, 61),
    ("ramp", (512, 256, 1023, 1023), 160, 120),
    ("high", (300, 300, 340, 330), 320, 240),
    ("zeros", (10, 20, 900, 1000), 48, 40),
    ("random_a", (500, 500, 501, 502), 100, 80),
]


def make_maskdecoder(testdata: Path) -> None:
    out_dir = testdata / "goldens" / "maskdecoder"
    npz = testdata / "models" / "vae-oid-random.npz"
    params = vae_oid.load_npz(npz)
    decoded = {}
    cases = []
    for name, codes in MASK_CODES.items():
        raw = vae_oid.decode(params, codes)
        cross = vae_oid.decode_torch(params, codes)
        if float(np.abs(raw - cross).max()) > 1e-4:
            raise SystemExit(f"mask decoder {name}: NumPy and torch disagree")
        decoded[name] = raw
        path = out_dir / f"{name}.64.npy"
        write_npy(path, raw)
        cases.append({"name": name, "codes": codes, "output": rel(path),
                      "min": f32(raw.min()), "max": f32(raw.max()), "positive": int((raw > 0).sum())})
    placements = []
    for i, (name, locs, width, height) in enumerate(MASK_PLACEMENTS):
        box = vae_oid.box_pixels(locs, width, height)
        values = vae_oid.place(decoded[name], box)
        entry = {"codes": name, "locs": list(locs), "width": width, "height": height,
                 "box": {"x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3]}}
        if values is None:
            entry["empty"] = True
        else:
            stem = f"place{i}_{name}"
            write_npy(out_dir / f"{stem}.values.npy", values)
            write_png(out_dir / f"{stem}.binary.png", np.where(values > 0, 255, 0).astype(np.uint8))
            write_png(out_dir / f"{stem}.soft.png", vae_oid.soft_u8(values))
            entry.update(empty=False, values=rel(out_dir / f"{stem}.values.npy"),
                         binary=rel(out_dir / f"{stem}.binary.png"), soft=rel(out_dir / f"{stem}.soft.png"),
                         area=int((values > 0).sum()))
        placements.append(entry)
    write_json(testdata / "goldens" / "maskdecoder.json", {
        "decoder": rel(npz),
        "reference": "NumPy port of big_vision's PaliGemma VQ-VAE decoder (tools/vae_oid.py), cross-checked with torch",
        "box_rule": "x0,y0,x1,y1 = int(x0n*w), int(y0n*h), int(x1n*w), int(y1n*h) with bins/1023 in float64; "
                    "empty when x1 <= x0 or y1 <= y0",
        "resize_rule": "PIL Image.resize((x1-x0, y1-y0), BILINEAR) of the 64x64 float32 output as a mode F image",
        "binary_rule": "value > 0 -> 255 else 0",
        "soft_rule": "uint8(clip(v*0.5+0.5, 0, 1)*255 + 0.5) in float32",
        "decode": cases,
        "placements": placements,
    })


# ---------------------------------------------------------------- parser

def _seg(start: int, n: int = 16) -> str:
    return "".join(f"<seg{(start + i) % 128:03d}>" for i in range(n))


PARSER_CASES = [
    ("detect", ""),
    ("detect", "<loc0051><loc0309><loc0708><loc0646> shoe"),
    ("detect", "<loc0000><loc0000><loc0511><loc0511> red circle ; <loc0512><loc0512><loc1023><loc1023> blue square"),
    ("detect", "<loc0001><loc0002><loc0003><loc0004> cat <loc0005><loc0006><loc0007><loc0008> dog"),
    ("detect", "<loc0001><loc0002><loc0003><loc0004> cat<eos>"),
    ("detect", "<loc0001><loc0002> cat ; <loc0001><loc0002><loc0003><loc0004> dog"),
    ("detect", "<loc0001><loc0002><loc0003><loc0004> ; "),
    ("detect", "<loc0500><loc0002><loc0003><loc0004> cat"),
    ("detect", "<loc1024><loc0000><loc1024><loc0004> cat"),
    ("detect", "a cat on a mat"),
    ("detect", "<loc12><loc0001><loc0002><loc0003><loc0004> cat"),
    ("detect", "<loc0001><loc0002><loc0003><loc0004> cat ; <loc0001><loc0002><loc0003><loc0004> cat"),
    ("detect", " ; ; <loc0100><loc0100><loc0200><loc0200>   big  red   <pad>circle ;;"),
    ("detect", "<loc0100><loc0100><loc0200><loc0200><loc0300> cat"),
    ("detect", "<loc0010><loc0020><loc0030><loc0040> person <end_of_turn>"),
    ("detect", "<loc0010><loc0020><loc0030><loc0040> café ; <loc0050><loc0060><loc0070><loc0080> 犬"),
    ("detect", "<loc0010><loc0020><loc0030><loc0040><seg012> cat"),
    ("detect", "<loc0010><loc0020><loc0030><loc00"),
    ("segment", "<loc0100><loc0200><loc0300><loc0400>" + _seg(10) + " cat"),
    ("segment", "<loc0100><loc0200><loc0300><loc0400>" + _seg(120) + " cat ; <loc0400><loc0300><loc0900><loc0800>"
     + _seg(0) + " dog"),
    ("segment", "<loc0100><loc0200><loc0300><loc0400><seg001><seg002>"),
    ("segment", "<loc0100><loc0200><loc0300><loc0400>" + _seg(5, 17) + " cat"),
    ("segment", "<loc0100><loc0200><loc0300><loc0400>" + _seg(0, 15) + "<seg999> cat"),
    ("segment", "<loc0100><loc0200><loc0300><loc0400>" + _seg(0) + " cat" + "<loc0001><loc0002><loc0003><loc0004>"
     + _seg(1) + " dog"),
    ("segment", "<loc0100><loc0200><loc0300><loc0400>" + _seg(3) + "<eos>"),
    ("segment", "<seg001><seg002> cat ; <loc0000><loc0000><loc1023><loc1023>" + _seg(64) + " background"),
]


def make_parser(testdata: Path) -> None:
    cases = []
    for task, text in PARSER_CASES:
        found, skipped = ref_parser.parse(text)
        cases.append({"task": task, "text": text, "found": found,
                      "skipped": [{"task": task, **s} for s in skipped]})
    write_json(testdata / "goldens" / "parser.json", {
        "reference": "tools/ref_parser.py, mirroring grounding/parse.go (ParseDetections); box_norm = bin/1023",
        "cases": cases,
    })


def make_images(testdata: Path) -> None:
    golden_images.write_all(testdata / "images")


SECTIONS = {
    "images": make_images,
    "preprocess": make_preprocess,
    "models": make_models,
    "inputs_embeds": make_inputs_embeds,
    "maskdecoder": make_maskdecoder,
    "parser": make_parser,
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
