"""Tiny PaliGemma checkpoints with random weights (Hugging Face format).

The shapes are tiny but every structural feature of the real models is
there: SigLIP at 448 px with patch 14 (1024 image tokens), a projector, a
Gemma 2 decoder with attention and final softcaps, grouped KV heads and
alternating sliding-window layers whose window (512) is shorter than the
prefill (1024 image tokens + prompt), so the window really cuts during
decoding; and a Gemma 1 decoder for PaliGemma 1. Text hidden size 16 makes
sqrt(hidden) = 4 exact, so scaling image features down and embeddings up
loses no bits; the third model (HIDDEN12: hidden 12, 224 px, window 128)
has an inexact sqrt(hidden) = 3.4641016 as the real ones (48 is exact, but
sqrt(2304) scaled down and back in float32 is not the identity), for the
golden of the decoder's merged inputs_embeds.

Weights come from one torch.Generator per model: same seed, same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

import tiny_tokenizer

IMAGE_SIZE = 448
PATCH = 14
SLIDING_WINDOW = 512
# A random model almost never emits an end token. To make some goldens stop
# early, the end token's output row is 1.02 x the row of a token that greedy
# decoding reaches mid-sequence in some cases (picked from the goldens), so
# the end token wins where that token would have. PaliGemma 2 uses
# <end_of_turn>, the second id of its eos list; PaliGemma 1 plain <eos>.
EOS_ALIAS = {2: ("<end_of_turn>", 1329), 1: ("<eos>", 875)}


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def _ids(tok) -> dict[str, int]:
    return {t: tok.token_to_id(t) for t in ("<pad>", "<eos>", "<bos>", "<image>", "<end_of_turn>")}


# The shape of a tiny model: text hidden size, image size, sliding window.
DEFAULT_SHAPE = {"hidden": 16, "image_size": IMAGE_SIZE, "sliding_window": SLIDING_WINDOW}
HIDDEN12 = {"hidden": 12, "image_size": 224, "sliding_window": 128}


def vision_config(image_size: int = IMAGE_SIZE) -> dict:
    return {
        "model_type": "siglip_vision_model",
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": PATCH,
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu_pytorch_tanh",
        "vision_use_head": False,
    }


def paligemma_config(version: int, tok, shape: dict = DEFAULT_SHAPE):
    """PaliGemmaConfig for the tiny PaliGemma `version` (1 or 2) over tokenizer tok."""
    from transformers import PaliGemmaConfig

    ids = _ids(tok)
    vocab = _round_up(tok.get_vocab_size(), 64)  # padded like the real 257216 rows
    hidden = shape["hidden"]
    text = {
        "hidden_size": hidden,
        "intermediate_size": 48,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "vocab_size": vocab,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-6,
        "pad_token_id": ids["<pad>"],
        "bos_token_id": ids["<bos>"],
        "eos_token_id": ids["<eos>"],
    }
    if version == 2:
        text.update(
            model_type="gemma2",
            hidden_activation="gelu_pytorch_tanh",
            query_pre_attn_scalar=8,
            sliding_window=shape["sliding_window"],
            attn_logit_softcapping=50.0,
            final_logit_softcapping=30.0,
            # As paligemma2 mix checkpoints: stop on <eos> or <end_of_turn>.
            eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
        )
    else:
        text.update(model_type="gemma", hidden_act="gelu_pytorch_tanh")
    text["tie_word_embeddings"] = False
    return PaliGemmaConfig(
        vision_config=vision_config(shape["image_size"]),
        text_config=text,
        tie_word_embeddings=False,
        image_token_index=ids["<image>"],
        projection_dim=hidden,
        hidden_size=hidden,
        vocab_size=vocab,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<bos>"],
        eos_token_id=text["eos_token_id"],
    )


def randomize(model: torch.nn.Module, seed: int, tokenizer_size: int) -> None:
    """Overwrite every parameter from one generator, in name order.

    Scales are chosen so the tiny model is decisive and its greedy output
    varied: linear weights with std 1/sqrt(fan_in), embeddings with std 1, norm weights near 0
    (Gemma norms multiply by 1 + w). The head is NOT tied to the embeddings
    (unlike the real checkpoints): a tied random head mostly repeats one
    token forever, which would make poor goldens.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("bias"):
                std = 0.05
            elif "norm" in name and p.ndim == 1:
                std = 0.1
            elif "embed_tokens" in name or "position_embedding" in name:
                std = 1.0
            elif p.ndim >= 2:
                std = 1.0 / math.sqrt(p[0].numel())
            else:
                std = 0.1
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * std)
        # Rows past the tokenizer (vocabulary padding, as in the real 257216
        # rows) are zero, so their logit is 0 and they are never a clear winner.
        model.model.language_model.embed_tokens.weight[tokenizer_size:] = 0
        model.lm_head.weight[tokenizer_size:] = 0


def processor(tokenizer_file: Path, image_size: int = IMAGE_SIZE):
    """PaliGemma's processor (slow SigLIP image processor + Gemma tokenizer)."""
    from transformers import GemmaTokenizer, PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = (image_size // PATCH) ** 2
    tokenizer = GemmaTokenizer(tokenizer_file=str(tokenizer_file))
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_checkpoint(version: int, seed: int, out_dir: Path, shape: dict = DEFAULT_SHAPE) -> Path:
    """Write a tiny PaliGemma `version` checkpoint (weights, configs, tokenizer) to out_dir."""
    from transformers import GenerationConfig, PaliGemmaForConditionalGeneration

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = tiny_tokenizer.write(out_dir / "tokenizer.json")
    config = paligemma_config(version, tok, shape)
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    randomize(model, seed, tok.get_vocab_size())
    end, alias = EOS_ALIAS[version]
    with torch.no_grad():
        model.lm_head.weight[tok.token_to_id(end)] = model.lm_head.weight[alias] * 1.02
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    model.save_pretrained(out_dir)
    processor(out_dir / "tokenizer.json", shape["image_size"]).save_pretrained(out_dir)
    # save_pretrained rewrites tokenizer.json pretty-printed; keep it compact
    # (same content) so the fixtures stay small.
    from tokenizers import Tokenizer

    Tokenizer.from_file(str(out_dir / "tokenizer.json")).save(str(out_dir / "tokenizer.json"), pretty=False)
    return out_dir
