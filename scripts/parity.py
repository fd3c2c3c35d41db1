#!/usr/bin/env python3
"""The oracle for lorakit's model tests: transformers itself, run live in the project's .venv.

Builds tiny random models of every architecture with transformers (EXAONE 4.0, GPT-NeoX, Llama,
Mistral, Qwen2, Qwen3, and EXAONE 3 as a renamed Llama; several configs each: GQA ratios, rotary
fractions and scaling types, biases, parallel/sequential residual, tied/untied, sliding windows),
saves them as HF model directories, and next to each writes reference.safetensors with what
transformers computes on a right-padded batch of 3 (eager attention, CPU):
  input_ids, attention_mask, labels  the batch (labels -100 on padding)
  logits                             fp32 logits (B, T, V)
  loss                               fp32 causal-LM loss
  embeds_grad                        d loss / d inputs_embeds (B, T, C)
  logits_bf16                        logits of the same model cast to bfloat16
and manifest.json listing the cases with transformers' own parameter counts. It also writes
config-only directories for the real model shapes (polyglot-ko-1.3b; with ../shared present,
EXAONE-4.0-1.2B and the real config.json files of Llama-3.2-1B, Bllossom-8B, Qwen1.5-0.5B, Qwen3-0.6B
and Mistral-7B copied verbatim) with transformers' parameter count from a meta-device model.

Usage: .venv/bin/python scripts/parity.py --out build/parity
"""
import argparse
import json
import os
import shutil
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, Exaone4Config, Gemma2Config, GemmaConfig, GPT2Config, GPTNeoXConfig,
                          LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, RwkvConfig)

import exaone3

LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 16}

LLAMA_SHAPE = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, pad_token_id=0)
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16}

GLOBAL = ["full_attention"]  # with sliding_window None, HF needs layer_types spelled out (as 1.2B's file does)

# name -> (config, lengths of the 3 rows). Lengths cover 1 to 64 and rows without padding.
CASES = {
    "exaone4_gqa1_tied_llama3": (Exaone4Config(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, rms_norm_eps=1e-5, tie_word_embeddings=True, sliding_window=None, layer_types=GLOBAL * 2,
        rope_parameters=dict(LLAMA3), max_position_embeddings=128, pad_token_id=0), (64, 40, 1)),
    "exaone4_gqa2_untied": (Exaone4Config(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=False, sliding_window=None, layer_types=GLOBAL * 3,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0}, pad_token_id=0), (23, 23, 23)),
    "exaone4_gqa4_tied": (Exaone4Config(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, tie_word_embeddings=True, sliding_window=None, layer_types=GLOBAL * 2,
        rope_parameters=dict(LLAMA3, rope_theta=1e6), pad_token_id=0), (33, 12, 1)),
    "exaone4_sliding_hybrid": (Exaone4Config(
        vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True, sliding_window=5, sliding_window_pattern=2,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, pad_token_id=0), (20, 11, 3)),
    "gpt_neox_rot025_parallel": (GPTNeoXConfig(
        vocab_size=320, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        rotary_pct=0.25, rotary_emb_base=10000, use_parallel_residual=True, tie_word_embeddings=False,
        max_position_embeddings=128, pad_token_id=0), (64, 30, 1)),
    "gpt_neox_rot05_sequential": (GPTNeoXConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        rotary_pct=0.5, rotary_emb_base=10000, use_parallel_residual=False, tie_word_embeddings=False,
        pad_token_id=0), (16, 16, 16)),
    "gpt_neox_rot1_tied": (GPTNeoXConfig(
        vocab_size=192, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
        rotary_pct=1.0, rotary_emb_base=1000, use_parallel_residual=True, tie_word_embeddings=True,
        pad_token_id=0), (9, 2, 1)),
    # Llama: GQA 1/2/4, tied and untied, biases on and off, head_dim above hidden/heads, each rope type.
    "llama_gqa1_bias_untied": (LlamaConfig(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=4, attention_bias=True, mlp_bias=True,
        tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 500.0}), (64, 40, 1)),
    "llama_gqa2_tied_llama3_head_dim": (LlamaConfig(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
        rope_parameters=dict(LLAMA3), max_position_embeddings=128), (33, 12, 1)),
    "llama_gqa4_linear": (LlamaConfig(
        **dict(LLAMA_SHAPE, num_hidden_layers=3), num_attention_heads=8, num_key_value_heads=2,
        tie_word_embeddings=False, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}),
        (23, 23, 23)),
    "llama_dynamic_past_max_positions": (LlamaConfig(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        tie_word_embeddings=True, rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}),
        (64, 20, 5)),
    "llama_yarn_4x_config": (LlamaConfig(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
        tie_word_embeddings=False, rope_parameters=dict(YARN)), (64, 17, 2)),
    # Mistral: a window on every layer (and none when null).
    "mistral_window5": (MistralConfig(
        **dict(LLAMA_SHAPE, num_hidden_layers=3), num_attention_heads=4, num_key_value_heads=2, sliding_window=5,
        tie_word_embeddings=False), (20, 11, 3)),
    "mistral_no_window_tied": (MistralConfig(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=1, sliding_window=None, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}), (40, 9, 1)),
    "mistral_gqa1_window3_linear": (MistralConfig(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=4, sliding_window=3, tie_word_embeddings=True,
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}), (33, 8, 2)),
    # Qwen2: q/k/v biases; the window only with use_sliding_window, on layers >= max_window_layers.
    "qwen2_tied": (Qwen2Config(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        use_sliding_window=False, sliding_window=4, max_window_layers=1,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}), (64, 30, 1)),
    "qwen2_sliding_upper_layers": (Qwen2Config(
        **dict(LLAMA_SHAPE, num_hidden_layers=3), num_attention_heads=4, num_key_value_heads=4,
        tie_word_embeddings=False, use_sliding_window=True, sliding_window=6, max_window_layers=1), (20, 13, 4)),
    "qwen2_gqa4_untied_yarn": (Qwen2Config(
        **LLAMA_SHAPE, num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False,
        rope_parameters=dict(YARN, rope_theta=1e6)), (64, 3, 1)),
    # Qwen3: per-head q/k norms, head_dim independent of hidden_size, layer_types.
    "qwen3_head_dim_tied": (Qwen3Config(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}), (64, 25, 1)),
    "qwen3_bias_layer_types": (Qwen3Config(
        **LLAMA_SHAPE, num_attention_heads=8, num_key_value_heads=2, head_dim=16, attention_bias=True,
        tie_word_embeddings=False, use_sliding_window=True, sliding_window=7,
        layer_types=["sliding_attention", "full_attention"]), (30, 12, 2)),
    "qwen3_gqa1_untied_llama3": (Qwen3Config(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=4, head_dim=8, tie_word_embeddings=False,
        rope_parameters=dict(LLAMA3, rope_theta=1e6), max_position_embeddings=128), (50, 50, 7)),
    # EXAONE 3.x: transformers' Llama saved under EXAONE's names (scripts/exaone3.py).
    "exaone_gqa2_tied_llama3": (LlamaConfig(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        rms_norm_eps=1e-5, rope_parameters=dict(LLAMA3, rope_theta=5e5), max_position_embeddings=128), (64, 30, 1)),
    "exaone_gqa1_untied": (LlamaConfig(
        **dict(LLAMA_SHAPE, num_hidden_layers=3), num_attention_heads=4, num_key_value_heads=4,
        tie_word_embeddings=False, rms_norm_eps=1e-5), (17, 17, 9)),
    "exaone_gqa4_untied_dynamic": (LlamaConfig(
        **LLAMA_SHAPE, num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False, rms_norm_eps=1e-5,
        max_position_embeddings=40, rope_parameters={"rope_type": "dynamic", "rope_theta": 1e4, "factor": 3.0}),
        (64, 41, 1)),
    # Gemma: (1 + w) norms, sqrt(H)-scaled embeddings, GeGLU, multi-query attention, head_dim > H/heads.
    "gemma_mqa_tied": (GemmaConfig(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=1, head_dim=32, tie_word_embeddings=True),
        (64, 30, 1)),
    "gemma_gqa2_legacy_gelu": (GemmaConfig(
        **dict(LLAMA_SHAPE, num_hidden_layers=3), num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        hidden_act="gelu", tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 1e4}),
        (23, 23, 5)),
    # Gemma-2: sandwich norms, query_pre_attn_scalar, soft-capped attention and logits, even layers slide.
    "gemma2_softcap_sliding": (Gemma2Config(
        **dict(LLAMA_SHAPE, num_hidden_layers=4), num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        query_pre_attn_scalar=24, attn_logit_softcapping=5.0, final_logit_softcapping=3.0, sliding_window=6,
        tie_word_embeddings=True), (40, 17, 3)),
    "gemma2_gqa1_no_caps_layer_types": (Gemma2Config(
        **LLAMA_SHAPE, num_attention_heads=4, num_key_value_heads=4, head_dim=16, query_pre_attn_scalar=16,
        attn_logit_softcapping=None, final_logit_softcapping=None, sliding_window=4,
        layer_types=["full_attention", "sliding_attention"], tie_word_embeddings=False), (30, 9, 1)),
    # GPT-2: Conv1D projections, learned positions, gelu_new, tied; the inverse-layer-index scaling.
    "gpt2_tied": (GPT2Config(
        vocab_size=256, n_positions=128, n_embd=64, n_layer=2, n_head=4, tie_word_embeddings=True,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0), (64, 33, 1)),
    "gpt2_inverse_layer_scaling_n_inner": (GPT2Config(
        vocab_size=200, n_positions=64, n_embd=48, n_layer=3, n_head=3, n_inner=80,
        scale_attn_by_inverse_layer_idx=True, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0), (40, 12, 2)),
    # RWKV-4: token shift, the WKV recurrence, squared-ReLU channel mix, pre_ln; rescale_every (the
    # fp32 reference is train mode, without the rescale; bf16 is eval mode, with it).
    "rwkv_rescale2_untied": (RwkvConfig(
        vocab_size=256, hidden_size=64, num_hidden_layers=4, intermediate_size=128, rescale_every=2,
        tie_word_embeddings=False), (64, 30, 1)),
    "rwkv_attention_hidden_tied": (RwkvConfig(
        vocab_size=200, hidden_size=48, num_hidden_layers=2, attention_hidden_size=48, intermediate_size=96,
        rescale_every=0, tie_word_embeddings=True), (20, 20, 7)),
}

# Cases saved in transformers 4.x's config dialect (top-level rope_theta + rope_scaling with `type`).
CONFIG_4X = {"llama_yarn_4x_config", "llama_gqa4_linear"}
# Keys rewritten after saving (None deletes): Qwen2.5's files keep a sliding_window value with
# use_sliding_window false and no layer_types; transformers then uses no window.
# Weights scaled up after init, so that a case's feature shows: random q/k give attention scores far
# below Gemma-2's soft cap, where tanh is the identity (a missing cap moved logits by 1e-6 only).
WEIGHT_SCALES = {"gemma2_softcap_sliding": {"q_proj": 6.0, "k_proj": 6.0}}
CONFIG_EDITS = {"qwen2_tied": {"sliding_window": 4, "layer_types": None}}

# polyglot-ko-1.3b's published shape (model card; architectures.md section 2.1).
POLYGLOT_KO_1_3B = GPTNeoXConfig(
    vocab_size=30080, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=16,
    rotary_pct=0.5, rotary_emb_base=10000, max_position_embeddings=2048, layer_norm_eps=1e-5, hidden_act="gelu",
    use_parallel_residual=True, tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)


# Published shapes of seed models whose config.json is not in ../shared (../shared/models/README.md).
PUBLISHED_SHAPES = {
    "gemma-2-2b-it-config": lambda: Gemma2Config(
        vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
        num_key_value_heads=4, head_dim=256, sliding_window=4096, query_pre_attn_scalar=256,
        attn_logit_softcapping=50.0, final_logit_softcapping=30.0, tie_word_embeddings=True),
    "gemma-2b-config": lambda: GemmaConfig(  # gemma-ko-v01's shape
        vocab_size=256000, hidden_size=2048, intermediate_size=16384, num_hidden_layers=18, num_attention_heads=8,
        num_key_value_heads=1, head_dim=256, tie_word_embeddings=True),
    "korwkv-1.5b-config": lambda: RwkvConfig(  # beomi/KoAlpaca-KoRWKV-1.5B as far as published
        vocab_size=52000, hidden_size=2048, num_hidden_layers=24, context_length=16384),
    "kogpt2-base-v2-config": lambda: GPT2Config(  # skt/kogpt2-base-v2
        vocab_size=51200, n_positions=1024, n_embd=768, n_layer=12, n_head=12, tie_word_embeddings=True),
}


def batch(lengths, vocab_size, generator):
    B, T = len(lengths), max(lengths)
    input_ids = torch.randint(1, vocab_size, (B, T), generator=generator)
    attention_mask = torch.zeros(B, T, dtype=torch.long)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)  # right padding with pad id 0
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return input_ids, attention_mask, labels


def make_case(out: Path, name: str, config, lengths, seed: int):
    torch.manual_seed(seed)
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()
    if config.model_type == "rwkv":
        # Random decays and bonuses (the init's are structured), and the fp32 forward with gradients in
        # train mode: transformers rescales only in eval mode, which lorakit does only without gradients.
        with torch.no_grad():
            for block in model.rwkv.blocks:
                block.attention.time_decay.copy_(torch.randn_like(block.attention.time_decay))
                block.attention.time_first.copy_(torch.randn_like(block.attention.time_first))
        model.train()
    # Random norms (not all ones) so that a weight applied in the wrong place shows up.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname or "bias" in pname or ".ln_" in pname:
                p.add_(torch.randn_like(p) * 0.1)
            for module, factor in WEIGHT_SCALES.get(name, {}).items():
                if f".{module}." in pname:
                    p.mul_(factor)
    case_dir = out / name
    if name.startswith("exaone_"):
        exaone3.save_as_exaone(model, case_dir)
    else:
        model.save_pretrained(case_dir)
    if name in CONFIG_4X:
        to_config_4x(case_dir / "config.json")
    if name in CONFIG_EDITS:
        saved = json.loads((case_dir / "config.json").read_text())
        for key, value in CONFIG_EDITS[name].items():
            saved.pop(key) if value is None else saved.__setitem__(key, value)
        (case_dir / "config.json").write_text(json.dumps(saved, indent=2))

    generator = torch.Generator().manual_seed(seed + 1)
    input_ids, attention_mask, labels = batch(lengths, config.vocab_size, generator)
    embeds = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
    output = model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)
    output.loss.backward()
    model.eval()
    with torch.no_grad():
        logits_bf16 = model.to(torch.bfloat16)(input_ids=input_ids, attention_mask=attention_mask).logits
    save_file({
        "input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
        "logits": output.logits.detach().contiguous(), "loss": output.loss.detach().reshape(()),
        "embeds_grad": embeds.grad.contiguous(), "logits_bf16": logits_bf16.float().contiguous(),
    }, str(case_dir / "reference.safetensors"), metadata={"format": "pt"})
    model_type = "exaone" if name.startswith("exaone_") else config.model_type
    return {"name": name, "model_type": model_type, "lengths": list(lengths),
            "num_parameters": model.num_parameters()}


def to_config_4x(path: Path):
    """Rewrites a saved config.json the way transformers 4.x wrote it: rope_theta + rope_scaling."""
    config = json.loads(path.read_text())
    rope = config.pop("rope_parameters")
    config["rope_theta"] = rope.pop("rope_theta")
    rope_type = rope.pop("rope_type")
    config["rope_scaling"] = None if rope_type == "default" else dict(rope, type=rope_type)
    path.write_text(json.dumps(config, indent=2))


def config_only(out: Path, name: str, config):
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    (out / name).mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out / name)
    return {"name": name, "model_type": config.model_type, "num_parameters": model.num_parameters()}


def real_config(out: Path, name: str, source: Path):
    """A real config.json copied verbatim (lorakit must read the file as published), with the count
    transformers gives for it."""
    from transformers import AutoConfig
    (out / name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "config.json", out / name / "config.json")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(out / name))
    return {"name": name, "model_type": model.config.model_type, "num_parameters": model.num_parameters()}


# Real configs in ../shared/models (no weights), read as published.
REAL_CONFIGS = ["Llama-3.2-1B", "Llama-3.2-1B-Instruct", "llama-3-Korean-Bllossom-8B", "Qwen1.5-0.5B-Chat",
                "Qwen3-0.6B", "Mistral-7B-v0.1"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.set_num_threads(2)

    cases = [make_case(tmp, name, config, lengths, seed=1000 + i)
             for i, (name, (config, lengths)) in enumerate(CASES.items())]
    shapes = [config_only(tmp, "polyglot-ko-1.3b-config", POLYGLOT_KO_1_3B)]
    shapes += [config_only(tmp, name, make()) for name, make in PUBLISHED_SHAPES.items()]
    exaone = Path(__file__).resolve().parent.parent.parent / "shared/models/EXAONE-4.0-1.2B/config.json"
    if exaone.exists():
        shapes.append(config_only(tmp, "exaone-4.0-1.2b-config", Exaone4Config.from_json_file(exaone)))
    for name in REAL_CONFIGS:
        if (exaone.parent.parent / name / "config.json").exists():
            shapes.append(real_config(tmp, name + "-config", exaone.parent.parent / name))

    manifest = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": cases,
                "config_only": shapes}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    print(f"wrote {len(cases)} parity cases and {len(shapes)} config-only shapes to {args.out}")


if __name__ == "__main__":
    main()
