"""Greedy PaliGemma generation with onnxruntime on an exported model folder.

A small Python reference of what the Go runtime does, used by make_goldens
to prove that the ONNX exports reproduce transformers' token ids. It reads
every id and size from the folder (config.json, generation_config.json,
preprocessor_config.json, tokenizer.json), like the Go side must.

Own layout (decoder with attention_mask): prompts of different lengths run
as one left-padded batch. The caller's additive mask [B,1,S,P+S] is 0 where
attention is allowed and float32 lowest elsewhere:
  prefill, row b with n_b real tokens starting at column s_b = S - n_b:
    query q may see key k  iff  s_b <= k and q >= s_b
    (every real prefill token is in the bidirectional prefix block: image,
    <bos>, prefix and "\\n"); pad rows see nothing (finite lowest: no NaN)
  decode step: the new token sees every real key (s_b <= k).
The sliding-window layers' mask (sliding_attention_mask, when the decoder
takes one) is the same at prefill (every real query is in the prefix
block); at a decode step it also masks the keys at cache distance
>= sliding_window from the new token (config.json text_config).
Positions: real tokens 1, 2, ..., n_b; pads 1; the t-th generated token
(t = 0 for the one fed after prefill) gets n_b + 1 + t.
Community layout: batch 1, no mask, logits for all positions (last used).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

LOWEST = np.float32(np.finfo(np.float32).min)


@dataclass
class Generation:
    input_ids: list[int]
    generated: list[int]
    first_logits: np.ndarray  # [vocab] float32, first decode step (after prefill)


def _eos_ids(folder: Path, cfg: dict) -> set[int]:
    ids: set[int] = set()
    sources = [cfg.get("text_config", {}).get("eos_token_id"), cfg.get("eos_token_id")]
    gen = folder / "generation_config.json"
    if gen.exists():
        sources.append(json.loads(gen.read_text()).get("eos_token_id"))
    for v in sources:
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, list):
            ids.update(int(x) for x in v)
    return ids


class OrtPaliGemma:
    def __init__(self, folder: Path):
        self.folder = folder
        cfg = json.loads((folder / "config.json").read_text())
        text = cfg["text_config"]
        pre = json.loads((folder / "preprocessor_config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.image_token = int(cfg.get("image_token_index", cfg.get("image_token_id")))
        self.image_tokens = int(pre["image_seq_length"])
        self.bos = self.tokenizer.token_to_id("<bos>")
        self.eos = _eos_ids(folder, cfg)
        self.layers = int(text["num_hidden_layers"])
        self.kv_heads = int(text["num_key_value_heads"])
        self.head_dim = int(text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"])
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = lambda n: ort.InferenceSession(str(folder / "onnx" / n), opts, providers=["CPUExecutionProvider"])
        self.vision, self.embed, self.decoder = sess("vision_encoder.onnx"), sess("embed_tokens.onnx"), sess("decoder_model_merged.onnx")
        inputs = {i.name for i in self.decoder.get_inputs()}
        self.with_mask = "attention_mask" in inputs
        self.window = int(text["sliding_window"]) if "sliding_attention_mask" in inputs else None
        past = next(i for i in self.decoder.get_inputs() if i.name.startswith("past_key_values"))
        self.cache_dtype = np.float16 if past.type == "tensor(float16)" else np.float32

    def prompt_ids(self, prefix: str) -> list[int]:
        """[<image>] * N + <bos> + prefix + "\\n", as PaliGemma's processor builds it."""
        text = self.tokenizer.encode(prefix + "\n", add_special_tokens=False).ids
        return [self.image_token] * self.image_tokens + [self.bos] + text

    def generate(self, pixel_values: np.ndarray, prefixes: list[str], max_new_tokens: int) -> list[Generation]:
        """Greedy generation for prompts on one image (pixel_values [3,H,W])."""
        if not self.with_mask and len(prefixes) != 1:
            raise ValueError("the community layout runs one prompt at a time")
        features = self.vision.run(None, {"pixel_values": pixel_values[None]})[0][0]  # [N, hidden]
        prompts = [self.prompt_ids(p) for p in prefixes]
        b, s = len(prompts), max(len(p) for p in prompts)
        starts = [s - len(p) for p in prompts]
        ids = np.full((b, s), self.tokenizer.token_to_id("<pad>"), np.int64)
        for r, p in enumerate(prompts):
            ids[r, starts[r]:] = p
        embeds = self.embed.run(None, {"input_ids": ids})[0]
        for r in range(b):
            img = np.where(ids[r] == self.image_token)[0]
            embeds[r, img] = features
        mask = np.full((b, 1, s, s), LOWEST, np.float32)
        pos = np.ones((b, s), np.int64)
        for r in range(b):
            mask[r, 0, starts[r]:, starts[r]:] = 0
            pos[r, starts[r]:] = np.arange(1, len(prompts[r]) + 1)
        past = {f"past_key_values.{i}.{kv}": np.zeros((b, self.kv_heads, 0, self.head_dim), self.cache_dtype)
                for i in range(self.layers) for kv in ("key", "value")}
        out = [Generation(p, [], np.zeros(0, np.float32)) for p in prompts]
        done = [False] * b
        lengths = [len(p) for p in prompts]
        for step in range(max_new_tokens):
            feed = {"inputs_embeds": embeds, "position_ids": pos, **past}
            if self.with_mask:
                feed["attention_mask"] = mask
            if self.window is not None:
                feed["sliding_attention_mask"] = mask
                if step > 0:  # the new token's cache index is total - 1
                    far = (mask.shape[-1] - 1) - np.arange(mask.shape[-1]) >= self.window
                    feed["sliding_attention_mask"] = np.where(far, LOWEST, mask).astype(np.float32)
            results = self.decoder.run(None, feed)
            logits = results[0][:, -1, :]
            names = [o.name for o in self.decoder.get_outputs()][1:]
            past = {n.replace("present", "past_key_values"): v for n, v in zip(names, results[1:])}
            nxt = logits.argmax(-1)
            for r in range(b):
                if step == 0:
                    out[r].first_logits = logits[r].astype(np.float32)
                if not done[r]:
                    out[r].generated.append(int(nxt[r]))
                    done[r] = int(nxt[r]) in self.eos
            if all(done):
                break
            embeds = self.embed.run(None, {"input_ids": nxt[:, None].astype(np.int64)})[0]
            total = past["past_key_values.0.key"].shape[2] + 1
            mask = np.full((b, 1, 1, total), LOWEST, np.float32)
            for r in range(b):
                mask[r, 0, 0, starts[r]:] = 0
            pos = np.array([[lengths[r] + 1 + step] for r in range(b)], np.int64)
        return out
