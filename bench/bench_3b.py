"""Full-size PaliGemma 2 3B-448 (random weights): paliprompt fp32/int8 vs transformers fp32.

    .venv/bin/python tools/make_bench_model.py          # once: models/bench/...
    .venv/bin/python bench/bench_3b.py [--max-new 8] [--batch 3]

Same image (testdata/images/scene_landscape.png), same prompts (caption en,
detect cat ; dog, segment cat ; dog), same max_new_tokens on both sides:

  paliprompt:   `go test -bench BenchmarkGenerateSteps` on the exported
                folder: vision encoder once, the tasks as one batch; reports
                vision, prefill and per-step times, tokens/s and peak RSS;
  transformers: the same random weights (make_bench_model.build_model),
                fp32, one generate per task as in the model card; a logits
                processor timestamps every step to split prefill and decode.

Decode is memory-bound: each step reads every decoder weight once (plus the
tied lm_head). The bound is weight bytes per step / measured bandwidth
(`go test -bench BenchmarkMemoryBandwidth`, all cores); the report gives
paliprompt's decode step as a fraction of that bound. Each side runs once
(a 3B prefill takes minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

PROMPTS = ["caption en", "detect cat ; dog", "segment cat ; dog"]


def go_bench(pattern: str, env: dict) -> dict[str, float]:
    e = dict(os.environ, **env)
    e.setdefault("CGO_LDFLAGS", f"-L{ROOT}/.deps/tokenizers")
    e.setdefault("CGO_CFLAGS", f"-I{ROOT}/.deps/onnxruntime/include")
    cmd = ["go", "test", "./grounding/paligemma", "-run", "^$", "-bench", pattern, "-benchtime", "1x", "-count", "1", "-timeout", "60m"]
    out = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    line = next(l for l in out.stdout.splitlines() if l.startswith("Benchmark"))
    metrics = {"ns/op": float(line.split()[2])}
    for value, unit in re.findall(r"([\d.]+) (\S+)", line.split("ns/op", 1)[1]):
        metrics[unit] = float(value)
    return metrics


def decoder_weight_bytes(folder: Path, bytes_per_weight: float) -> float:
    """Weights one decode step reads: every decoder layer's projections and the lm_head."""
    import json

    c = json.loads((folder / "config.json").read_text())["text_config"]
    h, heads, kv, hd, mlp = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["intermediate_size"]
    per_layer = h * (heads + 2 * kv) * hd + heads * hd * h + 3 * h * mlp
    return (c["num_hidden_layers"] * per_layer + c["vocab_size"] * h) * bytes_per_weight


def hf_run(max_new: int) -> dict:
    import torch
    from PIL import Image
    from transformers import LogitsProcessor, LogitsProcessorList

    import make_bench_model
    import tiny_models

    spec = ROOT / "models" / "bench" / "checkpoint-config"
    model = make_bench_model.build_model()
    processor = tiny_models.processor(spec / "tokenizer.json")
    stamps: list[float] = []

    class Stamp(LogitsProcessor):
        def __call__(self, input_ids, scores):
            stamps.append(time.perf_counter())
            return scores

    image = ROOT / "testdata" / "images" / "scene_landscape.png"
    prefill = decode = 0.0
    steps = 0
    start = time.perf_counter()
    for prompt in PROMPTS:
        stamps.clear()
        t0 = time.perf_counter()
        inputs = processor(text=prompt, images=Image.open(image), return_tensors="pt")
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=max_new, min_new_tokens=max_new, do_sample=False,
                           logits_processor=LogitsProcessorList([Stamp()]))
        prefill += stamps[0] - t0
        decode += stamps[-1] - stamps[0]
        steps += len(stamps) - 1
    total = time.perf_counter() - start
    return {"e2e_s": total, "prefill_s": prefill, "step_ms": decode / max(steps, 1) * 1000,
            "tokens_s": steps / decode if decode else 0, "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-new", type=int, default=8)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--skip-hf", action="store_true")
    args = ap.parse_args()
    bench = ROOT / "models" / "bench"
    bw = go_bench("^BenchmarkMemoryBandwidth$", {"PALIPROMPT_BENCH_MODEL": "x"})
    bandwidth = 4 * (1 << 28) / (bw["ns/op"] / 1e9)  # bytes/s
    print(f"memory read bandwidth (Go, all cores): {bandwidth / 1e9:.1f} GB/s")
    results = {}
    for dtype, bpw in (("fp32", 4.0), ("int8", 1.0)):
        folder = bench / f"paligemma2-3b-448-random-{dtype}"
        if not folder.exists():
            print(f"{folder} missing: run tools/make_bench_model.py")
            continue
        m = go_bench("^BenchmarkGenerateSteps$", {"PALIPROMPT_BENCH_MODEL": str(folder),
                                                   "PALIPROMPT_BENCH_MAX_NEW": str(args.max_new),
                                                   "PALIPROMPT_BENCH_BATCH": str(args.batch)})
        bound_ms = decoder_weight_bytes(folder, bpw) / bandwidth * 1000
        results[dtype] = m
        print(f"paliprompt {dtype}: e2e {m['ns/op'] / 1e9:.1f} s (vision {m['vision-ms'] / 1000:.1f} s, "
              f"prefill x{args.batch} {m['prefill-ms'] / 1000:.1f} s), decode {m['ms/step']:.0f} ms/step "
              f"= {m['tokens/s']:.2f} tokens/s at batch {args.batch}, peak RSS {m['peak-RSS-GB']:.1f} GB; "
              f"bandwidth bound {bound_ms:.0f} ms/step -> {bound_ms / m['ms/step'] * 100:.0f}% of it")
    if args.skip_hf:
        return
    hf = hf_run(args.max_new)
    print(f"transformers fp32: e2e {hf['e2e_s']:.1f} s (prefill x3 {hf['prefill_s']:.1f} s), decode "
          f"{hf['step_ms']:.0f} ms/step = {hf['tokens_s']:.2f} tokens/s at batch 1, peak RSS {hf['rss_gb']:.1f} GB")
    for dtype, m in results.items():
        print(f"  ratio e2e transformers fp32 / paliprompt {dtype}: {hf['e2e_s'] / (m['ns/op'] / 1e9):.2f}x; "
              f"decode tokens/s ratio: {m['tokens/s'] / hf['tokens_s']:.2f}x")


if __name__ == "__main__":
    main()
