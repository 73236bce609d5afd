"""Small helpers shared by the fixture scripts: deterministic file output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO / "testdata"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    return sha256_bytes(path.read_bytes())


def rel(path: Path, root: Path = TESTDATA) -> str:
    """Path relative to testdata/, with forward slashes, as stored in goldens."""
    return path.resolve().relative_to(root.resolve()).as_posix()


def write_json(path: Path, value: Any) -> None:
    """Write JSON with sorted keys and a trailing newline, so reruns are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write a uint8 array as PNG (HxW grey or HxWx3 RGB), no metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, optimize=True, compress_level=9)


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write a C-order little-endian NPY file (format 1.0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(array)
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    with path.open("wb") as f:
        np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=False)


def f32(value: float | np.floating) -> float:
    """A float32 value as the Python float that round-trips it exactly in JSON."""
    return float(np.float32(value))
