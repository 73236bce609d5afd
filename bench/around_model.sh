#!/usr/bin/env bash
# Everything around the model, for a git revision and the working tree,
# side by side in one run (issue "Everything around the model at the
# model's speed"):
#
#   bench/around_model.sh [REV]        (default: HEAD)
#
# Both builds run with REV's demo model (models/demo-shapes), so that they
# ground the same objects; run it on an idle machine. It prints, for each
# build and their ratio:
#   goal 2  non-model time of generate over NATS (total minus the ONNX
#           Runtime runs of the vision encoder and the decoder) on a
#           4000x3000 and a 1024x768 JPEG of six demo shapes; layout
#           requests/s and p99 with 1 and 8 clients;
#   goal 3  the 4000x3000 JPEG to pixel_values (go test -bench
#           PreprocessLargeJPEG/total), and PIL + transformers' slow
#           processor on the same file;
#   goal 4  mask decoding per mask;
#   goal 5  sdxl + preview + PNGs per image (go test -bench Pipeline).
# Needs `make setup` and `make venv` (the scenes and the PIL reference).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD}
py="$root/.venv/bin/python"
export CGO_LDFLAGS="-L$root/.deps/tokenizers" CGO_CFLAGS="-I$root/.deps/onnxruntime/include"
work=$(mktemp -d)
old="$work/old"
cleanup() { git -C "$root" worktree remove --force "$old" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== building $rev and the working tree" >&2
git -C "$root" worktree add --detach --quiet "$old" "$rev"
ln -s "$root/.deps" "$old/.deps"
(cd "$old" && go build -o bin/paliprompt .)
(cd "$root" && go build -o bin/paliprompt . && go build -o "$work/aroundmodel" ./bench/aroundmodel)

echo "== making the scenes" >&2
objects="red circle ; blue square ; green triangle ; yellow star ; purple diamond ; orange circle"
"$py" - "$work" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tools")
import numpy as np
from PIL import Image, ImageDraw
import demo_scenes as s

out = Path(sys.argv[1])
rng = np.random.default_rng(7)
w, h = 4000, 3000
img, _ = s.draw_background(rng, w, h)
d = ImageDraw.Draw(img)
shapes = [("circle", "red"), ("square", "blue"), ("triangle", "green"), ("star", "yellow"), ("diamond", "purple"), ("circle", "orange")]
for i, (shape, colour) in enumerate(shapes):
    side = 0.26 * h
    x0, y0 = (i % 3) * w / 3 + w / 6 - side / 2, (i // 3) * h / 2 + h / 4 - side / 2
    poly = s.shape_polygon(shape, x0, y0, side)
    if poly is None:
        d.ellipse((x0, y0, x0 + side, y0 + side), fill=s.COLOURS[colour])
    else:
        d.polygon(poly, fill=s.COLOURS[colour])
img.save(out / "scene-4000x3000.jpg", quality=92)
img.resize((1024, 768), Image.BICUBIC).save(out / "scene-1024x768.jpg", quality=92)
EOF

measure() { # measure <tree> <label>
  (cd "$1" && "$work/aroundmodel" -bin bin/paliprompt -config config.toml -model "$old/models/demo-shapes" \
    -image "$work/scene-4000x3000.jpg=$objects" -image "$work/scene-1024x768.jpg=$objects" >"$work/$2.json")
}
gobench() { # gobench <tree> <package> <pattern> [env...]: prints "name metric value" lines
  local tree=$1 pkg=$2 pattern=$3
  shift 3
  (cd "$tree" && env "$@" go test "$pkg" -run '^$' -bench "$pattern" -benchtime 10x -count 1 2>/dev/null) |
    awk '/^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); for (i = 3; i < NF; i += 2) print name, $(i+1), $i }'
}

echo "== goal 2: generate and layout over NATS" >&2
measure "$old" old
measure "$root" new
echo "== goals 3-5: benchmarks" >&2
for t in old new; do
  tree=$old; [ $t = new ] && tree=$root
  {
    gobench "$tree" ./grounding 'PreprocessLargeJPEG/total' PALIPROMPT_BENCH_IMAGE="$work/scene-4000x3000.jpg"
    gobench "$tree" ./grounding 'ParseAndMasks/mask-decode' || true
    gobench "$tree" ./grounding/paligemma '^BenchmarkMaskDecode$' || true
    gobench "$tree" ./sdxl 'Pipeline'
  } >"$work/$t.bench"
done
echo "== the PIL reference" >&2
"$py" - "$work/scene-4000x3000.jpg" >"$work/pil.txt" <<'EOF'
import sys, time
from PIL import Image
from transformers import SiglipImageProcessor
proc = SiglipImageProcessor(size={"height": 448, "width": 448}, resample=3, do_rescale=True, rescale_factor=1 / 255,
                            do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
best = []
for _ in range(5):
    t = time.perf_counter()
    proc(Image.open(sys.argv[1]), return_tensors="np")
    best.append((time.perf_counter() - t) * 1000)
print(sorted(best)[len(best) // 2])
EOF

"$py" - "$work" "$rev" <<'EOF'
import json, sys
from pathlib import Path
work, rev = Path(sys.argv[1]), sys.argv[2]
res = {t: json.loads((work / f"{t}.json").read_text()) for t in ("old", "new")}
bench = {}
for t in ("old", "new"):
    bench[t] = {}
    for line in (work / f"{t}.bench").read_text().splitlines():
        name, metric, value = line.split()
        bench[t][(name, metric)] = float(value)
pil = float((work / "pil.txt").read_text())

def row(what, old, new, unit="ms", higher_better=False):
    if old is None or new is None:
        print(f"{what:58s} {old if old is not None else '-':>10} {new if new is not None else '-':>10}")
        return
    ratio = (new / old) if higher_better else (old / new)
    print(f"{what:58s} {old:10.1f} {new:10.1f} {ratio:8.2f}x  {unit}")

print(f"\n{'':58s} {rev[:10]:>10} {'worktree':>10} {'gain':>9}")
for img in ("scene-4000x3000.jpg", "scene-1024x768.jpg"):
    key = lambda t: next(k for k in res[t] if k.endswith(img))
    o, n = res["old"][key("old")], res["new"][key("new")]
    row(f"goal 2  {img} generate total ({n['objects']} objects)", o["total_ms"], n["total_ms"])
    row(f"goal 2  {img} non-model time", o["non_model_ms"], n["non_model_ms"])
for c in ("1", "8"):
    o, n = res["old"][f"layout-{c}"], res["new"][f"layout-{c}"]
    row(f"goal 2  layout requests, {c} client(s)", o["req_per_s"], n["req_per_s"], "req/s", True)
    row(f"goal 2  layout p99, {c} client(s)", o["p99_ms"], n["p99_ms"])

def get(t, name, metric="ns/op", scale=1e-6):
    v = bench[t].get((name, metric))
    return None if v is None else v * scale

pre = {t: get(t, "BenchmarkPreprocessLargeJPEG/total") for t in ("old", "new")}
row("goal 3  4000x3000 JPEG to pixel_values", pre["old"], pre["new"])
print(f"{'goal 3  PIL + transformers slow processor, same file':58s} {pil:10.1f} {'':10s}  paliprompt {pil / pre['new']:.2f}x faster")
# The model grounder's decoder (ONNX Runtime, 6 masks a run) where the tree
# has it, else the pure-Go one (one mask and its placement per op).
mask = {t: get(t, "BenchmarkMaskDecode", "ms/mask", 1) or get(t, "BenchmarkParseAndMasks/mask-decode") for t in ("old", "new")}
row("goal 4  mask decode, per mask", mask["old"], mask["new"])
img = {t: get(t, "BenchmarkPipeline", "image-ms", 1) for t in ("old", "new")}
if img["old"] is None:  # before image-ms: layout + compose + preview (its PNG not timed)
    img["old"] = sum(get("old", "BenchmarkPipeline", m, 1) for m in ("layout-ms", "compose-ms", "preview-ms"))
row("goal 5  sdxl + preview + PNGs per image (Pipeline scene)", img["old"], img["new"])
EOF
