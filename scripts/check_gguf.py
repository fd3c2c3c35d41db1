#!/usr/bin/env python3
"""Checks lorakit's GGUF exports against llama.cpp's own converters and against the HF weights.

  check_gguf.py --converter LLAMA_CPP_DIR --case DIR/<case> --merged MERGED_HF_DIR --gguf LORAKIT.gguf
                --type f32|f16|bf16|q8_0 [--lora-gguf LORAKIT_LORA.gguf [--lora-type f32|f16|bf16|q8_0]]
                [--tokenizer-pre NAME] [--keep OUTDIR] [--max-diffs N]

LLAMA_CPP_DIR is a llama.cpp source tree (convert_hf_to_gguf.py, conversion/, convert_lora_to_gguf.py, gguf-py/),
e.g. the vendor/llama.cpp of the llama-cpp-python sdist. DIR/<case> is a case written by scripts/gguf_oracle.py
(base/, adapter/).

1. Runs convert_hf_to_gguf.py --outtype TYPE on MERGED_HF_DIR (a subprocess using the tree's own gguf-py) and
   compares its file with LORAKIT.gguf: the header, the KV pairs (same keys in the same order, same value types,
   equal values, arrays element by element, floats bit for bit), the tensor infos (names in order, ggml types,
   shapes, data offsets) and every tensor's data byte for byte.
2. Independently of the converter, checks each tensor of LORAKIT.gguf against MERGED_HF_DIR's safetensors after
   the transforms llama.cpp's conversion/*.py apply (name map, q/k permutation for llama/mistral, +1 on gemma
   norms, GPT-2's Conv1D transposes, GPT-NeoX's fused-qkv reordering, rope_freqs for llama3 rope), the expected
   tensor order and ggml types: F32/F16/BF16 bit-exact (round to nearest even); Q8_0 dequantized (gguf.quants)
   with, per block of 32, scale d == f16(max|x| / 127) and |x - deq| <= d/2 + 127*|d - max|x|/127| + eps (the
   second term: d is stored as f16 but the quants were rounded with the f32 scale).
3. With --lora-gguf: runs convert_lora_to_gguf.py --base DIR/<case>/base --outtype LORA_TYPE (default f32) on
   DIR/<case>/adapter and compares, then checks lora_a / lora_b against adapter_model.safetensors the same way.

Converter patches (applied in the subprocess only, nothing is written to the tree):
  * get_vocab_base_pre: an unknown pre-tokenizer hash (NotImplementedError) returns --tokenizer-pre (default:
    the case's "tokenizer_pre" in DIR/manifest.json); a known hash keeps the converter's answer.
  * GPT-NeoX under transformers 5: AutoConfig's dict has no "rotary_pct" (it lives in rope_parameters as
    partial_rotary_factor) and GPTNeoXModel.set_gguf_parameters raises KeyError: hparams["rotary_pct"] is set
    from rope_parameters["partial_rotary_factor"] (else partial_rotary_factor / rotary_pct in config, else 1.0).
  * AutoTokenizer under transformers 5 always loads the model's config; for model_type "exaone" (no transformers
    class) it falls back to PreTrainedConfig, whose rope standardization raises AttributeError on EXAONE 3's
    llama3 rope_scaling: the tokenizer load is retried with config=PreTrainedConfig() (the tokenizer class comes
    from tokenizer_config.json).
Prints a summary (per file: keys, tensors, max |tensor - HF|) and exits 1 listing the differences on any mismatch.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DRIVER = r'''
import os, sys, runpy
conv, pre, script = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, conv)
sys.path.insert(1, os.path.join(conv, "gguf-py"))
import conversion.base as B
_orig_pre = B.TextModel.get_vocab_base_pre
def _pre(self, tokenizer):
    try:
        res = _orig_pre(self, tokenizer)
    except NotImplementedError:
        if not pre:
            raise
        print(f"[check_gguf] unknown pre-tokenizer hash: tokenizer.ggml.pre = {pre!r} (--tokenizer-pre)", file=sys.stderr)
        return pre
    if pre and res != pre:
        print(f"[check_gguf] known pre-tokenizer hash -> {res!r} (--tokenizer-pre {pre!r} not used)", file=sys.stderr)
    return res
B.TextModel.get_vocab_base_pre = _pre
try:
    import conversion.gptneox as NX
    _orig_sgp = NX.GPTNeoXModel.set_gguf_parameters
    def _sgp(self):
        if "rotary_pct" not in self.hparams:
            rp = self.hparams.get("rope_parameters") or {}
            v = rp.get("partial_rotary_factor", self.hparams.get("partial_rotary_factor"))
            self.hparams["rotary_pct"] = 1.0 if v is None else v
            print(f"[check_gguf] GPT-NeoX: hparams rotary_pct = {self.hparams['rotary_pct']} (patched)", file=sys.stderr)
        return _orig_sgp(self)
    NX.GPTNeoXModel.set_gguf_parameters = _sgp
except ImportError:
    pass
import transformers
_orig_at = transformers.AutoTokenizer.from_pretrained.__func__
def _at(cls, path, *a, **kw):
    try:
        return _orig_at(cls, path, *a, **kw)
    except (AttributeError, ValueError) as e:
        if "config" in kw:
            raise
        print(f"[check_gguf] AutoTokenizer could not load {path}'s config ({type(e).__name__}: {e}); retrying with "
              "an empty PreTrainedConfig (patched)", file=sys.stderr)
        return _orig_at(cls, path, *a, config=transformers.PreTrainedConfig(), **kw)
transformers.AutoTokenizer.from_pretrained = classmethod(_at)
sys.argv = [os.path.join(conv, script)] + sys.argv[4:]
runpy.run_path(os.path.join(conv, script), run_name="__main__")
'''

OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def run_converter(conv: Path, script: str, args, pre: str | None, verbose: bool):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("NO_LOCAL_GGUF", None)
    cmd = [sys.executable, "-c", DRIVER, str(conv), pre or "", script, *map(str, args)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    notes = [ln for ln in p.stderr.splitlines() if ln.startswith("[check_gguf]")]
    if verbose or p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
    if p.returncode != 0:
        raise SystemExit(f"{script} failed (exit {p.returncode}): {' '.join(cmd[3:])}")
    return notes


# ------------------------------------------------------------------------------------------------------- GGUF reading

def read_gguf(path: Path):
    from gguf import GGUFReader
    return GGUFReader(str(path), "r")


def field_value(f):
    try:
        return f.contents()
    except Exception:  # noqa: BLE001
        return [p.tolist() for p in f.parts]


def field_types(f):
    return [t.name for t in f.types]


def short(v, n=120):
    s = repr(v)
    return s if len(s) <= n else s[:n] + f"... ({len(v) if hasattr(v, '__len__') else '?'} items)"


def compare_kv(ra, rb, la: str, lb: str, diffs: list):
    fa, fb = ra.fields, rb.fields
    ka, kb = list(fa.keys()), list(fb.keys())
    if ka != kb:
        first = next((i for i, (x, y) in enumerate(zip(ka, kb)) if x != y), min(len(ka), len(kb)))
        missing = [k for k in ka if k not in fb]
        extra = [k for k in kb if k not in fa]
        diffs.append(f"KV keys differ: {la} has {len(ka)}, {lb} has {len(kb)} (counting GGUF.version/tensor_count/"
                     f"kv_count); first difference at #{first}: "
                     f"{la} {ka[first] if first < len(ka) else '<end>'!r} vs {lb} {kb[first] if first < len(kb) else '<end>'!r}")
        if missing:
            diffs.append(f"  keys only in {la}: {missing}")
        if extra:
            diffs.append(f"  keys only in {lb}: {extra}")
        if not missing and not extra:
            diffs.append(f"  same keys, other order: {la} {ka}\n  {lb} {kb}")
    for k in ka:
        if k not in fb:
            continue
        a, b = fa[k], fb[k]
        ta, tb = field_types(a), field_types(b)
        if ta != tb:
            diffs.append(f"KV {k}: type {la} {ta} vs {lb} {tb} (values {short(field_value(a))} vs {short(field_value(b))})")
            continue
        if len(a.data) != len(b.data):
            diffs.append(f"KV {k}: {len(a.data)} elements in {la}, {len(b.data)} in {lb}"
                         f" ({short(field_value(a))} vs {short(field_value(b))})")
            continue
        for j, (ia, ib) in enumerate(zip(a.data, b.data)):
            if a.parts[ia].tobytes() != b.parts[ib].tobytes():
                if len(a.data) > 1 or ta[0] == "ARRAY":
                    diffs.append(f"KV {k}[{j}] ({ta}): {la} {short(field_value(a)[j])} vs {lb} {short(field_value(b)[j])}"
                                 f" (first of {sum(a.parts[x].tobytes() != b.parts[y].tobytes() for x, y in zip(a.data, b.data))}"
                                 f" differing elements of {len(a.data)})")
                else:
                    diffs.append(f"KV {k} ({ta[0]}): {la} {short(field_value(a))} vs {lb} {short(field_value(b))}")
                break


def tensor_f32(t):
    """A GGUF tensor's data as float32 in numpy order (rows..., ne0)."""
    from gguf import GGMLQuantizationType as Q
    from gguf import quants
    data = np.asarray(t.data)
    shape = tuple(int(x) for x in reversed(t.shape))
    if t.tensor_type == Q.F32:
        return data.astype(np.float32).reshape(shape)
    if t.tensor_type == Q.F16:
        return data.astype(np.float32).reshape(shape)
    return quants.dequantize(data.view(np.uint8), t.tensor_type).reshape(shape)


def compare_tensors(ra, rb, la, lb, diffs, max_diffs):
    ta, tb = ra.tensors, rb.tensors
    na, nb = [t.name for t in ta], [t.name for t in tb]
    if na != nb:
        first = next((i for i, (x, y) in enumerate(zip(na, nb)) if x != y), min(len(na), len(nb)))
        diffs.append(f"tensor list differs: {la} has {len(na)}, {lb} has {len(nb)}; first difference at #{first}: "
                     f"{la} {na[first] if first < len(na) else '<end>'!r} vs {lb} {nb[first] if first < len(nb) else '<end>'!r}")
        only_a, only_b = [n for n in na if n not in nb], [n for n in nb if n not in na]
        if only_a:
            diffs.append(f"  tensors only in {la}: {only_a}")
        if only_b:
            diffs.append(f"  tensors only in {lb}: {only_b}")
    bmap = {t.name: t for t in tb}
    n_data = n_off = 0
    for a in ta:
        b = bmap.get(a.name)
        if b is None:
            continue
        info_a = (a.tensor_type.name, [int(x) for x in a.shape])
        info_b = (b.tensor_type.name, [int(x) for x in b.shape])
        if info_a != info_b:
            diffs.append(f"tensor {a.name}: type/shape (ne) {la} {info_a} vs {lb} {info_b}")
            continue
        if a.data_offset - ra.data_offset != b.data_offset - rb.data_offset:
            n_off += 1
            if n_off == 1:
                diffs.append(f"tensor {a.name}: data offset (from the data section) {la} {a.data_offset - ra.data_offset}"
                             f" vs {lb} {b.data_offset - rb.data_offset}")
        da, db = np.asarray(a.data).view(np.uint8).reshape(-1), np.asarray(b.data).view(np.uint8).reshape(-1)
        if da.shape != db.shape or not np.array_equal(da, db):
            n_data += 1
            if n_data <= max_diffs:
                try:
                    xa, xb = tensor_f32(a).reshape(-1), tensor_f32(b).reshape(-1)
                    bad = np.flatnonzero(~((xa == xb) | (np.isnan(xa) & np.isnan(xb))))
                    i = int(bad[0]) if bad.size else -1
                    extra = (f"; {bad.size} values differ, max |diff| {np.max(np.abs(xa - xb)):.3g}, first at flat "
                             f"index {i}: {la} {xa[i]!r} vs {lb} {xb[i]!r}" if i >= 0 else "; values equal, bytes not")
                except Exception as e:  # noqa: BLE001
                    extra = f" ({e})"
                nbytes = int(np.count_nonzero(da != db)) if da.shape == db.shape else -1
                diffs.append(f"tensor {a.name} ({info_a[0]} {info_a[1]}): data differs in {nbytes} bytes{extra}")
    if n_off > 1:
        diffs.append(f"  ... and {n_off - 1} more tensors at other data offsets")
    if n_data > max_diffs:
        diffs.append(f"... and {n_data - max_diffs} more tensors with different data")


# ------------------------------------------------------------------------------------ the HF side, per architecture

LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "exaone4")


def name_map(model_type: str):
    """[(regex on the HF name, GGUF name template)] — what gguf-py's TensorNameMap does for these archs."""
    L = r"(\d+)"
    if model_type in LLAMA_LIKE:
        post_attn = "post_attention_norm" if model_type in ("gemma2", "exaone4") else "ffn_norm"
        layer = {
            "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
            "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
            "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": post_attn,
            "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
            "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
        rules = [(rf"model\.layers\.{L}\.{re.escape(k)}\.(weight|bias)", rf"blk.\1.{v}.\2") for k, v in layer.items()]
        rules += [(r"model\.embed_tokens\.(weight)", r"token_embd.\1"), (r"model\.norm\.(weight)", r"output_norm.\1"),
                  (r"lm_head\.(weight)", r"output.\1")]
    elif model_type == "exaone":
        layer = {"ln_1": "attn_norm", "attn.attention.q_proj": "attn_q", "attn.attention.k_proj": "attn_k",
                 "attn.attention.v_proj": "attn_v", "attn.attention.out_proj": "attn_output", "ln_2": "ffn_norm",
                 "mlp.c_fc_0": "ffn_gate", "mlp.c_fc_1": "ffn_up", "mlp.c_proj": "ffn_down"}
        rules = [(rf"transformer\.h\.{L}\.{re.escape(k)}\.(weight|bias)", rf"blk.\1.{v}.\2") for k, v in layer.items()]
        rules += [(r"transformer\.wte\.(weight)", r"token_embd.\1"), (r"transformer\.ln_f\.(weight)", r"output_norm.\1"),
                  (r"lm_head\.(weight)", r"output.\1")]
    elif model_type == "gpt2":
        layer = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
                 "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
        rules = [(rf"transformer\.h\.{L}\.{re.escape(k)}\.(weight|bias)", rf"blk.\1.{v}.\2") for k, v in layer.items()]
        rules += [(r"transformer\.wte\.(weight)", r"token_embd.\1"), (r"transformer\.wpe\.(weight)", r"position_embd.\1"),
                  (r"transformer\.ln_f\.(weight|bias)", r"output_norm.\1"), (r"lm_head\.(weight)", r"output.\1")]
    elif model_type == "gpt_neox":
        layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
                 "attention.query_key_value": "attn_qkv", "attention.dense": "attn_output",
                 "mlp.dense_h_to_4h": "ffn_up", "mlp.dense_4h_to_h": "ffn_down"}
        rules = [(rf"gpt_neox\.layers\.{L}\.{re.escape(k)}\.(weight|bias)", rf"blk.\1.{v}.\2") for k, v in layer.items()]
        rules += [(r"gpt_neox\.embed_in\.(weight)", r"token_embd.\1"),
                  (r"gpt_neox\.final_layer_norm\.(weight|bias)", r"output_norm.\1"), (r"embed_out\.(weight)", r"output.\1")]
    else:
        raise SystemExit(f"check_gguf: no HF map for model_type {model_type!r}")
    return [(re.compile(p + "$"), r) for p, r in rules]


def map_name(rules, name):
    for p, r in rules:
        if p.match(name):
            return p.sub(r, name)
    return None


def permute(w, n_head):
    """llama.cpp's LlamaModel.permute: HF's rotate-half q/k rows -> GGML's interleaved (GPT-J) rope layout."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def neox_qkv(w, n_head, n_embd):
    """GPT-NeoX's fused qkv (per head: q, k, v rows) -> [all q; all k; all v] (conversion/gptneox.py)."""
    tail = w.shape[1:]
    x = w.reshape(n_head, 3, n_embd // n_head, *tail)
    return np.concatenate([x[:, j].reshape(-1, *tail) for j in range(3)], axis=0)


def rope_freqs(theta, dim, rp, default_factor=8.0):
    """The llama3 rope_freqs tensor (conversion/llama.py, exaone.py generate_extra_tensors), computed with the same
    torch float32 ops (torch's pow differs from numpy's by an ulp for some bases)."""
    import math
    import torch
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = rp.get("factor", default_factor)
    lo, hi = rp.get("low_freq_factor", 1.0), rp.get("high_freq_factor", 4.0)
    old = rp.get("original_max_position_embeddings", 8192)
    lo_w, hi_w = old / lo, old / hi
    out = []
    for fr in freqs:
        wl = 2 * math.pi / fr
        if wl < hi_w:
            out.append(1)
        elif wl > lo_w:
            out.append(factor)
        else:
            smooth = (old / wl - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32).numpy()


def load_config(d: Path):
    return json.loads((d / "config.json").read_text())


def hf_config_info(cfg):
    mt = cfg.get("model_type")
    n_head = cfg.get("num_attention_heads", cfg.get("n_head"))
    n_kv = cfg.get("num_key_value_heads") or n_head
    n_embd = cfg.get("hidden_size", cfg.get("n_embd"))
    return mt, n_head, n_kv, n_embd


def load_safetensors(d: Path, pattern):
    from safetensors.numpy import load_file
    out = {}
    files = sorted(d.glob(pattern))
    for f in files:
        try:
            part = load_file(str(f))
        except TypeError:  # bf16: numpy can't; go through torch
            from safetensors.torch import load_file as tload
            part = {k: v.float().numpy() for k, v in tload(str(f)).items()}
        for k, v in part.items():
            out[k] = v.astype(np.float32) if v.dtype != np.float32 else v
    return out, [f.name for f in files]


def expected_model_tensors(merged: Path):
    """[(gguf name, float32 array)] in the converter's order: generated tensors (rope_freqs) first, then the HF
    tensors in sorted-name order per safetensors part (gguf-py's SafetensorsLocal sorts), mapped and transformed."""
    cfg = load_config(merged)
    mt, n_head, n_kv, n_embd = hf_config_info(cfg)
    rules = name_map(mt)
    out = []
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if mt in ("llama", "mistral", "exaone", "exaone4") and (rp.get("rope_type") or rp.get("type") or "").lower() == "llama3":
        theta = cfg.get("rope_theta", rp.get("rope_theta", 10000.0)) if mt == "exaone" else rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
        dim = cfg.get("head_dim") or n_embd // n_head
        out.append(("rope_freqs.weight", rope_freqs(theta, dim, rp, 16.0 if mt == "exaone4" else 8.0)))
    files = sorted(merged.glob("model*.safetensors"))
    if not files:
        raise SystemExit(f"check_gguf: no model*.safetensors in {merged}")
    for f in files:
        tensors, _ = load_safetensors(merged, f.name)
        for name in sorted(tensors):
            w = tensors[name]
            if name.endswith((".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")):
                continue
            if mt in ("gemma", "gemma2") and name == "lm_head.weight":
                continue
            g = map_name(rules, name)
            if g is None:
                raise SystemExit(f"check_gguf: cannot map HF tensor {name!r} for {mt}")
            if mt in ("llama", "mistral"):
                if name.endswith(("q_proj.weight", "q_proj.bias")):
                    w = permute(w, n_head)
                elif name.endswith(("k_proj.weight", "k_proj.bias")):
                    w = permute(w, n_kv)
            if mt in ("gemma", "gemma2") and name.endswith("norm.weight"):
                w = (w + np.float32(1)).astype(np.float32)
            if mt == "gpt2" and name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
                w = np.ascontiguousarray(w.T)
            if mt == "gpt_neox" and re.search(r"attention\.query_key_value\.(weight|bias)$", name):
                w = neox_qkv(w, n_head, n_embd)
            out.append((g, w))
    return out


def expected_lora_tensors(case: Path, adapter: Path):
    """[(gguf name, float32 array)] as convert_lora_to_gguf.py writes them: PEFT keys sorted, one (lora_a, lora_b)
    pair per module in order of first appearance; lora_a = A (r, in), lora_b = B (out, r), with the arch's weight
    transform applied to the product B @ A (q/k permutation and NeoX qkv reorder act on B's rows; GPT-2's transpose
    swaps them: lora_a = B.T, lora_b = A.T)."""
    cfg = load_config(case / "base")
    mt, n_head, n_kv, n_embd = hf_config_info(cfg)
    rules = name_map(mt)
    tensors, _ = load_safetensors(adapter, "adapter_model.safetensors")
    pairs = {}
    for k in sorted(tensors):
        base = k.replace("base_model.model.", "").replace(".lora_A.weight", ".weight").replace(".lora_B.weight", ".weight")
        pairs.setdefault(base, {})["A" if ".lora_A." in k else "B"] = tensors[k]
    out = []
    for base, ab in pairs.items():
        a, b = ab["A"], ab["B"]
        g = map_name(rules, base)
        if g is None:
            raise SystemExit(f"check_gguf: cannot map LoRA module {base!r} for {mt}")
        if mt in ("llama", "mistral"):
            if base.endswith("q_proj.weight"):
                b = permute(b, n_head)
            elif base.endswith("k_proj.weight"):
                b = permute(b, n_kv)
        if mt == "gpt2" and base.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            a, b = np.ascontiguousarray(b.T), np.ascontiguousarray(a.T)
        if mt == "gpt_neox" and base.endswith("attention.query_key_value.weight"):
            b = neox_qkv(b, n_head, n_embd)
        out += [(g + ".lora_a", a), (g + ".lora_b", b)]
    return out


def expected_type(name, shape, outtype):
    """ggml type the converter picks (ModelBase.prepare_tensors) for a tensor of numpy shape `shape`."""
    if len(shape) <= 1 or name.endswith("_norm.weight") or name == "position_embd.weight" \
            or name[-7:] not in (".weight", ".lora_a", ".lora_b"):
        return "F32"
    t = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}[outtype]
    if t == "Q8_0" and shape[-1] % 32 != 0:
        return "F16"  # QuantError -> "falling back to F16"
    return t


def f32_to_bf16_bits(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    r = np.where(nan, ((u & 0xFFFF0000) >> 16) | 64, r)
    return r.astype(np.uint16)


def check_against_hf(reader, expected, outtype, label, diffs, max_diffs):
    """Returns max |gguf - HF| over all tensors."""
    from gguf import GGMLQuantizationType as Q
    got = {t.name: t for t in reader.tensors}
    names = [t.name for t in reader.tensors]
    exp_names = [n for n, _ in expected]
    if names != exp_names:
        first = next((i for i, (x, y) in enumerate(zip(names, exp_names)) if x != y), min(len(names), len(exp_names)))
        diffs.append(f"[HF] {label}: tensor names/order differ from the HF-derived list at #{first}: "
                     f"file {names[first] if first < len(names) else '<end>'!r} vs expected "
                     f"{exp_names[first] if first < len(exp_names) else '<end>'!r}"
                     f" (only in file: {[n for n in names if n not in exp_names]}, missing: {[n for n in exp_names if n not in names]})")
    worst = 0.0
    n_bad = 0
    for name, x in expected:
        t = got.get(name)
        if t is None:
            continue
        x = np.ascontiguousarray(x, dtype=np.float32)
        shape = tuple(int(v) for v in reversed(t.shape))
        if shape != x.shape:
            diffs.append(f"[HF] {label} {name}: shape {shape} vs HF {x.shape}")
            continue
        want_t = expected_type(name, x.shape, outtype)
        if t.tensor_type.name != want_t:
            diffs.append(f"[HF] {label} {name}: ggml type {t.tensor_type.name}, expected {want_t}")
        raw = np.asarray(t.data)
        err = None
        if t.tensor_type == Q.F32:
            y = raw.astype(np.float32).reshape(shape)
            ok = np.array_equal(y.view(np.uint32), x.view(np.uint32))
            err = None if ok else "F32 values differ"
        elif t.tensor_type == Q.F16:
            y = raw.astype(np.float32).reshape(shape)
            ok = np.array_equal(raw.reshape(shape).view(np.uint16), x.astype(np.float16).view(np.uint16))
            err = None if ok else "F16 != round-to-nearest-even f16(HF)"
        elif t.tensor_type == Q.BF16:
            bits = raw.view(np.uint16).reshape(shape)
            y = (bits.astype(np.uint32) << 16).view(np.float32)
            ok = np.array_equal(bits, f32_to_bf16_bits(x))
            err = None if ok else "BF16 != round-to-nearest-even bf16(HF)"
        elif t.tensor_type == Q.Q8_0:
            from gguf import quants
            blocks = raw.view(np.uint8).reshape(-1, 34)
            d = blocks[:, :2].copy().view(np.float16).astype(np.float32).reshape(-1)
            qs = blocks[:, 2:].copy().view(np.int8).astype(np.int32)
            y = quants.dequantize(raw.view(np.uint8), Q.Q8_0).reshape(shape)
            xb = x.reshape(-1, 32)
            amax = np.abs(xb).max(axis=1)
            d32 = (amax / np.float32(127)).astype(np.float32)
            problems = []
            if not np.array_equal(d.astype(np.float16).view(np.uint16), d32.astype(np.float16).view(np.uint16)):
                i = int(np.flatnonzero(d.astype(np.float16) != d32.astype(np.float16))[0])
                problems.append(f"block {i} scale {d[i]!r} != f16(max|x|/127) {np.float16(d32[i])!r}")
            if np.abs(qs).max(initial=0) > 127:
                problems.append("a quant is -128")
            bound = 0.5 * d32 + 127 * np.abs(d - d32) + 1e-6 * d32 + 1e-30
            e = np.abs(xb - y.reshape(-1, 32)).max(axis=1)
            if np.any(e > bound):
                i = int(np.argmax(e - bound))
                problems.append(f"block {i}: max |x - deq| {e[i]:.3g} > d/2 bound {bound[i]:.3g} (d {d[i]:.3g})")
            err = "; ".join(problems) or None
        else:
            err = f"unexpected ggml type {t.tensor_type.name}"
            y = None
        if y is not None:
            dmax = float(np.max(np.abs(y - x))) if x.size else 0.0
            worst = max(worst, dmax)
        if err:
            n_bad += 1
            if n_bad <= max_diffs:
                diffs.append(f"[HF] {label} {name} ({t.tensor_type.name} {list(x.shape)}): {err}"
                             + (f"; max |gguf - HF| {dmax:.3g}" if y is not None else ""))
    if n_bad > max_diffs:
        diffs.append(f"[HF] ... and {n_bad - max_diffs} more tensors")
    return worst


# ----------------------------------------------------------------------------------------------------------------- main

def tokenizer_pre_for(case: Path, given):
    if given is not None:
        return given or None
    m = case.parent / "manifest.json"
    if m.exists():
        for c in json.loads(m.read_text()).get("cases", []):
            if c.get("name") == case.name:
                return c.get("tokenizer_pre")
    return None


def compare_files(conv_path, ours_path, label, outtype, expected, diffs, max_diffs):
    rc, ro = read_gguf(conv_path), read_gguf(ours_path)
    d0 = len(diffs)
    compare_kv(rc, ro, "converter", "lorakit", diffs)
    compare_tensors(rc, ro, "converter", "lorakit", diffs, max_diffs)
    worst = check_against_hf(ro, expected, outtype, label, diffs, max_diffs)
    same_bytes = Path(conv_path).read_bytes() == Path(ours_path).read_bytes()
    return dict(file=str(ours_path), keys=len([k for k in ro.fields if not k.startswith("GGUF.")]),
                tensors=len(ro.tensors), max_hf_diff=worst, conv_keys=len([k for k in rc.fields if not k.startswith("GGUF.")]),
                conv_tensors=len(rc.tensors), identical=same_bytes, n_diffs=len(diffs) - d0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--converter", required=True, type=Path, help="llama.cpp tree (vendor/llama.cpp)")
    ap.add_argument("--case", required=True, type=Path, help="DIR/<case> from gguf_oracle.py (base/, adapter/)")
    ap.add_argument("--merged", required=True, type=Path, help="the merged HF model directory lorakit exported")
    ap.add_argument("--gguf", required=True, type=Path, help="lorakit's model GGUF")
    ap.add_argument("--type", required=True, choices=OUTTYPES)
    ap.add_argument("--lora-gguf", type=Path, help="lorakit's LoRA adapter GGUF")
    ap.add_argument("--lora-type", choices=OUTTYPES, default="f32", help="--outtype for convert_lora_to_gguf.py")
    ap.add_argument("--tokenizer-pre", help="tokenizer.ggml.pre for an unknown pre-tokenizer hash "
                                            "(default: the case's tokenizer_pre in manifest.json)")
    ap.add_argument("--keep", type=Path, help="also write the converter's files here")
    ap.add_argument("--max-diffs", type=int, default=20)
    ap.add_argument("--verbose", action="store_true", help="show the converters' logs")
    args = ap.parse_args()

    conv = args.converter.resolve()
    for f in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion", "gguf-py"):
        if not (conv / f).exists():
            raise SystemExit(f"check_gguf: {conv} has no {f} (want llama.cpp's source tree)")
    pre = tokenizer_pre_for(args.case, args.tokenizer_pre)
    diffs: list[str] = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="check_gguf_") as tmp:
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        conv_model = out_dir / f"converter-{args.type}.gguf"
        notes = run_converter(conv, "convert_hf_to_gguf.py",
                              [args.merged, "--outtype", args.type, "--outfile", conv_model], pre, args.verbose)
        for n in notes:
            print(n)
        rows.append(("model", compare_files(conv_model, args.gguf, "model", args.type,
                                            expected_model_tensors(args.merged), diffs, args.max_diffs)))
        if args.lora_gguf:
            conv_lora = out_dir / f"converter-lora-{args.lora_type}.gguf"
            notes = run_converter(conv, "convert_lora_to_gguf.py",
                                  ["--base", args.case / "base", "--outtype", args.lora_type, "--outfile", conv_lora,
                                   args.case / "adapter"], None, args.verbose)
            for n in notes:
                print(n)
            rows.append(("lora", compare_files(conv_lora, args.lora_gguf, "lora", args.lora_type,
                                               expected_lora_tensors(args.case, args.case / "adapter"), diffs,
                                               args.max_diffs)))
    for kind, r in rows:
        print(f"{kind:5s} {r['file']}: {r['keys']} keys (converter {r['conv_keys']}), {r['tensors']} tensors "
              f"(converter {r['conv_tensors']}), max |tensor - HF| {r['max_hf_diff']:.3g}, "
              f"{'byte-identical to the converter' if r['identical'] else 'not byte-identical'}, {r['n_diffs']} differences")
    if diffs:
        print(f"\nMISMATCH ({len(diffs)}):")
        for d in diffs:
            print("  " + d)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
