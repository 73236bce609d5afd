"""Synthetic scenes for the bundled demo model.

A scene is 1-4 upright shapes in named colours on a plain, gradient or noisy
background, with exact boxes and masks. The demo model is trained on scenes
drawn on the fly (train_demo_model.py) and judged on held-out scenes drawn
with another seed (written to testdata/demo-heldout/ for the Go end-to-end
test). Everything is a pure function of a numpy Generator: same seed, same
scenes.

Targets follow PaliGemma's own formats (REFERENCE.md §5-6):
  caption en            -> "a red circle above a blue square"
  detect A ; B          -> "<locY0><locX0><locY1><locX1> A ; ..."
  segment A ; B         -> "<loc..>x4<segNNN>x16 A ; ..."
(detect/segment: the asked objects left to right; nothing for an absent name).
Location bins are round(coord / size * 1023), the inverse of the v/1023
decoding paliprompt uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "star", "diamond")

# Saturated colours; backgrounds are greys or faint tints, so a shape never
# disappears into its background.
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
}

# Canvas sizes (width, height): square ones most often, so most scenes need
# no aspect change on the way to the model's 448x448 input.
SIZES = ((448, 448), (448, 448), (512, 512), (640, 480), (480, 640), (800, 600), (600, 800))

MIN_SIDE, MAX_SIDE = 0.14, 0.36  # shape size as a fraction of the shorter side


@dataclass
class SceneObject:
    shape: str
    colour: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    mask: np.ndarray = field(repr=False)  # bool, H x W

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass
class Scene:
    image: Image.Image
    objects: list[SceneObject]
    background: str


def shape_polygon(shape: str, x0: float, y0: float, side: float) -> list[tuple[float, float]] | None:
    """Polygon of an upright shape in a side x side square at (x0, y0); None for the circle."""
    cx, cy, r = x0 + side / 2, y0 + side / 2, side / 2
    if shape == "square":
        return [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side)]
    if shape == "triangle":
        return [(cx, y0), (x0 + side, y0 + side), (x0, y0 + side)]
    if shape == "diamond":
        return [(cx, y0), (x0 + side, cy), (cx, y0 + side), (x0, cy)]
    if shape == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    return None


def draw_background(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, str]:
    kind = ("plain", "gradient", "noise")[rng.integers(3)]
    base = rng.integers(40, 216)
    tint = rng.integers(-12, 13, size=3)
    c0 = np.clip(base + tint, 0, 255)
    if kind == "plain":
        arr = np.broadcast_to(c0, (h, w, 3)).astype(np.float32)
    elif kind == "gradient":
        c1 = np.clip(rng.integers(40, 216) + rng.integers(-12, 13, size=3), 0, 255)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        arr = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    else:
        sigma = rng.uniform(8, 24)
        arr = c0[None, None, :] + rng.normal(0, sigma, size=(h, w, 1))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if kind == "noise":
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    return img, kind


def place_boxes(rng: np.random.Generator, w: int, h: int, n: int) -> list[tuple[float, float, float]]:
    """Up to n non-overlapping squares (x0, y0, side), with a gap between them."""
    short = min(w, h)
    placed: list[tuple[float, float, float]] = []
    for _ in range(200):
        if len(placed) == n:
            break
        side = rng.uniform(MIN_SIDE, MAX_SIDE) * short
        x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        gap = 0.02 * short
        if all(x0 + side + gap < px or px + ps + gap < x0 or y0 + side + gap < py or py + ps + gap < y0
               for px, py, ps in placed):
            placed.append((x0, y0, side))
    return placed


def random_scene(rng: np.random.Generator, size: tuple[int, int] | None = None, max_objects: int = 4) -> Scene:
    w, h = size or SIZES[rng.integers(len(SIZES))]
    img, background = draw_background(rng, w, h)
    draw = ImageDraw.Draw(img)
    objects = []
    for x0, y0, side in place_boxes(rng, w, h, int(rng.integers(1, max_objects + 1))):
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        rgb = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in COLOURS[colour])
        mask_img = Image.new("L", (w, h), 0)
        mask_draw = ImageDraw.Draw(mask_img)
        poly = shape_polygon(shape, x0, y0, side)
        if poly is None:
            bbox = (x0, y0, x0 + side, y0 + side)
            draw.ellipse(bbox, fill=rgb)
            mask_draw.ellipse(bbox, fill=255)
        else:
            draw.polygon(poly, fill=rgb)
            mask_draw.polygon(poly, fill=255)
        mask = np.asarray(mask_img) > 127
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        # The box is the tight box of the drawn pixels (pixel edges).
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        objects.append(SceneObject(shape, colour, box, mask))
    return Scene(img, objects, background)


def _article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def caption(scene: Scene) -> str:
    """'a red circle above a blue square'; three or more shapes listed left to right."""
    objs = scene.objects
    if len(objs) == 1:
        return _article(objs[0].name)
    if len(objs) == 2:
        a, b = objs
        (ax, ay), (bx, by) = a.centre, b.centre
        if abs(ay - by) > abs(ax - bx):
            first, second = (a, b) if ay < by else (b, a)
            relation = "above"
        else:
            first, second = (a, b) if ax < bx else (b, a)
            relation = "to the left of"
        return f"{_article(first.name)} {relation} {_article(second.name)}"
    names = [_article(o.name) for o in sorted(objs, key=lambda o: o.centre[0])]
    return ", ".join(names[:-1]) + " and " + names[-1]


def loc_tokens(box, w: int, h: int) -> str:
    x0, y0, x1, y1 = box
    bins = [round(y0 / h * 1023), round(x0 / w * 1023), round(y1 / h * 1023), round(x1 / w * 1023)]
    return "".join(f"<loc{min(max(b, 0), 1023):04d}>" for b in bins)


def hard_negatives(scene: Scene) -> dict[str, list[str]]:
    """Absent names that a model reading only one attribute would answer:
    the shape of a present object in another colour, the colour of a
    present object on another shape, and the colour of one present object
    with the shape of another (both attributes are in the picture, never
    on one object)."""
    present = {o.name for o in scene.objects}
    absent = lambda names: sorted(set(n for n in names if n not in present))  # noqa: E731
    objs = scene.objects
    return {
        "same_shape": absent(f"{c} {o.shape}" for o in objs for c in COLOURS),
        "same_colour": absent(f"{o.colour} {s}" for o in objs for s in SHAPES),
        "swapped": absent(f"{a.colour} {b.shape}" for a in objs for b in objs if a is not b),
        "any": absent(f"{c} {s}" for c in COLOURS for s in SHAPES),
    }


# How many absent names a training prompt asks for (0, 1, 2), and which
# kind each is. Absent names are the only way to learn that a name must
# match colour AND shape: with all names present, reading the shape is
# almost always enough.
ABSENT_COUNT_P = (0.4, 0.4, 0.2)
NEGATIVE_KIND_P = {"same_shape": 0.35, "same_colour": 0.3, "swapped": 0.25, "any": 0.1}


def detection_prompt_names(rng: np.random.Generator, scene: Scene) -> list[str]:
    """Names to ask for in training: the scene's names (sometimes a subset,
    so present objects that are not asked for must be left out), and in 60%
    of prompts one or two absent names, mostly hard negatives
    (hard_negatives). The answer to an absent name is nothing, as in
    PaliGemma."""
    present = sorted({o.name for o in scene.objects})
    names = list(present)
    if len(names) > 1 and rng.random() < 0.25:
        k = int(rng.integers(1, len(names)))
        names = [str(n) for n in rng.choice(names, size=k, replace=False)]
    negatives = hard_negatives(scene)
    kinds, kind_p = list(NEGATIVE_KIND_P), np.array(list(NEGATIVE_KIND_P.values()))
    for _ in range(int(rng.choice(len(ABSENT_COUNT_P), p=ABSENT_COUNT_P))):
        kind = kinds[int(rng.choice(len(kinds), p=kind_p))]
        pool = [n for n in negatives[kind] if n not in names] or [n for n in negatives["any"] if n not in names]
        names.append(pool[int(rng.integers(len(pool)))])
    rng.shuffle(names)
    return names


def detection_target(scene: Scene, names: list[str], codes: dict[int, list[int]] | None = None) -> str:
    """Every object whose name was asked for, once, left to right (by box
    centre, as captions list them), whatever the order of the names in the
    prompt; codes add <seg> tokens. The decoder then walks the picture
    instead of the prompt: each object is written at most once, under the
    name read from the object itself, and an asked name that is absent
    simply never comes up."""
    w, h = scene.image.size
    asked = set(names)
    parts = []
    for i, o in sorted(((i, o) for i, o in enumerate(scene.objects) if o.name in asked),
                       key=lambda io: io[1].centre[0]):
        seg = "".join(f"<seg{c:03d}>" for c in codes[i]) if codes is not None else ""
        parts.append(f"{loc_tokens(o.box, w, h)}{seg} {o.name}")
    return " ; ".join(parts)


def left_to_right_rank(scene: Scene) -> list[int]:
    """Each object's place from the left (0 = leftmost, by box centre), the
    order captions and detect/segment answers list objects in."""
    order = sorted(range(len(scene.objects)), key=lambda i: scene.objects[i].centre[0])
    rank = [0] * len(order)
    for r, i in enumerate(order):
        rank[i] = r
    return rank


def mask_crop(obj: SceneObject, size: int = 64) -> np.ndarray:
    """The object's mask inside its box, resized to size x size, as float 0/1."""
    x0, y0, x1, y1 = (int(v) for v in obj.box)
    crop = Image.fromarray((obj.mask[y0:y1, x0:x1] * 255).astype(np.uint8), "L")
    return np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0


def vocabulary() -> list[str]:
    """Words the demo model reads and writes, beyond the tiny tokenizer's own."""
    words = set(SHAPES) | set(COLOURS)
    words |= {"a", "an", "and", "above", "to", "the", "left", "of", ",", ";",
              "caption", "detect", "segment", "en"}
    return sorted(words)


def write_examples(folder, seed: int, count: int) -> None:
    """Example scenes for `make demo` (the demo model's own kind of image)."""
    from pathlib import Path
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        scene = random_scene(rng, size=SIZES[(i + 2) % len(SIZES)])
        scene.image.save(folder / f"shapes-{i + 1}.png", optimize=True)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="write example scenes for the demo")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--count", type=int, default=4)
    a = ap.parse_args()
    write_examples(a.out, a.seed, a.count)
