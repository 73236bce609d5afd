"""A full-size PaliGemma 2 3B-448 with random weights, for benchmarks only.

  python tools/make_bench_model.py [--out models/bench] [--dtypes fp32,int8]

Writes models/bench/paligemma2-3b-448-random-<dtype>/ (ignored by git, never
used in CI): the real architecture and shapes (SigLIP So400m/14 at 448 px,
1024 image tokens, Gemma 2 2B decoder: 26 layers, hidden 2304, 8 heads,
4 KV heads, head_dim 256, MLP 9216, window 4096, softcaps 50/30, 257216
embedding rows), so every matmul and attention costs what it costs in the
real model, and a tokenizer with the real special-token ids
(tools/tiny_tokenizer.py, "gemma" layout) and a small word vocabulary.

Memory: the real model is 3.03 B parameters = 12.1 GB in fp32; exporting it
needs the weights plus a serialized copy plus, to verify, onnxruntime's
copy again - more than this 24 GB machine shared by four engineers can give.
So the random weights are SHARED: every decoder layer uses the same weight
tensors, every vision layer too (the embedding table, norms and projector
are single anyway). Compute per token is exactly the real model's; what
differs is the footprint: about 2.9 GB of parameters (2.4 GB of them the
embedding table, stored twice: embed_tokens and the tied lm_head), so
weight-memory bandwidth on a CPU (caches hold far less than a layer) is the
same but a GPU's memory use is lower. A user with >= 48 GB of RAM who wants
unshared weights runs the exporter on a real checkpoint instead.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import time
from pathlib import Path

import torch
from torch import nn

import export_paligemma
import tiny_tokenizer
from fixture_io import REPO

SEED = 2024


def config():
    from transformers import PaliGemmaConfig

    return PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
            "num_hidden_layers": 27, "num_attention_heads": 16, "image_size": 448, "patch_size": 14,
            "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh", "vision_use_head": False,
        },
        text_config={
            "model_type": "gemma2", "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256,
            "sliding_window": 4096, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
            "vocab_size": 257216, "max_position_embeddings": 8192, "rms_norm_eps": 1e-6,
            "hidden_activation": "gelu_pytorch_tanh", "pad_token_id": 0, "bos_token_id": 2,
            "eos_token_id": [1, 107],
        },
        image_token_index=257152, projection_dim=2304, hidden_size=2304, vocab_size=257216,
        pad_token_id=0, bos_token_id=2, eos_token_id=[1, 107],
    )


def shared_key(name: str) -> str:
    """Parameter name with the layer index replaced: all layers share one tensor."""
    parts = name.split(".")
    for i, p in enumerate(parts[:-1]):
        if parts[i - 1] == "layers" and p.isdigit():
            parts[i] = "0"
    return ".".join(parts)


def build_model():
    """The real-size model with random, layer-shared weights (about 2.9 GB)."""
    from transformers import PaliGemmaForConditionalGeneration

    cfg = config()
    cfg._attn_implementation = "eager"
    with torch.device("meta"):
        model = PaliGemmaForConditionalGeneration(cfg)
    gen = torch.Generator().manual_seed(SEED)
    shared: dict[str, nn.Parameter] = {}
    for name, _ in sorted(model.named_parameters(remove_duplicate=False), key=lambda kv: kv[0]):
        module_name, pname = name.rsplit(".", 1)
        module = model.get_submodule(module_name)
        p = module._parameters[pname]
        key = shared_key(name)
        if name == "lm_head.weight":
            key = shared_key("model.language_model.embed_tokens.weight")  # tied, as in the real model
        if key not in shared:
            if pname == "bias":
                std = 0.02
            elif "norm" in name and p.ndim == 1:
                std = 0.1
            elif p.ndim >= 2:
                std = 1.0 / math.sqrt(p[0].numel())
            else:
                std = 0.1
            shared[key] = nn.Parameter(torch.randn(p.shape, generator=gen) * std, requires_grad=False)
        module._parameters[pname] = shared[key]
    # Buffers made on the meta device: rebuild them for real.
    lm = model.model.language_model
    lm.rotary_emb = type(lm.rotary_emb)(cfg.text_config)
    lm.embed_tokens.embed_scale = torch.tensor(cfg.text_config.hidden_size**0.5)
    emb = model.model.vision_tower.embeddings
    emb.position_ids = torch.arange(emb.num_positions).expand((1, -1))
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise SystemExit(f"still on the meta device: {left[:5]}")
    return model.eval()


def write_checkpoint_files(folder: Path) -> None:
    """config.json, generation_config.json, preprocessor_config.json and a
    tokenizer with the real ids: what export_paligemma copies into the folder."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    config().to_json_file(str(folder / "config.json"))
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 2, "eos_token_id": [1, 107], "pad_token_id": 0, "do_sample": False}, indent=2) + "\n")
    pre = SiglipImageProcessorPil(size={"height": 448, "width": 448}).to_dict()
    pre.update(image_seq_length=1024, processor_class="PaliGemmaProcessor")
    (folder / "preprocessor_config.json").write_text(json.dumps(pre, indent=2, sort_keys=True) + "\n")
    tiny_tokenizer.write(folder / "tokenizer.json", layout="gemma")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "models" / "bench")
    parser.add_argument("--dtypes", default="fp32,int8")
    args = parser.parse_args()
    spec_dir = args.out / "checkpoint-config"
    write_checkpoint_files(spec_dir)
    for dtype in args.dtypes.split(","):
        start = time.time()
        folder = args.out / f"paligemma2-3b-448-random-{dtype}"
        shutil.rmtree(folder, ignore_errors=True)
        export_paligemma.export(spec_dir, folder, dtype, "own", loader=build_model)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"bench {dtype}: {folder} {size / 2**30:.2f} GiB in {time.time() - start:.0f}s, "
              f"peak RSS so far {peak_rss_gb():.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
