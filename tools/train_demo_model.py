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

The patch head also names each patch's object's place from the left:
captions and answers list objects in that order, and a decoder whose
features cannot tell the second object from the first writes the same one
again ("a yellow circle, a yellow circle, ..."). The first location token
of each object (where the decoder picks which object it writes) weighs
FIRST_LOC_WEIGHT times the others in the loss.

Two stages: the vision encoder alone on the patch objective, then end to
end on the three tasks (the encoder at --encoder-lr-scale of the rate, as
PaliGemma's own transfer trains it). --init-from FOLDER starts from an
exported model instead of from nothing (onnx_weights.py reads its weights
back, checked against the export's own output before training; its VQ-VAE
decoder is kept and only an encoder is fitted to it, so its <seg> codes
keep their meaning). Every --eval-every steps of the second stage the five
quality measures of demo_eval.py are printed for a dev split of its own
seed (never the held-out scenes); the curve goes into the model card.

Resumable: WORK/state.pt is saved every --save-every steps; --resume
continues from it. Seeded: the same arguments, torch build and thread count
are expected to give the same weights (a resumed stream is seeded by its
step, so a resumed run is deterministic given where it resumed; not checked
bit for bit). --device cuda runs the same recipe on a GPU. bfloat16 autocast
only where it is native (CUDA, AVX512-BF16/AMX CPUs): emulated on an AVX2
CPU it is 18x slower than float32. The model is exported through
export_paligemma.py (fp32) and a model card is written beside it. Held-out
scenes for the quality bar (another seed) go to testdata/demo-heldout/.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
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
        self.image_tokens = NUM_IMAGE_TOKENS

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


def patch_labels(scene: scenes.Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per patch: colour and shape class (0 = background) of the object that
    covers most of a 4x4 grid of points inside the patch (at least 4 of 16:
    small shapes still claim their patch), that object's box as fractions
    of the image (x0, y0, x1, y1) and its place from the left (the order
    captions and answers list objects in)."""
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
    rank = np.zeros((side, side), dtype=np.int64)
    ranks = scenes.left_to_right_rank(scene)
    for k, o in enumerate(scene.objects):
        inside = covered & (best == k)
        colour[inside] = colours.index(o.colour) + 1
        shape[inside] = scenes.SHAPES.index(o.shape) + 1
        x0, y0, x1, y1 = o.box
        box[inside] = (x0 / w, y0 / h, x1 / w, y1 / h)
        rank[inside] = ranks[k]
    return colour.reshape(-1), shape.reshape(-1), box.reshape(-1, 4), rank.reshape(-1)


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
        self.rank = torch.nn.Linear(hidden, 4)  # random_scene draws at most 4
        word = lambda w: vocab.tok.token_to_id(tiny_tokenizer.SPACE + w)  # noqa: E731
        self.register_buffer("colour_ids", torch.tensor([word(c) for c in scenes.COLOURS]))
        self.register_buffer("shape_ids", torch.tensor([word(s) for s in scenes.SHAPES]))
        self.loc0 = vocab.loc0

    def loss(self, features, embeddings, colour, shape, box, rank) -> torch.Tensor:
        features = features.float()
        covered = colour > 0
        loss = F.binary_cross_entropy_with_logits(self.objectness(features)[..., 0], covered.float())
        f = features[covered]
        if f.shape[0] == 0:
            return loss
        score = lambda slot, ids: self.proj[slot](f) @ embeddings[ids].float().T  # noqa: E731
        loss = loss + F.cross_entropy(score("colour", self.colour_ids), colour[covered] - 1)
        loss = loss + F.cross_entropy(score("shape", self.shape_ids), shape[covered] - 1)
        # Which object from the left: captions and answers list objects in
        # that order, and a decoder that cannot tell "the second one" from
        # "the first one" writes the same object again.
        loss = loss + F.cross_entropy(self.rank(f), rank[covered])
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
    curriculum: learn to read one place before telling objects apart).
    A stream resumed at step `start` draws from its own seed, so a resumed
    run is deterministic given where it was resumed."""

    def __init__(self, seed: int, vocab: Vocab, vae: demo_vae.MaskVQVAE, easy_scenes: int = 0,
                 start: int = 0, batch: int = 1):
        self.seed, self.vocab, self.vae, self.easy_scenes = seed, vocab, vae, easy_scenes
        self.start, self.batch = start, batch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0, self.start])
        torch.set_num_threads(1)
        v = self.vocab
        count = self.start * self.batch
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
    return stack(0), ids, types, labels, mask, stack(2), stack(3), stack(4), stack(5)


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

STAGES = ("vision", "full")


def scene_loader(args, seed: int, vocab: Vocab, vae, batch: int, easy_scenes: int = 0, start: int = 0):
    stream = SceneStream(seed, vocab, vae, easy_scenes, start, batch)
    return torch.utils.data.DataLoader(stream, batch_size=batch, num_workers=args.workers,
                                       collate_fn=lambda b: collate(b, vocab.pad), prefetch_factor=4)


def optimizer(groups, steps: int):
    """AdamW over (named parameters, peak lr) groups (no decay on embeddings,
    norms, biases) with warm-up and a cosine to 5%."""
    param_groups = []
    for named, lr in groups:
        decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
        rest = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
        param_groups += [{"params": decay, "weight_decay": 0.01, "lr": lr},
                         {"params": rest, "weight_decay": 0.0, "lr": lr}]
    opt = torch.optim.AdamW(param_groups, betas=(0.9, 0.98))
    warmup = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    return opt, sched


class Run:
    """What a training run carries between steps and across a restart:
    WORK/state.pt (model, head, optimiser, stage, step, learning curve) is
    written every --save-every steps and at each stage's end, atomically, so
    a killed run resumes with --resume where it was last saved."""

    def __init__(self, args, model, head):
        self.args, self.model, self.head = args, model, head
        self.device = torch.device(args.device)
        self.state = None
        self.curve: list[dict] = []
        self.elapsed = 0.0
        self.t0 = time.time()
        path = args.work / "state.pt"
        if args.resume and path.exists():
            self.state = torch.load(path, map_location=self.device, weights_only=False)
            model.load_state_dict(self.state["model"])
            head.load_state_dict(self.state["head"])
            self.curve, self.elapsed = self.state["curve"], self.state["elapsed"]
            log(f"resumed {self.state['stage']} at step {self.state['step']} ({self.elapsed / 60:.1f} min trained)")

    def minutes(self) -> float:
        return (self.elapsed + time.time() - self.t0) / 60

    def save(self, stage: str, step: int, opt, sched) -> None:
        path = self.args.work / "state.pt"
        tmp = path.with_suffix(".tmp")
        torch.save({"stage": stage, "step": step, "model": self.model.state_dict(), "head": self.head.state_dict(),
                    "opt": opt.state_dict() if opt else None, "sched": sched.state_dict() if sched else None,
                    "curve": self.curve, "elapsed": self.minutes() * 60}, tmp)
        tmp.replace(path)

    def start_of(self, stage: str) -> int | None:
        """Where this stage starts: 0, the saved step, or None when done."""
        if self.state is None:
            return 0
        saved = STAGES.index(self.state["stage"])
        here = STAGES.index(stage)
        if here < saved:
            return None
        return self.state["step"] if here == saved else 0

    def steps(self, name: str, steps: int, make_loader, groups, loss_fn, evaluate=None) -> None:
        """The shared loop: autocast (bfloat16 matmuls, float32 weights),
        clipping, logging, checkpoints and the dev evaluations."""
        first = self.start_of(name)
        if first is None or steps == 0:
            return
        opt, sched = optimizer(groups, steps)
        if first and self.state.get("opt"):
            opt.load_state_dict(self.state["opt"])
            sched.load_state_dict(self.state["sched"])
        params = [p for named, _ in groups for _, p in named]
        args, start, ema = self.args, time.time(), None
        step = first
        for batch in make_loader(first):
            if step == 0 and evaluate:
                evaluate(0)
            if step >= steps or (args.stop_after is not None and step - first >= args.stop_after):
                break
            batch = [t.to(self.device) for t in batch]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=args.bf16):
                parts = loss_fn(batch)
            loss = sum(parts.values())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            now = np.array([v.item() for v in parts.values()])
            ema = now if ema is None else 0.98 * ema + 0.02 * now
            if step % 50 == 0 or step == steps or step == first + 1:
                el = time.time() - start
                losses = " ".join(f"{k} {v:.3f}" for k, v in zip(parts, ema))
                done = step - first
                log(f"{name} step {step}/{steps} {losses} lr {sched.get_last_lr()[0]:.2e} "
                    f"{done * batch[0].shape[0] / el:.1f} images/s, eta {el / done * (steps - step) / 60:.1f} min")
            if evaluate and (step % args.eval_every == 0 or step == steps):
                evaluate(step)
            if step % args.save_every == 0 and step < steps:
                self.save(name, step, opt, sched)
        if step >= steps:
            following = STAGES[STAGES.index(name) + 1] if name != STAGES[-1] else "done"
            self.save(following, 0, None, None)


def train(args, vocab: Vocab, vae: demo_vae.MaskVQVAE):
    from transformers import PaliGemmaForConditionalGeneration
    from transformers.modeling_outputs import BaseModelOutputWithPooling
    import demo_eval
    torch.manual_seed(args.seed)
    model = PaliGemmaForConditionalGeneration(model_config(vocab))
    init_spatial(model, vocab)
    if args.init_from:
        import onnx_weights
        model.load_state_dict(onnx_weights.read(args.init_from, model))
        log(f"weights from {args.init_from}'s ONNX export")
    head = AlignedHead(model.config.text_config.hidden_size, vocab)
    run = Run(args, model, head)
    model.to(run.device).train()
    head.to(run.device)
    embeddings = model.get_input_embeddings().weight
    log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
        f"{NUM_IMAGE_TOKENS} image tokens; {args.device}, {args.threads} threads, bf16 {args.bf16}")

    def patch_loss(batch):
        px, colour, shape, box, rank = batch[0], batch[5], batch[6], batch[7], batch[8]
        return head.loss(model.model.get_image_features(px).pooler_output, embeddings, colour, shape, box, rank)

    # Stage 1: the vision encoder alone on the dense patch objective (the
    # token embeddings it scores against learn with it).
    vision_params = [(n, p) for n, p in model.named_parameters()
                     if "vision_tower" in n or "projector" in n or "embed_tokens" in n]
    vision_batch = 2 * args.batch
    run.steps("vision", args.vision_steps,
              lambda start: scene_loader(args, args.seed, vocab, vae, vision_batch, start=start),
              [(vision_params + list(head.named_parameters()), args.lr)], lambda b: {"patch": patch_loss(b)})

    # Stage 2: end to end on all three tasks, each image's features shared
    # by its tasks, the patch objective still on so the features stay
    # aligned with the embeddings. The vision encoder learns too, at a
    # fraction of the rate (as PaliGemma's own transfer does): frozen, its
    # features stopped where the patch objective left them, and the
    # decoder could not ask them for what the tasks need (which object
    # comes next, exact edges).
    tower = model.model.vision_tower
    dev = demo_eval.DevSet(args.dev_seed, args.dev_scenes, pixel_values)
    decode_mask = demo_eval.vae_decoder(vae)
    vision_images = vision_batch * args.vision_steps

    def evaluate(step: int) -> None:
        t = time.time()
        model.eval()
        generate = lambda px, prefixes, n: demo_eval.greedy_torch(  # noqa: E731
            model, vocab, px, prefixes, n, device=args.device)
        if step == 0 and args.init_from:
            # The weights read back must say what the export says.
            theirs = demo_eval.ort_generator(args.init_from)(dev.pixels[:1], [dev.prompts[0]["detect"]], 128)
            ours = generate(dev.pixels[:1], [dev.prompts[0]["detect"]], 128)
            if theirs != ours:
                raise SystemExit(f"--init-from: torch says {ours}, the export says {theirs}")
        score = dev.evaluate(generate, decode_mask)
        model.train()
        images = vision_images + step * args.batch
        run.curve.append({"step": step, "images": images, "task_images": step * args.batch,
                          "minutes": round(run.minutes(), 1), **score.measures()})
        log(f"dev ({args.dev_scenes} scenes) at {images} images: {score.line()} [{time.time() - t:.0f} s]")

    def full_loss(batch):
        px, ids, types, labels, mask, colour, shape, box, rank = batch
        features = model.model.multi_modal_projector(tower(px).last_hidden_state)
        aux = head.loss(features, embeddings, colour, shape, box, rank)
        vision = BaseModelOutputWithPooling(pooler_output=features.repeat_interleave(len(TASKS), dim=0))
        # Logits only from the last prompt position on: the image positions
        # need none, and the output head is a sixth of the step's work.
        keep = ids.shape[1] - int((types == 0).sum(1).min()) + 1
        out = model(input_ids=ids, mm_encoder_outputs={"image": vision}, token_type_ids=types, attention_mask=mask,
                    logits_to_keep=keep)
        return {"lm": soft_loss(out.logits, labels[:, -keep:], vocab), "patch": args.aux_weight * aux}

    encoder = [(n, p) for n, p in model.named_parameters() if "vision_tower" in n]
    rest = [(n, p) for n, p in model.named_parameters() if "vision_tower" not in n] + list(head.named_parameters())
    easy = int(args.steps * args.batch * args.easy_share)
    run.steps("full", args.steps,
              lambda start: scene_loader(args, args.seed + 1, vocab, vae, args.batch, easy, start),
              [(rest, args.decoder_lr), (encoder, args.decoder_lr * args.encoder_lr_scale)], full_loss, evaluate)
    return model.eval(), run


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
{tokens} image tokens) trained from scratch on a 2-core CPU in two runs
(48.5 + {minutes:.0f} minutes) by `tools/train_demo_model.py` (seed {seed}), so that `make demo` shows the
whole pipeline on real model output without a multi-GB download. It is not
PaliGemma and knows nothing about photographs.

## Trained on

Synthetic scenes drawn on the fly (`tools/demo_scenes.py`): 1-4 upright
shapes ({shapes}) in {colours}, sides 14-36% of the shorter image side,
never overlapping, on plain, gradient or noisy grey backgrounds, in seven
canvas sizes from 448x448 to 800x600. Each taught three tasks in
PaliGemma's own formats:

- `caption en` -> "a red circle above a blue square" (two shapes: above /
  to the left of; three or four: listed left to right);
- `detect red circle ; blue square` -> `<locY0><locX0><locY1><locX1> red circle ; ...`
  (the asked objects left to right, each once; sometimes a subset of the
  names; in 60% of prompts one or two absent names, mostly hard negatives:
  a present shape in another colour, a present colour on another shape, or
  one object's colour with another's shape; the answer for those is
  nothing);
- `segment ...` -> the same with 16 `<segNNN>` codes per object, from a
  small VQ-VAE trained here whose decoder has big_vision's architecture
  and `vae-oid.npz` layout (so paliprompt's mask decoder runs it unchanged;
  its 128 codes mean nothing to the real `vae-oid.npz`).

## Recipe

In two runs of the same script:

1. The first demo model (48.5 minutes, 43200 images): 1500 steps of the
   vision encoder alone on a dense, training-only patch objective (colour,
   shape and box of the object under each patch, scored against the
   model's own token embeddings), then 2400 steps of the decoder and
   projector on the three tasks with the vision encoder frozen. Its
   targets still asked for absent names rarely and walked the prompt's
   names, which is where its repeated captions and boxes under wrong
   colours came from.
2. This model: `--init-from` the first (its weights read back from its
   ONNX export, its VQ-VAE decoder kept), then {steps} steps of {batch}
   images end to end: the vision encoder unfrozen at {encoder_scale} of the
   decoder's learning rate, the patch objective (now also naming each
   object's place from the left) at weight {aux_weight}, and the new
   targets above: {minutes:.0f} minutes on the same 2-core CPU. {run_note}

## Learning curve

The five measures on a dev split of {dev_scenes} scenes of its own seed
({dev_seed}; never the held-out scenes), scored in Python by
`tools/demo_eval.py` (transformers' greedy decoding; the first row is the
first model), printed by the trainer every few hundred steps:

{curve}

## What it can and cannot do

{measures}

## Files

The model folder is a regular paliprompt export (below), plus
`vae-oid.npz`. Regenerate everything (this folder, the held-out scenes and
`examples/scenes/`) with `make venv`, the first model from git history
(`git worktree add ../first 0338156`) and

    .venv/bin/python tools/train_demo_model.py --init-from ../first/models/demo-shapes \\
        --images-before 43200 --vision-steps 0 --steps 1000 --eval-every 250 --vae-steps 300 \\
        --easy-share 0 --decoder-lr 1e-3 --aux-weight 0.3

(the first model itself: the script of that commit with its defaults). Scenes and
weights are seeded throughout; the same torch build and thread count are
expected to give the same weights, which has not been checked bit for bit.

"""


# Filled in from `make quality` once the model is exported: the trainer
# cannot run the Go pipeline.
MEASURES_PLACEHOLDER = "(run `make quality` and put its numbers here)"


def curve_table(curve: list[dict], before: int) -> str:
    """The dev split's five measures against images seen, as markdown."""
    rows = ["| images seen in all | of them in this run | minutes of this run | detect recall | spurious | caption | mask IoU | quadrant |",
            "|---|---|---|---|---|---|---|---|"]
    for c in curve:
        rows.append(f"| {before + c['images']} | {c['images']} | {c['minutes']} | {c['detect_recall']:.3f} | "
                    f"{c['spurious']:.3f} | {c['caption']:.3f} | {c['mask_iou']:.3f} | {c['quadrant']:.3f} |")
    return "\n".join(rows)


def write_model_card(folder: Path, args, params: float, minutes: float, curve: list[dict]) -> None:
    """Puts the model card above the exporter's README (the export facts)."""
    export = (folder / "README.md").read_text()
    card = MODEL_CARD.format(
        params=params, tokens=NUM_IMAGE_TOKENS, minutes=minutes, seed=args.seed,
        shapes=", ".join(scenes.SHAPES), colours=", ".join(scenes.COLOURS),
        steps=args.steps, batch=args.batch, encoder_scale=args.encoder_lr_scale, aux_weight=args.aux_weight,
        dev_scenes=args.dev_scenes, dev_seed=args.dev_seed, curve=curve_table(curve, args.images_before), run_note=args.run_note,
        measures=MEASURES_PLACEHOLDER)
    export = re.sub(r"^# \S+ \(", "## Export (", export, count=1)
    (folder / "README.md").write_text(card + export)


def native_bf16(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def mask_vae(args) -> demo_vae.MaskVQVAE:
    """The VQ-VAE, trained once per work folder (WORK/vae.pt): a resumed run reuses it."""
    path = args.work / "vae.pt"
    vae = demo_vae.MaskVQVAE()
    npz = str(args.init_from / "vae-oid.npz") if args.init_from else None
    recipe = {"seed": args.seed, "vae_steps": args.vae_steps, "decoder": npz}
    if path.exists():
        saved = torch.load(path, weights_only=False)
        if saved["recipe"] == recipe:
            vae.load_state_dict(saved["state"])
            log(f"VQ-VAE from {path.name}")
            return vae.eval()
    rng = np.random.default_rng(args.seed + 1)
    crops = []
    while len(crops) < 1500:
        crops += [scenes.mask_crop(o) for o in scenes.random_scene(rng).objects]
    vae = demo_vae.train_vae(np.stack(crops), args.vae_steps, args.seed, log=log, npz=npz)
    ious = [demo_vae.mask_iou(vae.decode(vae.encode(torch.from_numpy(c[None])))[0].detach().numpy() > 0, c > 0.5)
            for c in crops[:200]]
    log(f"VQ-VAE: mean IoU {np.mean(ious):.3f} of decoded codes on 200 training crops")
    torch.save({"recipe": recipe, "state": vae.state_dict()}, path)
    return vae


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2400, help="steps of the second stage (end to end)")
    ap.add_argument("--batch", type=int, default=8, help="images per step (each gives one sequence per task)")
    ap.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate of the first stage")
    ap.add_argument("--aux-weight", type=float, default=1.0, help="weight of the training-only patch objective")
    ap.add_argument("--vision-steps", type=int, default=1500, help="steps of the vision-only first stage")
    ap.add_argument("--decoder-lr", type=float, default=2e-3, help="peak learning rate of the second stage")
    ap.add_argument("--encoder-lr-scale", type=float, default=0.2,
                    help="the vision encoder's share of --decoder-lr in the second stage")
    ap.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                    help="bfloat16 autocast (float32 weights); auto: on CUDA and on CPUs with native bfloat16 "
                         "(AVX512-BF16, AMX), off elsewhere (emulated, an AVX2 CPU runs it 18x slower)")
    ap.add_argument("--easy-share", type=float, default=0.25,
                    help="share of the second stage's first scenes with at most two shapes (a curriculum)")
    ap.add_argument("--init-from", type=Path, metavar="FOLDER",
                    help="start from an exported demo model's weights (read back from its ONNX files)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (a run is reproducible given these)")
    ap.add_argument("--workers", type=int, default=1, help="processes drawing scenes")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]: the same recipe on another budget")
    ap.add_argument("--vae-steps", type=int, default=600)
    ap.add_argument("--work", type=Path, default=ROOT / "checkpoints" / "demo-shapes",
                    help="training state (state.pt, vae.pt) and the Hugging Face checkpoint; ignored by git")
    ap.add_argument("--resume", action="store_true", help="continue from WORK/state.pt")
    ap.add_argument("--save-every", type=int, default=100, help="steps between saved states")
    ap.add_argument("--eval-every", type=int, default=400, help="second-stage steps between dev evaluations")
    ap.add_argument("--dev-seed", type=int, default=5150, help="the dev split's seed (never the held-out one)")
    ap.add_argument("--dev-scenes", type=int, default=32)
    ap.add_argument("--stop-after", type=int, metavar="STEPS",
                    help="stop each stage after this many steps, without exporting (a speed probe)")
    ap.add_argument("--images-before", type=int, default=0,
                    help="images the --init-from model had seen (its card says), for the learning curve")
    ap.add_argument("--run-note", default="", help="a sentence for the model card about how this run went")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "demo-shapes")
    ap.add_argument("--heldout", type=Path, default=ROOT / "testdata" / "demo-heldout")
    ap.add_argument("--heldout-count", type=int, default=60)
    args = ap.parse_args()
    args.bf16 = native_bf16(args.device) if args.bf16 == "auto" else args.bf16 == "on"
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)

    tok = tiny_tokenizer.build(sorted(set(tiny_tokenizer.WORDS) | set(scenes.vocabulary())))
    vocab = Vocab(tok)
    vae = mask_vae(args)
    model, run = train(args, vocab, vae.to(args.device))
    if args.stop_after is not None:
        return
    model, vae = model.to("cpu"), vae.to("cpu")
    ckpt = args.work / "checkpoint"
    save_checkpoint(model, tok, ckpt)
    demo_vae.save_npz(vae, str(ckpt / "vae-oid.npz"))
    (ckpt / "learning_curve.json").write_text(json.dumps(run.curve, indent=1))
    if args.out.exists():
        shutil.rmtree(args.out)
    subprocess.run([sys.executable, str(ROOT / "tools" / "export_paligemma.py"), str(ckpt), str(args.out),
                    "--dtype", "fp32"], check=True)
    shutil.copy(ckpt / "vae-oid.npz", args.out / "vae-oid.npz")
    write_heldout(args.heldout, args.seed + 1000, args.heldout_count)
    scenes.write_examples(ROOT / "examples" / "scenes", args.seed + 2000, 4)
    write_model_card(args.out, args, sum(p.numel() for p in model.parameters()) / 1e6, run.minutes(), run.curve)
    log(f"done: {run.minutes():.1f} min of training -> {args.out}")


if __name__ == "__main__":
    main()
