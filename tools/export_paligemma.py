"""Export a Hugging Face PaliGemma / PaliGemma 2 checkpoint to paliprompt's ONNX model folder.

  python tools/export_paligemma.py CHECKPOINT_DIR OUT_DIR [--dtype fp32|fp16|int8] [--layout own|own-v1|community]

Writes OUT_DIR/config.json, generation_config.json, preprocessor_config.json,
tokenizer.json (+ tokenizer_config.json), README.md and onnx/:

  vision_encoder.onnx   pixel_values f32 [B,3,H,W] -> image_features f32 [B,N,hidden]
  embed_tokens.onnx     input_ids i64 [B,S] -> inputs_embeds f32 [B,S,hidden]
  decoder_model_merged.onnx
      own layout:       inputs_embeds f32 [B,S,hidden], attention_mask f32 [B,1,S,P+S]
                        (additive: 0 attend, float32 lowest masked), sliding_attention_mask
                        (the same for the sliding-window layers; Gemma 2 only),
                        position_ids i64 [B,S], past_key_values.{i}.key/.value
                        [B,kv_heads,P,head_dim]
                        -> logits f32 [B,1,vocab] (last position), present.{i}.key/.value
      community layout: the same without the masks, logits f32 [B,S,vocab]
                        (onnx-community / transformers.js convention, batch 1)

Embedding scale (sqrt(hidden)), as transformers 5 applies it:
  own layout:       image_features are the projector's output unscaled
                    (transformers' get_image_features), inputs_embeds are the
                    embeddings times float32(sqrt(hidden)) (Gemma's
                    TextScaledWordEmbedding), and the decoder scales nothing:
                    the caller's concatenation is bit for bit transformers'
                    merged inputs_embeds.
  community layout: image_features divided by sqrt(hidden), inputs_embeds not
                    scaled, the decoder multiplies every row (transformers.js).
--layout own-v1 writes the own layout as it was before (community scaling
with attention_mask, sliding mask derived in the graph): what older
paliprompt runtimes expect; the current one runs both, since it only
concatenates the two outputs and binds sliding_attention_mask when the
decoder has it.

Sliding-window layers (Gemma 2) of the own layout take their mask from the
caller (sliding_attention_mask), built as transformers does: a query that
belongs to the bidirectional prefix block keeps its attention_mask row
whatever the distance; any other query (generated tokens) also loses every
key whose cache index k satisfies q - k >= sliding_window. When no query
reaches that far (P + S <= sliding_window) both masks are the same tensor.
The community and own-v1 layouts derive it inside the graph from their mask.

--dtype fp16 keeps weights and matmuls in float16 but RMSNorm, residual adds,
rotary embeddings, softmax, softcaps and logits in float32 (Gemma overflows
in pure fp16; V100s have no bfloat16); the KV cache is float16.
--dtype int8 quantizes the fp32 export's MatMul and embedding weights to
int8 (weight-only, blocks of 32 with fp32 scales: onnxruntime's MatMulNBits
and GatherBlockQuantized) for CPUs; activations stay fp32.

Every export is verified before it is kept: onnxruntime runs the graphs on
random inputs and is compared with the Hugging Face model in torch (fp32);
the maximum absolute differences are printed and must stay under the
tolerance of the dtype (TOLERANCE below), and the decoder's Tanh nodes are
counted (one per attention softcap layer + one final softcap).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OPSET = 20  # Gelu is one op from opset 20, so Tanh nodes are exactly the softcaps
LOWEST = float(np.finfo(np.float32).min)
# Activations are divided by this before fp16 output projections and
# multiplied back in fp32, so the fp16 matmul outputs stay far below 65504.
FP16_GUARD = 32.0
TWO_GB = 2**31 - 1
INT8_BLOCK = 32
# MatMulNBits accuracy_level 4: the CPU kernel quantizes each block of
# activations to int8 too and multiplies with integer dot products (VNNI
# where the CPU has it). Level 0 dequantizes the weights to fp32 first,
# which makes a 3B prefill slower than plain fp32. Measured error: the
# int8 row of TOLERANCE's check output (tools/README.md).
INT8_ACCURACY_LEVEL = 4

# Maximum absolute difference allowed between onnxruntime and transformers
# (fp32 torch), per dtype, as a fraction of the compared tensor's own scale:
# limit = TOLERANCE[dtype] * max(1, max |reference|).
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "int8": 1e-1}


@dataclass(frozen=True)
class Layout:
    """What a decoder layout takes from its caller."""

    mask: bool  # attention_mask input (batches of different lengths), last-position logits
    sliding_mask: bool  # sliding_attention_mask input (else derived in the graph)
    hf_embeds: bool  # inputs are transformers' inputs_embeds (else everything scaled inside)


LAYOUTS = {
    "own": Layout(mask=True, sliding_mask=True, hf_embeds=True),
    "own-v1": Layout(mask=True, sliding_mask=False, hf_embeds=False),
    "community": Layout(mask=False, sliding_mask=False, hf_embeds=False),
}


@dataclass
class TextSpec:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    sliding_window: int | None
    final_softcap: float | None
    attn_softcap: float | None
    post_norms: bool  # Gemma 2: norms after attention and MLP as well as before


def text_spec(model) -> TextSpec:
    cfg = model.config.get_text_config()
    lm = model.model.language_model
    return TextSpec(
        hidden=cfg.hidden_size,
        layers=cfg.num_hidden_layers,
        heads=cfg.num_attention_heads,
        kv_heads=cfg.num_key_value_heads,
        head_dim=lm.layers[0].self_attn.head_dim,
        vocab=cfg.vocab_size,
        sliding_window=getattr(cfg, "sliding_window", None) if "sliding_attention" in (getattr(cfg, "layer_types", None) or []) else None,
        final_softcap=getattr(cfg, "final_logit_softcapping", None),
        attn_softcap=getattr(cfg, "attn_logit_softcapping", None),
        post_norms=hasattr(lm.layers[0], "pre_feedforward_layernorm"),
    )


def rms_norm(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """Gemma RMSNorm in float32: x * rsqrt(mean(x^2) + eps) * (1 + w)."""
    x = x.float()
    out = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)
    return out * (1.0 + norm.weight.float())


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def index_vector(like: torch.Tensor) -> torch.Tensor:
    """0, 1, ..., n-1 (float32) for a 1-D tensor of length n, without a
    data-dependent arange, so the length stays dynamic in the ONNX graph."""
    return torch.cumsum(torch.ones_like(like, dtype=torch.float32), 0) - 1


def sliding_mask(mask: torch.Tensor, window: int) -> torch.Tensor:
    """The sliding-window layers' mask derived inside the graph from the
    mask [B,1,S,T] (community, own-v1; the own layout takes it from the caller).

    Reproduces transformers (masking_utils: sliding causal mask OR the
    prefix block overlay, AND padding): queries in the bidirectional prefix
    block keep their mask; other queries also lose keys at cache distance
    q - k >= window. Query i has cache index T - S + i.
    """
    s, t = mask.shape[2], mask.shape[3]
    allowed = (mask > -1e30).float()
    kidx = index_vector(mask[0, 0, 0, :])
    qidx = index_vector(mask[0, 0, :, 0]) + (t - s)
    dist = qidx[:, None] - kidx[None, :]  # [S,T]
    later = (dist < 0).float()
    sees_later = (allowed * later).amax(dim=-1, keepdim=True)  # [B,1,S,1]
    own = allowed[:, :, :, t - s :]  # [B,1,S,S]: keys of this call's tokens
    rows = index_vector(mask[0, 0, :, 0])
    earlier_row = (rows[:, None] < rows[None, :]).float()  # [S(query i'), S(key j)]
    seen_by_earlier = (own * earlier_row).amax(dim=-2, keepdim=True).transpose(-1, -2)  # [B,1,S,1]
    in_prefix = torch.maximum(sees_later, seen_by_earlier)
    cut = (dist >= window).float() * (1.0 - in_prefix)
    return torch.where(cut > 0, torch.full_like(mask, LOWEST), mask)


def embed_scale(spec: TextSpec) -> torch.Tensor:
    """sqrt(hidden) as transformers' Gemma(2)TextScaledWordEmbedding holds it:
    torch.tensor(hidden_size**0.5), a float32 scalar."""
    return torch.tensor(spec.hidden**0.5, dtype=torch.float32)


class Decoder(nn.Module):
    """One prefill or decode step of the Gemma / Gemma 2 decoder with a KV cache.

    Own layout: inputs_embeds arrive as transformers' (text rows scaled,
    image rows not), attention_mask and (sliding-window models)
    sliding_attention_mask come from the caller. Community and own-v1:
    every input row is multiplied by sqrt(hidden) here; the community
    layout masks nothing."""

    def __init__(self, model, spec: TextSpec, half: bool, layout: Layout):
        super().__init__()
        lm = model.model.language_model
        self.spec, self.half, self.layout = spec, half, layout
        self.with_mask = layout.mask
        self.with_sliding_mask = layout.sliding_mask and spec.sliding_window is not None
        self.layers = lm.layers
        self.norm = lm.norm
        self.register_buffer("inv_freq", lm.rotary_emb.inv_freq.float().clone(), persistent=False)
        self.rope_scale = float(getattr(lm.rotary_emb, "attention_scaling", 1.0))
        self.lm_head = model.lm_head
        self.normalizer = None if layout.hf_embeds else math.sqrt(spec.hidden)
        self.wdtype = torch.float16 if half else torch.float32
        if half:
            for layer in self.layers:
                for mod in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                            layer.self_attn.o_proj, layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
                    mod.half()
            self.lm_head_weight = nn.Parameter(model.lm_head.weight.detach().half(), requires_grad=False)
        else:
            self.lm_head_weight = model.lm_head.weight

    def forward(self, inputs_embeds, *rest):
        masks = {}
        if self.with_sliding_mask:
            mask, masks["sliding"], position_ids, past = rest[0], rest[1], rest[2], rest[3:]
        elif self.with_mask:
            mask, position_ids, past = rest[0], rest[1], rest[2:]
        else:
            mask, position_ids, past = None, rest[0], rest[1:]
        h = inputs_embeds.float()
        if self.normalizer is not None:
            h = h * torch.tensor(self.normalizer, dtype=torch.float32)
        freqs = position_ids[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (emb.cos() * self.rope_scale)[:, None]
        sin = (emb.sin() * self.rope_scale)[:, None]

        presents = []
        for i, layer in enumerate(self.layers):
            past_k, past_v = past[2 * i], past[2 * i + 1]
            x = rms_norm(h, layer.input_layernorm)
            if mask is None:
                # Community layout: nothing masked (batch 1, prefill = prefix).
                keys = torch.cat([past_k[:, :1, :, 0].float(), x[:, None, :, 0]], dim=2)  # [B,1,T]
                mask = torch.zeros_like(x[:, None, :, :1]) + torch.zeros_like(keys)[:, :, None, :]
            window = getattr(layer.self_attn, "sliding_window", None)  # Gemma 1 has none
            if window is not None and "sliding" not in masks:
                masks["sliding"] = sliding_mask(mask, window)
            layer_mask = masks["sliding"] if window is not None else mask
            a, k, v = self.attention(layer.self_attn, x, cos, sin, past_k, past_v, layer_mask)
            presents += [k, v]
            if self.spec.post_norms:
                h = h + rms_norm(a, layer.post_attention_layernorm)
                m = self.mlp(layer.mlp, rms_norm(h, layer.pre_feedforward_layernorm))
                h = h + rms_norm(m, layer.post_feedforward_layernorm)
            else:
                h = h + a
                h = h + self.mlp(layer.mlp, rms_norm(h, layer.post_attention_layernorm))

        if self.with_mask:
            h = h[:, -1:, :]
        h = rms_norm(h, self.norm)
        logits = F.linear(h.to(self.wdtype), self.lm_head_weight).float()
        if self.spec.final_softcap is not None:
            cap = self.spec.final_softcap
            logits = torch.tanh(logits / cap) * cap
        return (logits, *presents)

    def attention(self, attn, x, cos, sin, past_k, past_v, mask):
        spec = self.spec
        b, s, _ = x.shape
        xw = x.to(self.wdtype)
        q = attn.q_proj(xw).view(b, s, spec.heads, spec.head_dim).transpose(1, 2).float()
        k = attn.k_proj(xw).view(b, s, spec.kv_heads, spec.head_dim).transpose(1, 2).float()
        v = attn.v_proj(xw).view(b, s, spec.kv_heads, spec.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k_all = torch.cat([past_k, k.to(past_k.dtype)], dim=2)
        v_all = torch.cat([past_v, v.to(past_v.dtype)], dim=2)
        rep = spec.heads // spec.kv_heads
        kr = k_all.repeat_interleave(rep, dim=1) if rep > 1 else k_all
        vr = v_all.repeat_interleave(rep, dim=1) if rep > 1 else v_all
        if self.half:
            scores = ((q * attn.scaling).half() @ kr.transpose(2, 3)).float()
        else:
            scores = (q @ kr.transpose(2, 3)) * attn.scaling
        if spec.attn_softcap is not None:
            scores = torch.tanh(scores / spec.attn_softcap) * spec.attn_softcap
        scores = scores + mask
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(self.wdtype)
        out = (probs @ vr).transpose(1, 2).reshape(b, s, spec.heads * spec.head_dim)
        if self.half:
            out = attn.o_proj(out / FP16_GUARD).float() * FP16_GUARD
        else:
            out = attn.o_proj(out)
        return out, k_all, v_all

    def mlp(self, mlp, x):
        xw = x.to(self.wdtype)
        act = F.gelu(mlp.gate_proj(xw).float(), approximate="tanh") * mlp.up_proj(xw).float()
        if self.half:
            return mlp.down_proj((act / FP16_GUARD).half()).float() * FP16_GUARD
        return mlp.down_proj(act)


class EmbedTokens(nn.Module):
    """The embedding lookup; scaled (own layout) exactly as transformers does
    it: the float32 row times the float32 scalar sqrt(hidden)."""

    def __init__(self, model, spec: TextSpec, half: bool, scaled: bool):
        super().__init__()
        w = model.model.language_model.embed_tokens.weight.detach()
        self.weight = nn.Parameter(w.half() if half else w, requires_grad=False)
        self.register_buffer("scale", embed_scale(spec) if scaled else None, persistent=False)

    def forward(self, input_ids):
        x = F.embedding(input_ids, self.weight).float()
        return x * self.scale if self.scale is not None else x


class FP32LayerNorm(nn.Module):
    def __init__(self, ln: nn.LayerNorm):
        super().__init__()
        self.shape, self.eps = ln.normalized_shape, ln.eps
        self.weight = nn.Parameter(ln.weight.detach().float().clone(), requires_grad=False)
        self.bias = nn.Parameter(ln.bias.detach().float().clone(), requires_grad=False)

    def forward(self, x):
        return F.layer_norm(x.float(), self.shape, self.weight, self.bias, self.eps).to(x.dtype)


class VisionEncoder(nn.Module):
    """SigLIP + projector: transformers' get_image_features (own layout), or
    that divided by sqrt(hidden) (community, own-v1)."""

    def __init__(self, model, spec: TextSpec, half: bool, scaled_down: bool):
        super().__init__()
        self.tower = model.model.vision_tower
        # transformers 5 puts the transformer directly in SiglipVisionModel, 4.x under .vision_model
        self.vision = getattr(self.tower, "vision_model", self.tower)
        self.projector = model.model.multi_modal_projector
        self.normalizer = math.sqrt(spec.hidden) if scaled_down else None
        self.half = half
        if half:
            patch = self.vision.embeddings.patch_embedding
            for name, mod in list(self.tower.named_modules()):
                if isinstance(mod, nn.LayerNorm):
                    parent = self.tower.get_submodule(name.rsplit(".", 1)[0]) if "." in name else self.tower
                    setattr(parent, name.rsplit(".", 1)[-1], FP32LayerNorm(mod))
            self.tower.half()
            self.projector.half()
            patch.float()  # the patch convolution stays fp32 (CPU runtimes lack fp16 Conv)
            for mod in self.tower.modules():
                if isinstance(mod, FP32LayerNorm):
                    mod.float()

    def forward(self, pixel_values):
        emb = self.vision.embeddings
        if self.half:
            patches = emb.patch_embedding(pixel_values.float()).flatten(2).transpose(1, 2).half()
            x = patches + emb.position_embedding(emb.position_ids).to(patches.dtype)
            x = self.vision.encoder(inputs_embeds=x).last_hidden_state
            x = self.vision.post_layernorm(x)
        else:
            x = self.tower(pixel_values=pixel_values).last_hidden_state
        x = self.projector(x).float()
        return x / self.normalizer if self.normalizer is not None else x


# ---------------------------------------------------------------- export


def load_model(checkpoint: Path):
    from transformers import PaliGemmaForConditionalGeneration

    model = PaliGemmaForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def cache_names(spec: TextSpec, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{kv}" for i in range(spec.layers) for kv in ("key", "value")]


def initializer_bytes(proto) -> int:
    """Bytes of all initializers, from their shapes (protobuf cannot measure a message over 2 GB)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    return sum(int(np.prod(t.dims, dtype=np.int64)) * tensor_dtype_to_np_dtype(t.data_type).itemsize
               for t in proto.graph.initializer)


def export_graph(module, args, path: Path, inputs, outputs, axes) -> None:
    """TorchScript ONNX export; weights over 2 GB go to <name>.onnx_data."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / path.name
        with torch.no_grad():
            torch.onnx.export(module, args, str(tmp_path), dynamo=False, opset_version=OPSET,
                              input_names=inputs, output_names=outputs, dynamic_axes=axes,
                              do_constant_folding=True)
        proto = onnx.load(str(tmp_path), load_external_data=True)
        size = initializer_bytes(proto)
        for f in (path, path.with_name(path.name + "_data")):
            f.unlink(missing_ok=True)
        if size > TWO_GB - 64 * 2**20:
            onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=path.name + "_data", size_threshold=1024)
        else:
            onnx.save_model(proto, str(path))


def export_embed(model, spec: TextSpec, onnx_dir: Path, half: bool, layout: str) -> None:
    embed = EmbedTokens(model, spec, half, scaled=LAYOUTS[layout].hf_embeds).eval()
    export_graph(embed, (torch.zeros(2, 4, dtype=torch.long),), onnx_dir / "embed_tokens.onnx",
                 ["input_ids"], ["inputs_embeds"],
                 {"input_ids": {0: "batch_size", 1: "sequence_length"},
                  "inputs_embeds": {0: "batch_size", 1: "sequence_length"}})


def export_all(model, spec: TextSpec, onnx_dir: Path, half: bool, layout: str, image_size: int) -> None:
    with_mask = LAYOUTS[layout].mask
    cache_dtype = torch.float16 if half else torch.float32
    b, p, s = 2, 3, 4
    vision = VisionEncoder(model, spec, half, scaled_down=not LAYOUTS[layout].hf_embeds).eval()
    export_graph(vision, (torch.zeros(1, 3, image_size, image_size),), onnx_dir / "vision_encoder.onnx",
                 ["pixel_values"], ["image_features"],
                 {"pixel_values": {0: "batch_size"}, "image_features": {0: "batch_size"}})
    export_embed(model, spec, onnx_dir, half, layout)
    decoder = Decoder(model, spec, half, LAYOUTS[layout]).eval()
    past_in = cache_names(spec, "past_key_values")
    present = cache_names(spec, "present")
    args = [torch.randn(b, s, spec.hidden)]
    inputs = ["inputs_embeds"]
    axes = {"inputs_embeds": {0: "batch_size", 1: "sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"}}
    if with_mask:
        args.append(torch.zeros(b, 1, s, p + s))
        inputs.append("attention_mask")
        axes["attention_mask"] = {0: "batch_size", 2: "sequence_length", 3: "total_sequence_length"}
    if decoder.with_sliding_mask:
        args.append(torch.zeros(b, 1, s, p + s))
        inputs.append("sliding_attention_mask")
        axes["sliding_attention_mask"] = {0: "batch_size", 2: "sequence_length", 3: "total_sequence_length"}
    args.append(torch.arange(1, s + 1).repeat(b, 1))
    inputs.append("position_ids")
    for name in past_in:
        args.append(torch.zeros(b, spec.kv_heads, p, spec.head_dim, dtype=cache_dtype))
        axes[name] = {0: "batch_size", 2: "past_sequence_length"}
    for name in present:
        axes[name] = {0: "batch_size", 2: "total_sequence_length"}
    axes["logits"] = {0: "batch_size"} if with_mask else {0: "batch_size", 1: "sequence_length"}
    export_graph(decoder, tuple(args), onnx_dir / "decoder_model_merged.onnx",
                 inputs + past_in, ["logits"] + present, axes)


def quantize_int8(src_dir: Path, dst_dir: Path) -> None:
    """Weight-only int8 for the vision encoder and the decoder: MatMul weights
    stored as int8 in blocks of INT8_BLOCK values with one fp32 scale each
    (MatMulNBits); activations stay fp32, which keeps the error far below
    per-tensor dynamic quantization of activations. (onnxruntime quantizes a
    Gather only to 4 bits, so the embedding table is exported in fp16 instead.)"""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in ("vision_encoder.onnx", "decoder_model_merged.onnx"):
        src = src_dir / name
        model = onnx.load(str(src), load_external_data=True)
        quant = MatMulNBitsQuantizer(model, bits=8, block_size=INT8_BLOCK, is_symmetric=True,
                                     accuracy_level=INT8_ACCURACY_LEVEL, op_types_to_quantize=("MatMul",))
        quant.process()
        proto = quant.model.model
        share_quantized_weights(proto.graph)
        size = initializer_bytes(proto)
        out = dst_dir / name
        if size > TWO_GB - 64 * 2**20:
            onnx.save_model(proto, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=name + "_data", size_threshold=1024)
        else:
            onnx.save_model(proto, str(out))


def share_quantized_weights(graph) -> int:
    """Quantizes the MatMuls that read a weight through an Identity node.

    The TorchScript exporter writes a weight used by several layers once and
    feeds the other users through Identity nodes; MatMulNBitsQuantizer only
    rewrites the MatMul that reads the initializer itself, so the others
    stayed fp32 MatMuls with the fp32 weight kept for them. Real PaliGemma
    checkpoints share no layer weights, but the full-size benchmark model
    does (make_bench_model.py), and any export may. Each such MatMul becomes
    a MatMulNBits on the same quantized weight; returns how many."""
    from onnx import helper

    quantized = {n.input[1].removesuffix("_Q8"): n for n in graph.node if n.op_type == "MatMulNBits"}
    producer = {o: n for n in graph.node for o in n.output}
    rewritten = 0
    for i, node in enumerate(graph.node):
        if node.op_type != "MatMul" or node.input[1] not in producer:
            continue
        source = producer[node.input[1]]
        while source.op_type == "Identity" and source.input[0] in producer:
            source = producer[source.input[0]]
        weight = source.input[0] if source.op_type == "Identity" else None
        if weight not in quantized:
            continue
        model_node = quantized[weight]
        new = helper.make_node("MatMulNBits", [node.input[0], *model_node.input[1:]], list(node.output),
                               name=node.name + "_Q8", domain=model_node.domain)
        new.attribute.extend(model_node.attribute)
        graph.node.remove(node)
        graph.node.insert(i, new)
        rewritten += 1
    drop_unused(graph)
    return rewritten


def drop_unused(graph) -> None:
    """Removes Identity nodes and initializers nothing reads any more."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type == "Identity" and n.output[0] not in used]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


# ---------------------------------------------------------------- verification


class Check:
    def __init__(self, dtype: str):
        self.tol = TOLERANCE[dtype]
        self.worst: dict[str, float] = {}
        self.failed: list[str] = []

    def compare(self, name: str, got: np.ndarray, want: np.ndarray, logits: bool = False) -> None:
        got, want = np.asarray(got, dtype=np.float32), np.asarray(want, dtype=np.float32)
        if got.shape != want.shape:
            self.failed.append(f"{name}: shape {got.shape} != {want.shape}")
            return
        if not np.isfinite(got).all():
            self.failed.append(f"{name}: non-finite values")
            return
        diff = float(np.abs(got - want).max()) if got.size else 0.0
        limit = self.tol * max(1.0, float(np.abs(want).max())) if want.size else self.tol
        key = "logits" if logits else name.split("[")[0]
        self.worst[key] = max(self.worst.get(key, 0.0), diff)
        if diff > limit:
            self.failed.append(f"{name}: max abs diff {diff:.3g} > {limit:.3g}")


def reference_masks(b, prefix_lens, suffix_lens, pads, window=None):
    """2-D attention mask and token_type_ids for HF, and our 4-D additive
    masks: the full-attention one and (window given) the sliding-window one,
    built as transformers builds them (prefix-block queries keep their row,
    other queries lose keys at cache distance >= window)."""
    total = [pads[i] + prefix_lens[i] + suffix_lens[i] for i in range(b)]
    s = max(total)
    attn = np.zeros((b, s), np.int64)
    ttype = np.zeros((b, s), np.int64)
    for i in range(b):
        start = s - total[i]
        attn[i, start:] = 1
        ttype[i, start + prefix_lens[i]:] = 1
    allow = np.zeros((b, s, s), bool)
    for i in range(b):
        start = s - total[i]
        prefix_end = start + prefix_lens[i]
        for q in range(start, s):
            for k in range(start, s):
                allow[i, q, k] = k <= q or (q < prefix_end and k < prefix_end)
    mask = np.where(allow, 0.0, LOWEST).astype(np.float32)[:, None]
    sliding = mask
    if window is not None:
        q, k = np.arange(s)[:, None], np.arange(s)[None, :]
        in_prefix = np.zeros((b, s, 1), bool)
        for i in range(b):
            start = s - total[i]
            in_prefix[i, start:start + prefix_lens[i]] = True
        sliding = np.where(allow & (in_prefix | (q - k < window)), 0.0, LOWEST).astype(np.float32)[:, None]
    pos = np.where(attn == 1, np.cumsum(attn, -1), 1).astype(np.int64)
    return attn, ttype, mask, sliding, pos


def decode_step_masks(attn, window=None):
    """Masks of one decode step (one generated query, the newest key) for
    the 2-D attention mask attn [B,T] of every key so far."""
    t = attn.shape[1]
    mask = np.where(attn[:, None, None, :] == 1, 0.0, LOWEST).astype(np.float32)
    if window is None:
        return mask, mask
    near = (t - 1) - np.arange(t) < window
    return mask, np.where((attn == 1)[:, None, None, :] & near, 0.0, LOWEST).astype(np.float32)


def verify(loader, out_dir: Path, dtype: str, layout: str, spec: TextSpec, image_size: int) -> dict:
    """Run the exported graphs in onnxruntime and compare with transformers (fp32 torch)."""
    import onnx
    import onnxruntime as ort
    from transformers import DynamicCache

    check = Check(dtype)
    model = loader()
    rng = np.random.default_rng(0)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = lambda n: ort.InferenceSession(str(out_dir / "onnx" / n), opts, providers=["CPUExecutionProvider"])

    # Vision encoder and embeddings.
    # Own layout: transformers' own tensors (image features unscaled,
    # embeddings scaled); community, own-v1: both divided by sqrt(hidden).
    unscale = 1.0 if LAYOUTS[layout].hf_embeds else math.sqrt(spec.hidden)
    pixels = rng.uniform(-1, 1, size=(2, 3, image_size, image_size)).astype(np.float32)
    with torch.no_grad():
        want = model.model.get_image_features(torch.from_numpy(pixels)).pooler_output / unscale
    check.compare("image_features", sess("vision_encoder.onnx").run(None, {"pixel_values": pixels})[0], want.numpy())
    ids = rng.integers(0, spec.vocab, size=(2, 7))
    with torch.no_grad():
        want = (model.model.language_model.embed_tokens(torch.from_numpy(ids)) / unscale).numpy()
    got = sess("embed_tokens.onnx").run(None, {"input_ids": ids})[0]
    check.compare("inputs_embeds", got, want)
    if LAYOUTS[layout].hf_embeds and dtype == "fp32" and not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
        check.failed.append("inputs_embeds: not bit-identical to transformers' scaled embeddings")

    # Decoder: a left-padded prefill whose prefix block is longer than the
    # sliding window when the model is small enough to afford it, then
    # decode steps.
    window = spec.sliding_window
    long_prefix = window is not None and spec.hidden * window < 2**16
    plen = window + 24 if long_prefix else 12
    if LAYOUTS[layout].mask:
        b, prefix_lens, suffix_lens, pads = 2, [plen, plen - 5], [2, 0], [0, 7]
    else:
        b, prefix_lens, suffix_lens, pads = 1, [plen], [0], [0]
    attn, ttype, mask, sliding, pos = reference_masks(b, prefix_lens, suffix_lens, pads, window)
    # Random inputs of the scale of scaled embeddings (what the decoder sees
    # in transformers); the community layout gets them divided back.
    embed_std = float(model.model.language_model.embed_tokens.weight.detach().std()) * math.sqrt(spec.hidden)
    embeds = (rng.standard_normal((b, attn.shape[1], spec.hidden)) * embed_std).astype(np.float32)
    dec = sess("decoder_model_merged.onnx")
    names = [i.name for i in dec.get_inputs()]
    cache_dtype = np.float16 if dtype == "fp16" else np.float32
    past = {n: np.zeros((b, spec.kv_heads, 0, spec.head_dim), cache_dtype) for n in cache_names(spec, "past_key_values")}
    cache = DynamicCache(config=model.config.get_text_config())
    steps = [(embeds, attn, ttype, mask, sliding, pos)]
    for step in range(3):
        new = (rng.standard_normal((b, 1, spec.hidden)) * embed_std).astype(np.float32)
        attn = np.concatenate([attn, np.ones((b, 1), np.int64)], 1)
        ttype = np.concatenate([ttype, np.ones((b, 1), np.int64)], 1)
        steps.append((new, attn, ttype, *decode_step_masks(attn, window), pos[:, -1:] + 1 + step))
    last_pos = pos[:, -1:]
    for step, (emb, a2, tt, m4, sm4, p) in enumerate(steps):
        if step > 0:
            p = last_pos + step
        feed = {"inputs_embeds": (emb / np.float32(unscale)).astype(np.float32), "position_ids": p, **past}
        if "attention_mask" in names:
            feed["attention_mask"] = m4
        if "sliding_attention_mask" in names:
            feed["sliding_attention_mask"] = sm4
        outs = dec.run(None, feed)
        with torch.no_grad():
            ref = model(inputs_embeds=torch.from_numpy(emb), attention_mask=torch.from_numpy(a2),
                        token_type_ids=torch.from_numpy(tt) if step == 0 else None,
                        position_ids=torch.from_numpy(p), past_key_values=cache, use_cache=True)
        want_logits = ref.logits.numpy()
        if LAYOUTS[layout].mask:
            want_logits = want_logits[:, -1:]
            # Left-padded rows: compare only what the caller uses.
        check.compare(f"logits[step {step}]", outs[0], want_logits, logits=True)
        presents = dict(zip([o.name for o in dec.get_outputs()][1:], outs[1:]))
        for i in range(spec.layers):
            for kv, ref_t in (("key", cache.layers[i].keys), ("value", cache.layers[i].values)):
                got = presents[f"present.{i}.{kv}"].astype(np.float32)
                want_t = ref_t.numpy()
                n = min(got.shape[2], want_t.shape[2])  # HF keeps only the window in sliding layers
                real = got[:, :, -n:]
                if LAYOUTS[layout].mask:
                    for r in range(b):  # pad positions hold don't-care values
                        first = a2.shape[1] - int(a2[r].sum())
                        lo = max(0, first - (got.shape[2] - n))
                        check.compare(f"present.{i}.{kv}[step {step}]", real[r, :, lo:], want_t[r, :, lo:])
                else:
                    check.compare(f"present.{i}.{kv}[step {step}]", real, want_t)
                past[f"past_key_values.{i}.{kv}"] = presents[f"present.{i}.{kv}"]

    graph = onnx.load(str(out_dir / "onnx" / "decoder_model_merged.onnx"), load_external_data=False)
    tanh = sum(1 for n in graph.graph.node if n.op_type == "Tanh")
    want_tanh = (spec.layers if spec.attn_softcap else 0) + (1 if spec.final_softcap else 0)
    if tanh != want_tanh:
        check.failed.append(f"decoder has {tanh} Tanh nodes, want {want_tanh} (softcaps)")
    print(f"verify {dtype}/{layout}: max abs diff " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(check.worst.items()))
          + f"; tolerance {check.tol} x max(1, max|reference|); Tanh nodes {tanh}"
          + (f"; prefill {steps[0][1].shape[1]} tokens > sliding window {window}" if long_prefix else ""), flush=True)
    if check.failed:
        raise SystemExit("export verification FAILED:\n  " + "\n  ".join(check.failed[:20]))
    return {"max_abs_diff": {k: float(f"{v:.3g}") for k, v in sorted(check.worst.items())}, "tanh_nodes": tanh,
            "tolerance": check.tol}


# ---------------------------------------------------------------- model folder


def write_folder_files(checkpoint: Path, out_dir: Path, spec: TextSpec, dtype: str, layout: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint / "config.json", out_dir / "config.json")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        if (checkpoint / name).exists():
            shutil.copyfile(checkpoint / name, out_dir / name)
    if not (out_dir / "tokenizer.json").exists():
        raise SystemExit(f"{checkpoint}: no tokenizer.json")
    if (checkpoint / "preprocessor_config.json").exists():
        shutil.copyfile(checkpoint / "preprocessor_config.json", out_dir / "preprocessor_config.json")
    elif (checkpoint / "processor_config.json").exists():
        proc = json.loads((checkpoint / "processor_config.json").read_text())
        pre = dict(proc["image_processor"], processor_class=proc.get("processor_class", "PaliGemmaProcessor"))
        (out_dir / "preprocessor_config.json").write_text(json.dumps(pre, indent=2, sort_keys=True) + "\n")
    else:
        raise SystemExit(f"{checkpoint}: no preprocessor_config.json or processor_config.json")
    if not (out_dir / "generation_config.json").exists():
        cfg = json.loads((checkpoint / "config.json").read_text())
        text = cfg.get("text_config", {})
        gen = {k: text.get(k, cfg.get(k)) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
        (out_dir / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True) + "\n")


def model_card(checkpoint_name: str, spec: TextSpec, dtype: str, layout: str, report: dict) -> str:
    lay = LAYOUTS[layout]
    if lay.mask:
        masks = "attention_mask f32 [B,1,S,P+S] additive (0 attend, float32 lowest masked)"
        if spec.sliding_window is not None and lay.sliding_mask:
            masks += (f" and sliding_attention_mask (the same, plus keys at cache distance >= {spec.sliding_window} "
                      "masked for queries outside the prefix block)")
        mask = masks + ", built by the caller; logits [B,1,vocab] for the last position"
    else:
        mask = "no attention_mask (batch 1, prefill = image + prefix), logits [B,S,vocab]"
    if lay.hf_embeds:
        vision = "the projector output, unscaled (transformers' get_image_features)"
        embed = f"times float32(sqrt({spec.hidden})) (transformers' scaled word embedding)"
        scale = ("the decoder scales nothing: the image features in place of the <image> rows of "
                 "inputs_embeds are transformers' merged inputs_embeds bit for bit")
    else:
        vision = f"divided by sqrt({spec.hidden})"
        embed = "not scaled"
        scale = f"the decoder multiplies every row by sqrt({spec.hidden}) (onnx-community convention)"
    return f"""# {checkpoint_name} (ONNX, {dtype}, {layout} layout)

Exported by paliprompt's tools/export_paligemma.py (opset {OPSET}).

- onnx/vision_encoder.onnx: pixel_values f32 [B,3,H,W] -> image_features f32 [B,N,{spec.hidden}], {vision}
- onnx/embed_tokens.onnx: input_ids i64 [B,S] -> inputs_embeds f32 [B,S,{spec.hidden}], {embed}
- onnx/decoder_model_merged.onnx: inputs_embeds, {mask}; position_ids i64 [B,S] (first real token = 1);
  past_key_values.{{0..{spec.layers - 1}}}.key/.value [B,{spec.kv_heads},P,{spec.head_dim}] -> present.*
  ({'float16' if dtype == 'fp16' else 'float32'} KV cache)
- embedding scale: {scale}
- sliding window: {spec.sliding_window or 'none'}; attention softcap {spec.attn_softcap}; final softcap {spec.final_softcap}

Verified against transformers (fp32 torch) on random inputs with onnxruntime when exported:
max abs diff <= {report['tolerance']} x max(1, max|reference|) for every output; Tanh nodes in the decoder: {report['tanh_nodes']}.
"""


def export(checkpoint: Path, out_dir: Path, dtype: str = "fp32", layout: str = "own", loader=None) -> dict:
    """Export checkpoint to out_dir and verify it. loader() returns the model
    (default: load it from checkpoint; make_bench_model builds one in memory
    and passes a checkpoint folder holding only its configs and tokenizer)."""
    loader = loader or (lambda: load_model(checkpoint))
    if layout not in LAYOUTS:
        raise SystemExit(f"unknown layout {layout!r}")
    if dtype not in TOLERANCE:
        raise SystemExit(f"unknown dtype {dtype!r}")
    start = time.time()
    torch.manual_seed(0)
    model = loader()
    spec = text_spec(model)
    image_size = model.config.vision_config.image_size
    write_folder_files(checkpoint, out_dir, spec, dtype, layout)
    onnx_dir = out_dir / "onnx"
    for old in onnx_dir.glob("*.onnx*") if onnx_dir.exists() else []:
        old.unlink()
    if dtype == "int8":
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            export_all(model, spec, Path(tmp), False, layout, image_size)
            quantize_int8(Path(tmp), onnx_dir)
        export_embed(model, spec, onnx_dir, half=True, layout=layout)
        del model
    else:
        export_all(model, spec, onnx_dir, dtype == "fp16", layout, image_size)
        del model
    print(f"exported {checkpoint} -> {out_dir} ({dtype}, {layout}) in {time.time() - start:.1f}s", flush=True)
    report = verify(loader, out_dir, dtype, layout, spec, image_size)
    (out_dir / "README.md").write_text(model_card(checkpoint.name, spec, dtype, layout, report))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="Hugging Face PaliGemma checkpoint folder")
    parser.add_argument("out", type=Path, help="model folder to write")
    parser.add_argument("--dtype", choices=sorted(TOLERANCE), default="fp32")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="own",
                        help="own: batched decoder with attention masks (default); own-v1: the own layout of "
                             "older paliprompt versions; community: onnx-community layout")
    args = parser.parse_args()
    if not (args.checkpoint / "config.json").exists():
        sys.exit(f"{args.checkpoint}: not a Hugging Face checkpoint folder (no config.json)")
    export(args.checkpoint, args.out, args.dtype, args.layout)


if __name__ == "__main__":
    main()
