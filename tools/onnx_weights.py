"""Reads a paliprompt export's weights back into a transformers PaliGemma.

    state = onnx_weights.read(folder, model)   # then model.load_state_dict(state)

The demo model's trainer starts from the shipped model this way
(--init-from): the export is the only copy of its weights that is kept, and
continuing from it is cheaper than training again from nothing. Only the
layout export_paligemma.py writes in fp32 is read: named initializers in
the vision encoder, MatMul weights transposed, Gemma norms folded to
(1 + w), in graph order. The caller checks the result against ONNX
Runtime (the trainer does, on one image, before training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper


def _graph_weights(path: Path) -> list[tuple[str, str, np.ndarray]]:
    """(op, node name, initializer name, array) for every initializer a node reads, in graph order."""
    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    out = []
    for node in m.graph.node:
        for x in node.input:
            if x in inits and inits[x].ndim >= 1:
                out.append((node.op_type, node.name, x, inits[x]))
    return out


def _vision(folder: Path, prefix: str) -> dict[str, torch.Tensor]:
    state = {}
    for op, node, name, arr in _graph_weights(folder / "onnx" / "vision_encoder.onnx"):
        # /tower/encoder/layers.0/self_attn/q_proj/MatMul -> tower.encoder.layers.0.self_attn.q_proj
        module = node.strip("/").rsplit("/", 1)[0].replace("/", ".")
        if op == "MatMul":
            key, t = module + ".weight", torch.from_numpy(arr.T.copy())
        elif name.startswith(("tower.", "projector.")):
            key, t = name, torch.from_numpy(arr.copy())
        else:
            raise ValueError(f"vision encoder: unexpected initializer {name} of {node}")
        key = key.replace("tower.", prefix + "vision_tower.", 1).replace(
            "projector.", prefix + "multi_modal_projector.", 1)
        state[key] = t
    return state


def _decoder(folder: Path, model, prefix: str) -> dict[str, torch.Tensor]:
    lm = prefix + "language_model."
    layers = len(model.model.language_model.layers)
    norms = [f"{lm}layers.{i}.{n}.weight" for i in range(layers) for n in (
        "input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")]
    norms.append(lm + "norm.weight")
    mats = [f"{lm}layers.{i}.{p}.weight" for i in range(layers) for p in (
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    mats.append("lm_head.weight")
    state = {}
    for op, node, name, arr in _graph_weights(folder / "onnx" / "decoder_model_merged.onnx"):
        if op == "Mul" and arr.ndim == 1:
            state[norms.pop(0)] = torch.from_numpy(arr - 1.0)  # folded (1 + w)
        elif op == "MatMul":
            state[mats.pop(0)] = torch.from_numpy(arr.T.copy())
        else:
            raise ValueError(f"decoder: unexpected initializer {name} of {node}")
    if norms or mats:
        raise ValueError(f"decoder: {len(norms)} norms and {len(mats)} matrices not found")
    embed = _graph_weights(folder / "onnx" / "embed_tokens.onnx")
    state[lm + "embed_tokens.weight"] = torch.from_numpy(embed[0][3].copy())
    return state


def read(folder: Path, model) -> dict[str, torch.Tensor]:
    prefix = "model."
    state = _vision(folder, prefix) | _decoder(folder, model, prefix)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"{folder}: no weights for {missing[:5]}")
    for k, v in state.items():
        if k not in own or own[k].shape != v.shape:
            raise ValueError(f"{folder}: {k} {tuple(v.shape)} does not fit the model")
    return state
