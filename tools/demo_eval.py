"""The demo model's five quality measures on a dev split, in Python.

train_demo_model.py prints these every few hundred steps (the learning
curve in the model card). They mirror TestDemoModelQuality
(demo_quality_test.go), which scores the exported model through the Go
pipeline and NATS on testdata/demo-heldout/; the dev split here is drawn
with its own seed and is never those scenes:

  * prompts: "caption en", and "detect N1 ; N2 ..." / "segment ..." with the
    scene's distinct object names in object order (the test's
    Paliprompt-Objects header); greedy decoding, at most 64 / 128 / 256 new
    tokens (grounding's defaults), stop at eos;
  * detect recall: a detected box counts as found when an unused truth
    object has its exact label and box IoU >= 0.5 (the best such object);
    spurious: detected boxes that match none;
  * caption: its words include every object's shape and colour;
  * mask IoU: each segmented object matched the same way (among segment
    outputs) gets the VQ-VAE decoder's 64x64 output placed in its box
    (corners truncated to pixels, PIL bilinear on a float image, > 0 =
    inside), IoU with the object's true mask over the whole image; mean
    over matched masks;
  * quadrant: of the found objects, the share whose detected box centre is
    in the quadrant of the true box centre.

Boxes decode bins as v / 1023 (REFERENCE.md §5); outputs are parsed by
ref_parser.py, which mirrors grounding/parse.go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

import demo_scenes as scenes
import ref_parser

MAX_NEW_TOKENS = {"caption": 64, "detect": 128, "segment": 256}
MATCH_IOU = 0.5
MEASURES = ("detect_recall", "spurious", "caption", "mask_iou", "quadrant")


def dev_split(seed: int, count: int) -> list[scenes.Scene]:
    """Scenes drawn like the held-out ones (random_scene), with another seed."""
    rng = np.random.default_rng(seed)
    return [scenes.random_scene(rng) for _ in range(count)]


def object_names(scene: scenes.Scene) -> list[str]:
    """Distinct names in object order, as the Go test's header lists them."""
    names: list[str] = []
    for o in scene.objects:
        if o.name not in names:
            names.append(o.name)
    return names


def prompts(scene: scenes.Scene) -> dict[str, str]:
    joined = " ; ".join(object_names(scene))
    return {"caption": "caption en", "detect": f"detect {joined}", "segment": f"segment {joined}"}


# ---------------------------------------------------------------- scoring

def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def parsed_boxes(text: str, w: int, h: int) -> list[tuple[str, tuple[float, float, float, float], list[int] | None]]:
    found, _ = ref_parser.parse(text)
    out = []
    for d in found:
        b = d["box_norm"]
        out.append((d["label"], (b["x0"] * w, b["y0"] * h, b["x1"] * w, b["y1"] * h), d["codes"]))
    return out


def best_match(label: str, box, scene: scenes.Scene, used: set[int]) -> int:
    best, best_iou = -1, MATCH_IOU
    for k, o in enumerate(scene.objects):
        if k in used or o.name != label:
            continue
        iou = box_iou(box, o.box)
        if iou >= best_iou:
            best, best_iou = k, iou
    return best


def quadrant(box, w: int, h: int) -> str:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return ("bottom" if cy >= h / 2 else "top") + "-" + ("right" if cx >= w / 2 else "left")


def caption_names_all(caption: str, scene: scenes.Scene) -> bool:
    words = set(re.split(r"[^a-z]+", caption.lower()))
    return all(o.shape in words and o.colour in words for o in scene.objects)


def placed_mask(raw: np.ndarray, box, w: int, h: int) -> np.ndarray:
    """grounding's placeMask: corners truncated, bilinear resize, > 0."""
    clamp = lambda v, hi: max(0, min(int(v), hi))  # noqa: E731
    x0, y0, x1, y1 = clamp(box[0], w), clamp(box[1], h), clamp(box[2], w), clamp(box[3], h)
    out = np.zeros((h, w), dtype=bool)
    if x1 <= x0 or y1 <= y0:
        return out
    resized = np.asarray(Image.fromarray(raw.astype(np.float32), "F").resize((x1 - x0, y1 - y0), Image.BILINEAR))
    out[y0:y1, x0:x1] = resized > 0
    return out


@dataclass
class Score:
    scenes: int = 0
    objects: int = 0
    found: int = 0
    detections: int = 0
    spurious: int = 0
    captions_ok: int = 0
    quadrants_ok: int = 0
    masks: int = 0
    mask_iou_sum: float = 0.0

    def add(self, scene: scenes.Scene, out: dict[str, str], decode_mask) -> None:
        w, h = scene.image.size
        self.scenes += 1
        self.objects += len(scene.objects)
        self.captions_ok += caption_names_all(out["caption"], scene)
        used: set[int] = set()
        for label, box, _ in parsed_boxes(out["detect"], w, h):
            self.detections += 1
            k = best_match(label, box, scene, used)
            if k < 0:
                self.spurious += 1
                continue
            used.add(k)
            self.found += 1
            self.quadrants_ok += quadrant(box, w, h) == quadrant(scene.objects[k].box, w, h)
        used = set()
        for label, box, codes in parsed_boxes(out["segment"], w, h):
            if codes is None:
                continue
            k = best_match(label, box, scene, used)
            if k < 0:
                continue
            used.add(k)
            pred = placed_mask(decode_mask(codes), box, w, h)
            truth = scene.objects[k].mask
            union = np.logical_or(pred, truth).sum()
            self.masks += 1
            self.mask_iou_sum += float(np.logical_and(pred, truth).sum() / union) if union else 1.0

    def measures(self) -> dict[str, float]:
        ratio = lambda a, b: a / b if b else 0.0  # noqa: E731
        return {"detect_recall": ratio(self.found, self.objects), "spurious": ratio(self.spurious, self.detections),
                "caption": ratio(self.captions_ok, self.scenes), "mask_iou": ratio(self.mask_iou_sum, self.masks),
                "quadrant": ratio(self.quadrants_ok, self.found)}

    def line(self) -> str:
        m = self.measures()
        return (f"detect {m['detect_recall']:.3f} ({self.found}/{self.objects}) spurious {m['spurious']:.3f} "
                f"({self.spurious}/{self.detections}) caption {m['caption']:.3f} mask IoU {m['mask_iou']:.3f} "
                f"({self.masks}) quadrant {m['quadrant']:.3f}")


def vae_decoder(vae) -> callable:
    def decode(codes: list[int]) -> np.ndarray:
        with torch.no_grad():
            return vae.decode(torch.tensor([codes]))[0].numpy()
    return decode


# ---------------------------------------------------------------- decoding

@torch.no_grad()
def greedy_torch(model, vocab, pixel_values: np.ndarray, prefixes: list[str], max_new: int,
                 device: str = "cpu") -> list[str]:
    """Greedy generation with transformers for one left-padded batch of
    (image, prefix) rows; texts decoded like grounding does (eos dropped,
    special tokens skipped, loc/seg tokens kept, trimmed)."""
    rows = [[vocab.image] * vocab.image_tokens + [vocab.bos] + vocab.encode(p) + [vocab.newline] for p in prefixes]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), vocab.pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = torch.tensor(r)
        mask[i, length - len(r):] = 1
    out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                         token_type_ids=torch.zeros_like(ids).to(device),
                         pixel_values=torch.from_numpy(pixel_values).to(device), max_new_tokens=max_new,
                         do_sample=False, eos_token_id=vocab.eos, pad_token_id=vocab.pad)
    texts = []
    for row in out[:, length:].tolist():
        if vocab.eos in row:
            row = row[:row.index(vocab.eos)]
        texts.append(vocab.tok.decode(row, skip_special_tokens=True).strip())
    return texts


class DevSet:
    """A dev split with its inputs prepared once."""

    def __init__(self, seed: int, count: int, pixel_values):
        self.scenes = dev_split(seed, count)
        self.pixels = np.stack([pixel_values(s.image) for s in self.scenes])
        self.prompts = [prompts(s) for s in self.scenes]

    def evaluate(self, generate, decode_mask, batch: int = 16) -> Score:
        """generate(pixels [B,3,H,W], prefixes, max_new) -> texts."""
        outs = [dict() for _ in self.scenes]
        for task, max_new in MAX_NEW_TOKENS.items():
            for start in range(0, len(self.scenes), batch):
                idx = range(start, min(start + batch, len(self.scenes)))
                texts = generate(self.pixels[list(idx)], [self.prompts[i][task] for i in idx], max_new)
                for i, t in zip(idx, texts):
                    outs[i][task] = t
        score = Score()
        for scene, out in zip(self.scenes, outs):
            score.add(scene, out, decode_mask)
        self.outputs = outs
        return score


def ort_generator(folder):
    """generate() for an exported folder, through ort_generate.py (a Python
    model of the Go runtime): one image per call, its rows batched."""
    import ort_generate
    model = ort_generate.OrtPaliGemma(folder)

    def generate(pixels, prefixes, max_new):
        texts = []
        for px, p in zip(pixels, prefixes):
            ids = model.generate(px, [p], max_new)[0].generated
            if ids and ids[-1] in model.eos:
                ids = ids[:-1]
            texts.append(model.tokenizer.decode(ids, skip_special_tokens=True).strip())
        return texts
    return generate
