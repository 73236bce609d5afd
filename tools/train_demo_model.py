"""Trains the bundled demo model: a small PaliGemma 2 that really grounds shapes.

    python tools/train_demo_model.py [--steps N] [--out models/demo-shapes]

A PaliGemma 2 architecture (SigLIP-style ViT at 448 px, Gemma 2 decoder with
softcaps, the tiny tokenizer) small enough to train on a 2-core CPU within an
hour, on synthetic scenes drawn on the fly (demo_scenes.py): caption en,
detect and segment in PaliGemma's own output formats. Segmentation codes come
from a small VQ-VAE whose decoder has big_vision's architecture (demo_vae.py),
saved as vae-oid.npz beside the model.

Four deliberate choices make so small a budget enough, none of which changes
the architecture the runtime sees:
  * patch 28 instead of 14: 16x16 = 256 image tokens at 448 px (config.json
    says so; paliprompt reads the image token count from it), four times
    fewer than the real model's 1024;
  * the <locNNNN> embeddings (tied with the output head) start as sinusoids of
    the bin value, and loc targets are partly Gaussian-smoothed over nearby
    bins, so a near miss is a small error instead of a wrong class;
  * the ViT position embeddings start as 2-D sin-cos, so patches know where
    they are from the first step;
  * during training only, a head on the image features names each patch's
    colour, shape and box (four loc bins) by scoring the model's own token
    embeddings: 256 dense labels per image instead of a few target tokens,
    and image features that point at the tokens the decoder must write, so
    its job becomes matching and copying. The head is not exported.

The first location token of each object (where the decoder picks which
object it writes) weighs FIRST_LOC_WEIGHT times the others in the loss.

Seeded: the same steps on the same torch build and thread count are expected
to give the same weights (not checked bit for bit). The model is exported through export_paligemma.py (fp32) and a
model card is written beside it. Held-out scenes for the quality bar (another
seed) go to testdata/demo-heldout/.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_scenes as scenes  # noqa: E402
import demo_vae  # noqa: E402
import tiny_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SIZE, PATCH, HIDDEN = 448, 28, 192
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH) ** 2
FIRST_LOC_WEIGHT = 3.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- tokens

class Vocab:
    """Ids the training loop needs, all read from the tokenizer."""

    def __init__(self, tok):
        self.tok = tok
        self.bos = tok.token_to_id("<bos>")
        self.eos = tok.token_to_id("<eos>")
        self.pad = tok.token_to_id("<pad>")
        self.image = tok.token_to_id("<image>")
        self.newline = tok.token_to_id("\n")
        self.loc0 = tok.token_to_id("<loc0000>")
        self.seg0 = tok.token_to_id("<seg000>")
        self.size = tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def is_loc(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.loc0) & (ids < self.loc0 + 1024)


# ---------------------------------------------------------------- data

def pixel_values(img: Image.Image) -> np.ndarray:
    """HF slow SigLIP preprocessing: PIL bicubic to 448, /255, (x-0.5)/0.5, CHW."""
    arr = np.asarray(img.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC), dtype=np.float64)
    arr = (arr * (1 / 255)).astype(np.float32)
    return ((arr - 0.5) / 0.5).transpose(2, 0, 1).copy()


TASKS = ("caption", "detect", "segment")


def task_examples(rng: np.random.Generator, scene: scenes.Scene, vae: demo_vae.MaskVQVAE) -> list[tuple[str, str]]:
    """One (prefix, suffix) pair per task for the scene: the vision encoder
    runs once per image in training too, and all three tasks learn from it."""
    crops = torch.from_numpy(np.stack([scenes.mask_crop(o) for o in scene.objects]))
    with torch.no_grad():
        codes = dict(enumerate(vae.encode(crops).tolist()))
    pairs = [("caption en", scenes.caption(scene))]
    for task, task_codes in (("detect", None), ("segment", codes)):
        names = scenes.detection_prompt_names(rng, scene)
        pairs.append((f"{task} {' ; '.join(names)}", scenes.detection_target(scene, names, task_codes)))
    return pairs


def patch_labels(scene: scenes.Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patch: colour and shape class (0 = background) of the object that
    covers most of a 4x4 grid of points inside the patch (at least 4 of 16:
    small shapes still claim their patch), and that object's box as
    fractions of the image (x0, y0, x1, y1)."""
    w, h = scene.image.size
    side = IMAGE_SIZE // PATCH
    sub = (np.arange(side * 4) + 0.5) / (side * 4)
    ys, xs = (sub * h).astype(int), (sub * w).astype(int)
    hits = np.stack([o.mask[np.ix_(ys, xs)].reshape(side, 4, side, 4).sum(axis=(1, 3)) for o in scene.objects])
    best = hits.argmax(0)
    covered = hits.max(0) >= 4
    colours = list(scenes.COLOURS)
    colour = np.zeros((side, side), dtype=np.int64)
    shape = np.zeros((side, side), dtype=np.int64)
    box = np.zeros((side, side, 4), dtype=np.float32)
    for k, o in enumerate(scene.objects):
        inside = covered & (best == k)
        colour[inside] = colours.index(o.colour) + 1
        shape[inside] = scenes.SHAPES.index(o.shape) + 1
        x0, y0, x1, y1 = o.box
        box[inside] = (x0 / w, y0 / h, x1 / w, y1 / h)
    return colour.reshape(-1), shape.reshape(-1), box.reshape(-1, 4)


class AlignedHead(torch.nn.Module):
    """Training-only dense objective (not exported). For every patch covered
    by an object, one linear map per slot turns the image feature into a
    vector scored against the model's token embeddings: the colour and shape
    words ("▁red", "▁star") and the four location tokens of the object's
    box; every patch also predicts whether an object covers it."""

    SLOTS = ("colour", "shape", "y0", "x0", "y1", "x1")

    def __init__(self, hidden: int, vocab: Vocab):
        super().__init__()
        self.proj = torch.nn.ModuleDict({s: torch.nn.Linear(hidden, hidden) for s in self.SLOTS})
        self.objectness = torch.nn.Linear(hidden, 1)
        word = lambda w: vocab.tok.token_to_id(tiny_tokenizer.SPACE + w)  # noqa: E731
        self.register_buffer("colour_ids", torch.tensor([word(c) for c in scenes.COLOURS]))
        self.register_buffer("shape_ids", torch.tensor([word(s) for s in scenes.SHAPES]))
        self.loc0 = vocab.loc0

    def loss(self, features, embeddings, colour, shape, box) -> torch.Tensor:
        features = features.float()
        covered = colour > 0
        loss = F.binary_cross_entropy_with_logits(self.objectness(features)[..., 0], covered.float())
        f = features[covered]
        if f.shape[0] == 0:
            return loss
        score = lambda slot, ids: self.proj[slot](f) @ embeddings[ids].float().T  # noqa: E731
        loss = loss + F.cross_entropy(score("colour", self.colour_ids), colour[covered] - 1)
        loss = loss + F.cross_entropy(score("shape", self.shape_ids), shape[covered] - 1)
        bins = (box[covered] * 1023).round().long()  # x0, y0, x1, y1
        locs = torch.arange(self.loc0, self.loc0 + 1024, device=f.device)
        for slot, column in (("y0", 1), ("x0", 0), ("y1", 3), ("x1", 2)):
            loss = loss + loc_cross_entropy(F.log_softmax(score(slot, locs), -1), bins[:, column]).mean() / 4
        return loss


def loc_cross_entropy(logp_bins: torch.Tensor, bins: torch.Tensor, sigma: float = 6.0) -> torch.Tensor:
    """Cross-entropy over the 1024 location bins against 60% the exact bin
    and 40% a Gaussian over its neighbours: a near miss costs little."""
    grid = torch.arange(1024, dtype=torch.float32, device=bins.device)
    q = torch.exp(-0.5 * ((grid[None, :] - bins[:, None].float()) / sigma) ** 2)
    q = q / q.sum(1, keepdim=True)
    exact = -logp_bins.gather(1, bins[:, None])[:, 0]
    return 0.6 * exact - 0.4 * (q * logp_bins).sum(1)


class SceneStream(torch.utils.data.IterableDataset):
    """Endless (pixel_values, [(prompt, target)] per task, patch labels) from
    fresh scenes: the first easy_scenes scenes have at most two shapes (a
    curriculum: learn to read one place before telling objects apart)."""

    def __init__(self, seed: int, vocab: Vocab, vae: demo_vae.MaskVQVAE, easy_scenes: int = 0):
        self.seed, self.vocab, self.vae, self.easy_scenes = seed, vocab, vae, easy_scenes

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        torch.set_num_threads(1)
        v = self.vocab
        count = 0
        while True:
            count += 1
            scene = scenes.random_scene(rng, max_objects=2 if count <= self.easy_scenes else 4)
            if not scene.objects:
                continue
            sequences = []
            for prefix, suffix in task_examples(rng, scene, self.vae):
                prompt = [v.image] * NUM_IMAGE_TOKENS + [v.bos] + v.encode(prefix) + [v.newline]
                sequences.append((prompt, v.encode(suffix) + [v.eos]))
            yield (pixel_values(scene.image), sequences) + patch_labels(scene)


def collate(batch, pad_id: int):
    """Images, and their task sequences right-padded (row i*len(TASKS)+t is
    task t of image i); prompt positions get token type 0 and no loss."""
    seqs = [seq for b in batch for seq in b[1]]
    length = max(len(p) + len(t) for p, t in seqs)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    types = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for i, (p, t) in enumerate(seqs):
        n = len(p) + len(t)
        ids[i, :n] = torch.tensor(p + t)
        types[i, :len(p)] = 0
        labels[i, len(p):n] = torch.tensor(t)
        mask[i, :n] = 1
    stack = lambda k: torch.from_numpy(np.stack([b[k] for b in batch]))  # noqa: E731
    return stack(0), ids, types, labels, mask, stack(2), stack(3), stack(4)


# ---------------------------------------------------------------- model

def model_config(vocab: Vocab):
    from transformers import PaliGemmaConfig
    hidden = HIDDEN
    return PaliGemmaConfig(
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=hidden, intermediate_size=3 * hidden,
            num_hidden_layers=4, num_attention_heads=4, patch_size=PATCH, image_size=IMAGE_SIZE,
            vision_use_head=False, layer_norm_eps=1e-6),
        text_config=dict(
            model_type="gemma2", hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4, query_pre_attn_scalar=hidden // 4,
            vocab_size=vocab.size, max_position_embeddings=8192, sliding_window=4096,
            attn_logit_softcapping=50.0, final_logit_softcapping=30.0, hidden_activation="gelu_pytorch_tanh",
            bos_token_id=vocab.bos, eos_token_id=vocab.eos, pad_token_id=vocab.pad),
        image_token_index=vocab.image, vocab_size=vocab.size, projection_dim=hidden, hidden_size=hidden,
        bos_token_id=vocab.bos, eos_token_id=vocab.eos, pad_token_id=vocab.pad)


def sincos(positions: torch.Tensor, dim: int, max_period: float) -> torch.Tensor:
    """[N] positions in 0..1 -> [N, dim] sin/cos features at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0, math.log(max_period), half))
    angles = positions[:, None] * freqs[None, :] * math.pi
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def init_spatial(model, vocab: Vocab) -> None:
    """Smooth starting points for location tokens and patch positions."""
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        dim = emb.shape[1]
        bins = torch.arange(1024, dtype=torch.float32) / 1023
        emb[vocab.loc0:vocab.loc0 + 1024] = sincos(bins, dim, 256.0) * emb.std() * 2
        pos = model.model.vision_tower.embeddings.position_embedding.weight
        side = IMAGE_SIZE // PATCH
        yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        half = pos.shape[1] // 2
        feats = torch.cat([sincos(yy.flatten() / (side - 1), half, side), sincos(xx.flatten() / (side - 1), half, side)], 1)
        pos.copy_(feats * 0.5)


def soft_loss(logits: torch.Tensor, labels: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """Cross-entropy over the suffix; loc targets are smoothed (loc_cross_entropy)."""
    logits = logits[:, :-1].float()
    labels = labels[:, 1:]
    keep = labels != -100
    logp = F.log_softmax(logits[keep], dim=-1)
    target = labels[keep]
    nll = -logp.gather(1, target[:, None])[:, 0]
    is_loc = vocab.is_loc(target)
    if is_loc.any():
        nll = nll.clone()
        nll[is_loc] = loc_cross_entropy(logp[is_loc][:, vocab.loc0:vocab.loc0 + 1024], target[is_loc] - vocab.loc0)
    # The first location token of an object is where the model picks which
    # object it writes (matching the asked name against the image); the
    # other three mostly follow from it, so it weighs more.
    before = labels.roll(1, dims=1)[keep]
    first = is_loc & ~vocab.is_loc(before)
    weight = 1.0 + (FIRST_LOC_WEIGHT - 1.0) * first.float()
    return (nll * weight).sum() / weight.sum()


# ---------------------------------------------------------------- training

def scene_loader(seed: int, vocab: Vocab, vae, batch: int, easy_scenes: int = 0):
    return torch.utils.data.DataLoader(SceneStream(seed, vocab, vae, easy_scenes), batch_size=batch, num_workers=1,
                                       collate_fn=lambda b: collate(b, vocab.pad), prefetch_factor=4)


def optimizer(named, lr: float, steps: int):
    """AdamW (no decay on embeddings, norms, biases) with warm-up and a cosine to 5%."""
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    warmup = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    return opt, sched


def run_steps(name: str, steps: int, loader, params, lr: float, loss_fn, bf16: bool) -> None:
    """The shared loop: autocast (bfloat16 matmuls, float32 weights), clipping, logging."""
    opt, sched = optimizer(params, lr, steps)
    start, ema = time.time(), None
    for step, batch in enumerate(loader):
        if step >= steps:
            break
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            parts = loss_fn(batch)
        loss = sum(parts.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        opt.step()
        sched.step()
        now = np.array([v.item() for v in parts.values()])
        ema = now if ema is None else 0.98 * ema + 0.02 * now
        if step % 50 == 0 or step == steps - 1:
            el = time.time() - start
            losses = " ".join(f"{k} {v:.3f}" for k, v in zip(parts, ema))
            log(f"{name} step {step}/{steps} {losses} lr {sched.get_last_lr()[0]:.2e} "
                f"{(step + 1) * batch[0].shape[0] / el:.1f} images/s, eta {el / (step + 1) * (steps - step - 1) / 60:.1f} min")


def train(args, vocab: Vocab, vae: demo_vae.MaskVQVAE):
    from transformers import PaliGemmaForConditionalGeneration
    from transformers.modeling_outputs import BaseModelOutputWithPooling
    torch.manual_seed(args.seed)
    model = PaliGemmaForConditionalGeneration(model_config(vocab))
    init_spatial(model, vocab)
    model.train()
    head = AlignedHead(model.config.text_config.hidden_size, vocab)
    embeddings = model.get_input_embeddings().weight
    log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
        f"{NUM_IMAGE_TOKENS} image tokens")

    def patch_loss(batch):
        px, colour, shape, box = batch[0], batch[5], batch[6], batch[7]
        return head.loss(model.model.get_image_features(px).pooler_output, embeddings, colour, shape, box)

    # Stage 1: the vision encoder alone on the dense patch objective (the
    # token embeddings it scores against learn with it).
    vision_params = [(n, p) for n, p in model.named_parameters()
                     if "vision_tower" in n or "projector" in n or "embed_tokens" in n]
    run_steps("vision", args.vision_steps, scene_loader(args.seed, vocab, vae, 2 * args.batch),
              vision_params + list(head.named_parameters()), args.lr, lambda b: {"patch": patch_loss(b)}, args.bf16)

    # Stage 2: the decoder (and projector) on all three tasks, each image's
    # features shared by its tasks, the patch objective still on so the
    # features stay aligned with the embeddings. The vision tower stays
    # frozen, so the decoder learns to read features that no longer move.
    tower = model.model.vision_tower
    tower.requires_grad_(False)

    def full_loss(batch):
        px, ids, types, labels, mask, colour, shape, box = batch
        with torch.no_grad():
            hidden = tower(px).last_hidden_state
        features = model.model.multi_modal_projector(hidden)
        aux = head.loss(features, embeddings, colour, shape, box)
        vision = BaseModelOutputWithPooling(pooler_output=features.repeat_interleave(len(TASKS), dim=0))
        # Logits only from the last prompt position on: the image positions
        # need none, and the output head is a sixth of the step's work.
        keep = ids.shape[1] - int((types == 0).sum(1).min()) + 1
        out = model(input_ids=ids, mm_encoder_outputs={"image": vision}, token_type_ids=types, attention_mask=mask,
                    logits_to_keep=keep)
        return {"lm": soft_loss(out.logits, labels[:, -keep:], vocab), "patch": args.aux_weight * aux}

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad] + list(head.named_parameters())
    run_steps("full", args.steps, scene_loader(args.seed + 1, vocab, vae, args.batch, args.steps * args.batch // 4),
              trainable, args.decoder_lr, full_loss, args.bf16)
    tower.requires_grad_(True)
    return model.eval()


# ---------------------------------------------------------------- output

def save_checkpoint(model, tok, folder: Path) -> None:
    """A Hugging Face PaliGemma folder the exporter reads like any other."""
    model.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SiglipImageProcessor", "processor_class": "PaliGemmaProcessor",
        "do_resize": True, "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "resample": 3,
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": True,
        "image_seq_length": NUM_IMAGE_TOKENS}, indent=2))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GemmaTokenizerFast", "bos_token": "<bos>", "eos_token": "<eos>",
        "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": False, "add_eos_token": False}, indent=2))


def write_heldout(folder: Path, seed: int, count: int) -> None:
    """Held-out scenes (another seed) with their truth, for the Go quality test.
    Images are JPEG (quality 90): compact, and what users mostly send."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = []
    for i in range(count):
        scene = scenes.random_scene(rng)
        name = f"scene-{i:03d}"
        scene.image.save(folder / f"{name}.jpg", quality=90)
        labels = np.zeros(scene.image.size[::-1], dtype=np.uint8)
        for k, o in enumerate(scene.objects):
            labels[o.mask] = k + 1
        Image.fromarray(labels, "L").save(folder / f"{name}.objects.png", optimize=True)
        truth.append({"image": f"{name}.jpg", "objects_png": f"{name}.objects.png", "caption": scenes.caption(scene),
                      "width": scene.image.size[0], "height": scene.image.size[1],
                      "objects": [{"name": o.name, "shape": o.shape, "colour": o.colour, "box": list(o.box),
                                   "mask_value": k + 1} for k, o in enumerate(scene.objects)]})
    (folder / "truth.json").write_text(json.dumps({"seed": seed, "scenes": truth}, indent=1))



MODEL_CARD = """# paliprompt demo model: shapes

A small PaliGemma 2 (SigLIP-style vision encoder at 448 px, Gemma 2 decoder
with softcaps and the sliding-window layout, {params:.1f} M parameters,
{tokens} image tokens) trained from scratch on a 2-core CPU in
{minutes:.0f} minutes by `tools/train_demo_model.py` (seed {seed}), so that
`make demo` shows the whole pipeline on real model output without a
multi-GB download. It is not PaliGemma and knows nothing about photographs.

## Trained on

Synthetic scenes drawn on the fly (`tools/demo_scenes.py`): 1-4 upright
shapes ({shapes}) in {colours}, sides 14-36% of the shorter image side,
never overlapping, on plain, gradient or noisy grey backgrounds, in seven
canvas sizes from 448x448 to 800x600. {images} images in all; each taught
three tasks in PaliGemma's own formats:

- `caption en` -> "a red circle above a blue square" (two shapes: above /
  to the left of; three or four: listed left to right);
- `detect red circle ; blue square` -> `<locY0><locX0><locY1><locX1> red circle ; ...`
  (sometimes a subset of the names, sometimes an absent one);
- `segment ...` -> the same with 16 `<segNNN>` codes per object, from a
  small VQ-VAE trained here whose decoder has big_vision's architecture
  and `vae-oid.npz` layout (so paliprompt's mask decoder runs it unchanged;
  its 128 codes mean nothing to the real `vae-oid.npz`).

Recipe: {vision_steps} steps of the vision encoder alone on a dense,
training-only patch objective (colour, shape and box of the object under
each patch, scored against the model's own token embeddings), then
{steps} steps of the decoder and projector on the three tasks with the
vision encoder frozen; bfloat16 autocast; details in the script's
docstring.

## What it can and cannot do

Measured through the Go pipeline and NATS on 60 held-out scenes with 142
shapes (another seed, `testdata/demo-heldout/`; `make quality` prints
these), against the bar its issue set:

| measure | this model | bar |
|---|---|---|
| detect: shapes found (IoU >= 0.5, right name) | 0.542 | >= 0.90 |
| detect: spurious boxes | 0.430 | <= 0.05 |
| caption names every shape and colour | 0.533 | >= 0.90 |
| segment: mean mask IoU | 0.648 | >= 0.70 |
| quadrant of each found shape | 0.974 | >= 0.95 |

So it misses the bar on everything but quadrants: within an hour on two
CPU cores this recipe gets about half-way. Its boxes are coarse (a 448 px
image is 16x16 patches of 28 px here), and a wrong box or a wrong colour
in the caption is common. Segmentation is shipped
although it misses 0.70: box-shaped masks would do worse on these shapes
(0.608 even with the true boxes). Treat its output as a demonstration of
the data flow, not of PaliGemma's accuracy. It cannot answer questions,
read text or name anything but the five shapes and six colours above;
style questions are off by default for that reason.

## Files

The model folder is a regular paliprompt export (below), plus
`vae-oid.npz`. Regenerate everything (this folder, the held-out scenes and
`examples/scenes/`) with `make venv && .venv/bin/python
tools/train_demo_model.py` (48.5 minutes here). Scenes and weights are
seeded throughout; the same torch build and thread count are expected to
give the same weights, which has not been checked bit for bit.

"""


def write_model_card(folder: Path, args, params: float, minutes: float, images: int) -> None:
    """Puts the model card above the exporter's README (the export facts)."""
    export = (folder / "README.md").read_text()
    card = MODEL_CARD.format(
        params=params, tokens=NUM_IMAGE_TOKENS, minutes=minutes, seed=args.seed,
        shapes=", ".join(scenes.SHAPES), colours=", ".join(scenes.COLOURS), images=images,
        vision_steps=args.vision_steps, steps=args.steps)
    export = re.sub(r"^# \S+ \(", "## Export (", export, count=1)
    (folder / "README.md").write_text(card + export)

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2400, help="steps of the second stage (decoder)")
    ap.add_argument("--batch", type=int, default=8, help="images per step (each gives one sequence per task)")
    ap.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate of the first stage")
    ap.add_argument("--aux-weight", type=float, default=1.0, help="weight of the training-only patch objective")
    ap.add_argument("--vision-steps", type=int, default=1500, help="steps of the vision-only first stage")
    ap.add_argument("--decoder-lr", type=float, default=2e-3, help="peak learning rate of the second stage")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false",
                    help="train in float32 (default: bfloat16 autocast, float32 weights)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vae-steps", type=int, default=600)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "demo-shapes")
    ap.add_argument("--checkpoint", type=Path, help="also keep the Hugging Face checkpoint here")
    ap.add_argument("--heldout", type=Path, default=ROOT / "testdata" / "demo-heldout")
    ap.add_argument("--heldout-count", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()

    tok = tiny_tokenizer.build(sorted(set(tiny_tokenizer.WORDS) | set(scenes.vocabulary())))
    vocab = Vocab(tok)

    rng = np.random.default_rng(args.seed + 1)
    crops = []
    while len(crops) < 1500:
        crops += [scenes.mask_crop(o) for o in scenes.random_scene(rng).objects]
    vae = demo_vae.train_vae(np.stack(crops), args.vae_steps, args.seed, log=log)

    model = train(args, vocab, vae)

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or Path(tmp) / "checkpoint"
        save_checkpoint(model, tok, ckpt)
        # Beside the checkpoint too: a failed export can be redone from it.
        demo_vae.save_npz(vae, str(ckpt / "vae-oid.npz"))
        if args.out.exists():
            shutil.rmtree(args.out)
        subprocess.run([sys.executable, str(ROOT / "tools" / "export_paligemma.py"), str(ckpt), str(args.out),
                        "--dtype", "fp32"], check=True)
        shutil.copy(ckpt / "vae-oid.npz", args.out / "vae-oid.npz")
    write_heldout(args.heldout, args.seed + 1000, args.heldout_count)
    scenes.write_examples(ROOT / "examples" / "scenes", args.seed + 2000, 4)
    minutes = (time.time() - t0) / 60
    images = 2 * args.batch * args.vision_steps + args.batch * args.steps
    write_model_card(args.out, args, sum(p.numel() for p in model.parameters()) / 1e6, minutes, images)
    log(f"done in {minutes:.1f} min -> {args.out}")


if __name__ == "__main__":
    main()
