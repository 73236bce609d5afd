"""paliprompt vs Hugging Face transformers, side by side in one run.

    .venv/bin/python bench/compare.py [--runs 5] [--max-new 32]

Both sides ground the same image with the same three prompts
(caption en, detect OBJECTS, segment OBJECTS) on the same tiny PaliGemma 2
(testdata/models/tiny-paligemma2 was exported from exactly this
checkpoint: tools/tiny_models.build_checkpoint with the seed of
tools/make_test_models.py):

  transformers: as a user runs it from the model card, one
                processor(...) + model.generate(...) per prompt, fp32, CPU,
                greedy, max_new_tokens as given;
  paliprompt:   `go test -bench BenchmarkGround ./grounding/paligemma` (read + decode the file,
                one Ground call: vision once, the three tasks in one batch).

Then the 4000x3000 JPEG preprocessing: PIL open + transformers' slow
SiglipImageProcessor vs `go test -bench BenchmarkPreprocessLargeJPEG/total`
on the same file. Prints milliseconds and the ratios. Run it on an idle
machine; both sides use all cores (torch threads, ONNX Runtime's default).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import make_test_models  # noqa: E402
import tiny_models  # noqa: E402


def go_bench(pkg: str, pattern: str, env: dict, runs: int) -> dict[str, float]:
    """Runs a Go benchmark of a package, returns ms/op by name."""
    cmd = ["go", "test", pkg, "-run", "^$", "-bench", pattern, "-benchtime", f"{runs}x", "-count", "1"]
    e = dict(os.environ)
    e.update(env)
    e.setdefault("CGO_LDFLAGS", f"-L{ROOT}/.deps/tokenizers")
    e.setdefault("CGO_CFLAGS", f"-I{ROOT}/.deps/onnxruntime/include")
    out = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    res = {}
    for line in out.stdout.splitlines():
        m = re.match(r"(Benchmark\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
        if m:
            res[m.group(1)] = float(m.group(3)) / 1e6
    return res


def hf_ground(model, processor, photo: Path, objects: str, max_new: int) -> list[str]:
    outs = []
    for prompt in ("caption en", f"detect {objects}", f"segment {objects}"):
        image = Image.open(photo)
        inputs = processor(text=prompt, images=image, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=max_new, do_sample=False)
        outs.append(processor.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return outs


def timed(fn, runs: int) -> float:
    fn()  # warm up
    best = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    return float(np.median(best)) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--objects", default="cat ; dog")
    ap.add_argument("--photo", type=Path, default=ROOT / "testdata/images/scene_landscape.png")
    args = ap.parse_args()

    from transformers import PaliGemmaForConditionalGeneration

    work = Path(tempfile.mkdtemp(prefix="paliprompt-bench-"))
    version, seed, shape = make_test_models.CHECKPOINTS["paligemma2"]
    ck = tiny_models.build_checkpoint(version, seed, work / "tiny-paligemma2", shape)
    model = PaliGemmaForConditionalGeneration.from_pretrained(ck).eval()
    processor = tiny_models.processor(ck / "tokenizer.json")

    print(f"threads: torch {torch.get_num_threads()}, machine {os.cpu_count()} CPUs")
    hf_ms = timed(lambda: hf_ground(model, processor, args.photo, args.objects, args.max_new), args.runs)
    go = go_bench("./grounding/paligemma", "^BenchmarkGround$", {
        "PALIPROMPT_BENCH_PHOTO": str(args.photo),
        "PALIPROMPT_BENCH_OBJECTS": args.objects,
        "PALIPROMPT_BENCH_MAX_NEW": str(args.max_new),
    }, args.runs)
    go_ms = go["BenchmarkGround"]
    print(f"tiny PaliGemma 2, caption + detect + segment, max_new_tokens {args.max_new}, {args.photo.name}:")
    print(f"  transformers generate x3: {hf_ms:9.1f} ms")
    print(f"  paliprompt Ground:        {go_ms:9.1f} ms")
    print(f"  ratio (transformers / paliprompt): {hf_ms / go_ms:.2f}x")

    # 4000x3000 JPEG preprocessing, same file on both sides.
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3000, 0:4000]
    big = np.stack([(x // 7) % 256, (y // 5) % 256, (x + y) // 31 % 256], -1).astype(np.uint8)
    big = np.clip(big.astype(np.int16) + rng.integers(-20, 20, big.shape), 0, 255).astype(np.uint8)
    jpeg = work / "photo_4000x3000.jpg"
    Image.fromarray(big).save(jpeg, quality=90)
    slow = tiny_models.processor(ck / "tokenizer.json").image_processor
    hf_pre = timed(lambda: slow(Image.open(jpeg), return_tensors="np"), args.runs)
    go = go_bench("./grounding", "^BenchmarkPreprocessLargeJPEG$", {"PALIPROMPT_BENCH_IMAGE": str(jpeg)}, args.runs)
    go_pre = go["BenchmarkPreprocessLargeJPEG/total"]
    print("4000x3000 JPEG -> 448x448 pixel_values:")
    print(f"  PIL + transformers slow processor: {hf_pre:8.1f} ms")
    print(f"  paliprompt decode + preprocess:    {go_pre:8.1f} ms"
          f"  (decode {go['BenchmarkPreprocessLargeJPEG/decode']:.1f}, rgb {go['BenchmarkPreprocessLargeJPEG/rgb']:.1f},"
          f" resize+normalize {go['BenchmarkPreprocessLargeJPEG/resize+normalize']:.1f})")
    print(f"  ratio (transformers / paliprompt): {hf_pre / go_pre:.2f}x")


if __name__ == "__main__":
    main()
