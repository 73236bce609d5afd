"""Build the tiny test models under testdata/models/ (deterministic).

  python tools/make_test_models.py [--skip-dtype-checks]

1. Hugging Face checkpoints with random weights (tools/tiny_models.py) in
   out/tiny-hf/paligemma2, paligemma1 and paligemma2-hidden12 (ignored;
   make_goldens runs transformers on them).
2. Exports through tools/export_paligemma.py (each verified against
   transformers):
     testdata/models/tiny-paligemma2/            own layout, fp32
     testdata/models/tiny-paligemma2-community/  same weights, onnx-community layout
     testdata/models/tiny-paligemma2-v1/         same weights, the own layout's first
                                                 version (scale in the decoder, sliding
                                                 mask derived in the graph): older exports
     testdata/models/tiny-paligemma1/            Gemma 1 decoder, own layout, fp32
     testdata/models/tiny-paligemma2-hidden12/   hidden 12 (sqrt not exact), 224 px, own
   plus, unless --skip-dtype-checks, throw-away fp16 and int8 exports of the
   tiny PaliGemma 2 (and an fp16 one of the community layout) to prove the
   exporter's self-check passes in every dtype; their differences are printed.
3. testdata/models/vae-oid-random.npz: a random mask decoder in the real
   vae-oid format; each model folder links to it as vae-oid.npz.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import export_paligemma
import tiny_models
import vae_oid
from fixture_io import REPO, TESTDATA, sha256_file

HF_DIR = REPO / "out" / "tiny-hf"
MODELS = TESTDATA / "models"
# name: (PaliGemma version, seed, shape)
CHECKPOINTS = {
    "paligemma2": (2, 1234, tiny_models.DEFAULT_SHAPE),
    "paligemma1": (1, 4321, tiny_models.DEFAULT_SHAPE),
    "paligemma2-hidden12": (2, 2468, tiny_models.HIDDEN12),
}
VAE_SEED = 7
VAE_FILE = "vae-oid-random.npz"


def checkpoints() -> dict[str, Path]:
    """Build (or rebuild) the tiny Hugging Face checkpoints."""
    out = {}
    for name, (version, seed, shape) in CHECKPOINTS.items():
        path = HF_DIR / name
        shutil.rmtree(path, ignore_errors=True)
        out[name] = tiny_models.build_checkpoint(version, seed, path, shape)
    return out


def link_vae(folder: Path) -> None:
    link = folder / "vae-oid.npz"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(Path("..") / VAE_FILE, link)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-dtype-checks", action="store_true", help="do not run the fp16/int8 export checks")
    args = parser.parse_args()

    hf = checkpoints()
    targets = [
        (hf["paligemma2"], MODELS / "tiny-paligemma2", "own"),
        (hf["paligemma2"], MODELS / "tiny-paligemma2-community", "community"),
        (hf["paligemma2"], MODELS / "tiny-paligemma2-v1", "own-v1"),
        (hf["paligemma1"], MODELS / "tiny-paligemma1", "own"),
        (hf["paligemma2-hidden12"], MODELS / "tiny-paligemma2-hidden12", "own"),
    ]
    for checkpoint, folder, layout in targets:
        shutil.rmtree(folder, ignore_errors=True)
        export_paligemma.export(checkpoint, folder, "fp32", layout)
    vae_oid.write_npz(MODELS / VAE_FILE, vae_oid.random_params(VAE_SEED))
    for _, folder, _ in targets:
        link_vae(folder)

    if not args.skip_dtype_checks:
        with tempfile.TemporaryDirectory() as tmp:
            for dtype, layout in (("fp16", "own"), ("int8", "own"), ("fp16", "community")):
                export_paligemma.export(hf["paligemma2"], Path(tmp) / f"{dtype}-{layout}", dtype, layout)
            export_paligemma.export(hf["paligemma1"], Path(tmp) / "pg1-fp16", "fp16", "own")

    total = 0
    for path in sorted(MODELS.rglob("*")):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
            print(f"{path.stat().st_size:9d}  {sha256_file(path)[:16]}  {path.relative_to(REPO)}")
    print(f"{total:9d}  testdata/models total")


if __name__ == "__main__":
    main()
