"""Snapshot of ComfyUI's node schema for the nodes paliprompt's graphs use.

  python tools/comfyui_object_info.py --comfyui ~/ComfyUI [--python ~/ComfyUI/venv/bin/python]
                                      [--out sdxl/comfyui_object_info.json] [--add NodeClass ...]

Starts the ComfyUI install at --comfyui on the CPU, on a free loopback port,
with its model folders, input, output, temp and user directories pointed at
a temporary folder (nothing in the install is written), reads GET
/system_stats (its version) and GET /object_info, and writes the entries of
the nodes already in the snapshot (plus --add) to --out, sorted, so that a
rerun on the same install gives the same file. Custom node packs the graphs
use (ComfyUI_IPAdapter_plus) must be installed in the install's
custom_nodes/; their versions (pyproject.toml, and the git commit when the
pack is a checkout) go into the file too.

File-name lists (checkpoints, LoRAs, ControlNets, CLIP vision models,
IP-Adapters, input images) depend on the user's folders, not on ComfyUI. To
tell them from fixed enums, every model folder and the input folder get one
probe file; an enum that lists it is a file list. The snapshot keeps such an
input with an empty list and names it in "file_inputs"; paliprompt's graph
check accepts any file name there (and checks the names of the images it
uploads itself against the plan's files).

Tooltips and descriptions are left out (they are long and change wording
between releases); everything /object_info says about inputs and outputs is
kept as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import zlib
from pathlib import Path

PROBE = "paliprompt-probe"
MODEL_FOLDERS = ("checkpoints", "loras", "controlnet", "clip_vision", "ipadapter", "vae", "clip", "embeddings")
DROP_KEYS = ("tooltip", "description", "output_tooltips", "display_name", "category", "search_aliases")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def one_pixel_png() -> bytes:
    """A 1x1 grey PNG, so that LoadImage and LoadImageMask list the probe."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


def prepare(tmp: Path) -> list[str]:
    """Probe folders and the extra_model_paths file; returns the extra CLI arguments."""
    lines = ["paliprompt_probe:", f"  base_path: {tmp / 'models'}"]
    for kind in MODEL_FOLDERS:
        d = tmp / "models" / kind
        d.mkdir(parents=True)
        (d / f"{PROBE}.safetensors").write_bytes(b"")
        lines.append(f"  {kind}: {kind}")
    (tmp / "extra_model_paths.yaml").write_text("\n".join(lines) + "\n")
    for name in ("input", "output", "temp", "user"):
        (tmp / name).mkdir()
    (tmp / "input" / f"{PROBE}.png").write_bytes(one_pixel_png())
    return ["--extra-model-paths-config", str(tmp / "extra_model_paths.yaml"),
            "--input-directory", str(tmp / "input"), "--output-directory", str(tmp / "output"),
            "--temp-directory", str(tmp / "temp"), "--user-directory", str(tmp / "user")]


def start(comfyui: Path, python: str, extra: list[str], log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
           "--disable-auto-launch", "--dont-print-server", *extra]
    proc = subprocess.Popen(cmd, cwd=comfyui, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"ComfyUI exited with code {proc.returncode}; its log: {log.name}")
        try:
            get_json(url + "/system_stats")
            return proc, url
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise SystemExit(f"ComfyUI did not answer in 10 minutes; its log: {log.name}")


def strip(v):
    """Drops the wording keys from an /object_info entry, recursively."""
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in DROP_KEYS}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def enum_values(spec):
    """The values of an enum input spec, or None: old style [[...], {...}], new style ["COMBO", {"options": [...]}]."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return spec[1].get("options")
    return None


def mark_file_lists(name: str, entry: dict, file_inputs: dict) -> None:
    for section in ("required", "optional"):
        for input_name, spec in entry["input"].get(section, {}).items():
            values = enum_values(spec)
            if values is None or not any(str(v).startswith(PROBE) for v in values):
                continue
            values[:] = [v for v in values if not str(v).startswith(PROBE)]
            file_inputs.setdefault(name, []).append(input_name)


def pack_versions(comfyui: Path, modules: set[str]) -> dict:
    out = {}
    for pack in sorted(modules):
        d = comfyui / "custom_nodes" / pack
        info = {}
        if (d / "pyproject.toml").exists():
            project = tomllib.loads((d / "pyproject.toml").read_text()).get("project", {})
            info["version"] = project.get("version", "")
        if (d / ".git").exists():
            info["commit"] = subprocess.run(["git", "-C", str(d), "rev-parse", "HEAD"],
                                            capture_output=True, text=True).stdout.strip()
        out[pack] = info
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", required=True, type=Path, help="the ComfyUI install (the folder with main.py)")
    ap.add_argument("--python", default=sys.executable, help="the Python that runs ComfyUI")
    ap.add_argument("--out", default="sdxl/comfyui_object_info.json", type=Path)
    ap.add_argument("--add", nargs="*", default=[], help="node classes to add to the snapshot")
    ap.add_argument("--pack-commit", action="append", default=[], metavar="PACK=COMMIT",
                    help="record a custom node pack's commit when its folder is not a git checkout")
    args = ap.parse_args()

    wanted = set(args.add)
    if args.out.exists():
        wanted |= set(json.loads(args.out.read_text())["nodes"])
    if not wanted:
        raise SystemExit("no nodes to snapshot: name them with --add")

    with tempfile.TemporaryDirectory(prefix="comfyui-object-info-") as t:
        tmp = Path(t)
        extra = prepare(tmp)
        with open(tmp / "comfyui.log", "w") as log:
            proc, url = start(args.comfyui.resolve(), args.python, extra, log)
            try:
                stats = get_json(url + "/system_stats")
                info = get_json(url + "/object_info")
            finally:
                proc.terminate()
                proc.wait(timeout=60)

    missing = sorted(wanted - set(info))
    if missing:
        raise SystemExit(f"ComfyUI at {args.comfyui} has no nodes {missing} (is the custom node pack installed?)")
    nodes, file_inputs, packs = {}, {}, set()
    for name in sorted(wanted):
        entry = strip(info[name])
        mark_file_lists(name, entry, file_inputs)
        module = entry.get("python_module", "")
        if module.startswith("custom_nodes."):
            packs.add(module.split(".")[1])
        nodes[name] = entry
    custom = pack_versions(args.comfyui, packs)
    for item in args.pack_commit:
        pack, _, commit = item.partition("=")
        custom.setdefault(pack, {})["commit"] = commit
    snapshot = {
        "about": "ComfyUI /object_info entries of the nodes paliprompt's graphs use; made by tools/comfyui_object_info.py",
        "comfyui_version": stats["system"]["comfyui_version"],
        "custom_nodes": custom,
        "file_inputs": file_inputs,
        "nodes": nodes,
    }
    args.out.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"{args.out}: {len(nodes)} nodes from ComfyUI {snapshot['comfyui_version']}, custom packs {custom}")


if __name__ == "__main__":
    main()
