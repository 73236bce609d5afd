"""The PaliGemma mask decoder (big_vision's VQ-VAE decoder, vae-oid.npz): a
random file in the real format and a NumPy reference implementation.

Architecture and key names (big_vision
evaluators/proj/paligemma/transfers/segmentation.py; weights in PyTorch
layout, Conv2d (out, in, kh, kw), ConvTranspose2d (in, out, kh, kw)):

  _vq_vae._embedding          (128, 512)  codebook; 16 codes -> 4x4x512, row-major
  decoder.0                   conv 1x1 512->128, ReLU
  decoder.2.net, decoder.3.net residual blocks: conv3x3 (pad 1) 128->128, ReLU,
                              conv3x3 128->128, ReLU, conv1x1 128->128 (.0 .2 .4), + input
  decoder.4/.6/.8/.10         ConvTranspose k4 s2, PyTorch padding 1 (flax padding 2
                              with transpose_kernel), each + ReLU: 128->128->64->32->16,
                              4 -> 8 -> 16 -> 32 -> 64 pixels
  decoder.12                  conv 1x1 16->1, no activation

Box placement (the evaluator): the box in [0,1] (bins / 1023) is scaled to
pixels and truncated, y0, x0, y1, x1 = int(y0*h), int(x0*w), int(y1*h),
int(x1*w); an empty box (x1 <= x0 or y1 <= y0) gives no mask; the 64x64
float output is resized to (x1-x0) x (y1-y0) with PIL's BILINEAR on a
mode "F" image; binary mask = value > 0, soft mask = clip(value*0.5+0.5, 0, 1).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

NUM_CODES, CODE_DIM, WIDTH = 128, 512, 128
UPSAMPLE = [(128, 128), (128, 64), (64, 32), (32, 16)]


def shapes() -> dict[str, tuple[int, ...]]:
    s: dict[str, tuple[int, ...]] = {"_vq_vae._embedding": (NUM_CODES, CODE_DIM)}
    s["decoder.0.weight"], s["decoder.0.bias"] = (WIDTH, CODE_DIM, 1, 1), (WIDTH,)
    for block in ("decoder.2.net", "decoder.3.net"):
        s[f"{block}.0.weight"], s[f"{block}.0.bias"] = (WIDTH, WIDTH, 3, 3), (WIDTH,)
        s[f"{block}.2.weight"], s[f"{block}.2.bias"] = (WIDTH, WIDTH, 3, 3), (WIDTH,)
        s[f"{block}.4.weight"], s[f"{block}.4.bias"] = (WIDTH, WIDTH, 1, 1), (WIDTH,)
    for name, (cin, cout) in zip(("decoder.4", "decoder.6", "decoder.8", "decoder.10"), UPSAMPLE):
        s[f"{name}.weight"], s[f"{name}.bias"] = (cin, cout, 4, 4), (cout,)
    s["decoder.12.weight"], s["decoder.12.bias"] = (1, 16, 1, 1), (1,)
    return s


def random_params(seed: int) -> dict[str, np.ndarray]:
    """Random weights in the real shapes. He-scaled, then rounded to 1/16 of
    their std so the compressed file stays small; the last layer is scaled
    and shifted so outputs spread around 0 (about -1..1) like the real decoder."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in shapes().items():
        if name == "_vq_vae._embedding":
            std = 1.0
        elif name.endswith(".bias"):
            std = 0.02
        else:
            fan_in = shape[0] * shape[2] * shape[3] / 4 if name in ("decoder.4.weight", "decoder.6.weight",
                                                                     "decoder.8.weight", "decoder.10.weight") \
                else int(np.prod(shape[1:]))
            std = float(np.sqrt(2.0 / fan_in))
        step = std / 16
        params[name] = (np.round(rng.standard_normal(shape) * 16) * step).astype(np.float32)
    # Centre and scale the output over a batch of random code sequences.
    probe = rng.integers(0, NUM_CODES, size=(8, 16))
    params["decoder.12.bias"] = np.zeros(1, np.float32)
    out = np.stack([decode(params, c) for c in probe])
    scale = np.float32(1.0 / max(float(out.std()), 1e-6))
    params["decoder.12.weight"] = (params["decoder.12.weight"] * scale).astype(np.float32)
    params["decoder.12.bias"] = np.array([-float(np.median(out)) * scale], np.float32)
    return params


def write_npz(path: Path, params: dict[str, np.ndarray]) -> None:
    """An .npz (deflated zip of .npy files) with fixed timestamps, so the
    bytes depend only on the arrays (numpy's savez stamps the current time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(params):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(params[name], dtype="<f4"), version=(1, 0))
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, buf.getvalue(), compresslevel=9)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# ---------------------------------------------------------------- reference decoder (NumPy, float64 accumulation)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PyTorch Conv2d (cross-correlation), stride 1, padding (k-1)/2; x is (C, H, W)."""
    cout, cin, k, _ = w.shape
    pad = (k - 1) // 2
    _, h, wd = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((cout, h, wd), np.float64)
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, ky:ky + h, kx:kx + wd]  # (cin, h, w)
            out += np.tensordot(w[:, :, ky, kx].astype(np.float64), patch, axes=(1, 0))
    return (out + b[:, None, None]).astype(np.float32)


def _conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PyTorch ConvTranspose2d, kernel 4, stride 2, padding 1: input (iy, ix)
    adds w[:, :, ky, kx] to output (2*iy - 1 + ky, 2*ix - 1 + kx)."""
    cin, cout, k, _ = w.shape
    _, h, wd = x.shape
    full = np.zeros((cout, 2 * h + 2, 2 * wd + 2), np.float64)  # output before cropping padding 1
    for ky in range(k):
        for kx in range(k):
            contrib = np.tensordot(w[:, :, ky, kx].astype(np.float64), x.astype(np.float64), axes=(0, 0))
            full[:, ky:ky + 2 * h:2, kx:kx + 2 * wd:2] += contrib
    return (full[:, 1:1 + 2 * h, 1:1 + 2 * wd] + b[:, None, None]).astype(np.float32)


def decode(params: dict[str, np.ndarray], codes) -> np.ndarray:
    """16 codes (0..127) -> the raw 64x64 float32 mask."""
    codes = np.asarray(codes)
    if codes.shape != (16,) or codes.min() < 0 or codes.max() >= params["_vq_vae._embedding"].shape[0]:
        raise ValueError(f"want 16 codes in range, got {codes.tolist()}")
    x = params["_vq_vae._embedding"][codes].reshape(4, 4, -1).transpose(2, 0, 1)  # (512, 4, 4)
    relu = lambda a: np.maximum(a, 0)
    x = relu(_conv(x, params["decoder.0.weight"], params["decoder.0.bias"]))
    for block in ("decoder.2.net", "decoder.3.net"):
        y = relu(_conv(x, params[f"{block}.0.weight"], params[f"{block}.0.bias"]))
        y = relu(_conv(y, params[f"{block}.2.weight"], params[f"{block}.2.bias"]))
        x = (_conv(y, params[f"{block}.4.weight"], params[f"{block}.4.bias"]) + x).astype(np.float32)
    for name in ("decoder.4", "decoder.6", "decoder.8", "decoder.10"):
        x = relu(_conv_transpose(x, params[f"{name}.weight"], params[f"{name}.bias"]))
    return _conv(x, params["decoder.12.weight"], params["decoder.12.bias"])[0]


def decode_torch(params: dict[str, np.ndarray], codes) -> np.ndarray:
    """The same decoder with torch.nn.functional, to cross-check decode()."""
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v) for k, v in params.items()}
    x = t["_vq_vae._embedding"][torch.as_tensor(np.asarray(codes))].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    x = F.relu(F.conv2d(x, t["decoder.0.weight"], t["decoder.0.bias"]))
    for block in ("decoder.2.net", "decoder.3.net"):
        y = F.relu(F.conv2d(x, t[f"{block}.0.weight"], t[f"{block}.0.bias"], padding=1))
        y = F.relu(F.conv2d(y, t[f"{block}.2.weight"], t[f"{block}.2.bias"], padding=1))
        x = F.conv2d(y, t[f"{block}.4.weight"], t[f"{block}.4.bias"]) + x
    for name in ("decoder.4", "decoder.6", "decoder.8", "decoder.10"):
        x = F.relu(F.conv_transpose2d(x, t[f"{name}.weight"], t[f"{name}.bias"], stride=2, padding=1))
    return F.conv2d(x, t["decoder.12.weight"], t["decoder.12.bias"])[0, 0].numpy()


def box_pixels(locs: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixel box of loc bins (y0, x0, y1, x1), as the evaluator computes it."""
    y0, x0, y1, x1 = (v / 1023 for v in locs)
    return int(x0 * width), int(y0 * height), int(x1 * width), int(y1 * height)


def place(raw: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The raw 64x64 output resized into box (x0, y0, x1, y1): PIL BILINEAR on mode F."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return None
    img = Image.fromarray(np.ascontiguousarray(raw, dtype=np.float32))  # 2-D float32 -> mode "F"
    assert img.mode == "F", img.mode
    return np.asarray(img.resize((x1 - x0, y1 - y0), resample=Image.Resampling.BILINEAR), dtype=np.float32)


def soft_u8(values: np.ndarray) -> np.ndarray:
    """Soft mask as 8-bit grey, in float32 like grounding's Mask.Gray:
    uint8(clip(v*0.5+0.5, 0, 1)*255 + 0.5)."""
    half = np.float32(0.5)
    s = np.clip(values.astype(np.float32) * half + half, np.float32(0), np.float32(1))
    return (s * np.float32(255) + half).astype(np.uint8)
