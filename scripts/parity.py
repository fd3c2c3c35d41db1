#!/usr/bin/env python3
"""The oracle for lorakit's model tests: transformers itself, run live in the project's .venv.

Builds tiny random EXAONE 4.0 and GPT-NeoX models with transformers (several configs: GQA
ratios, rotary fractions, parallel/sequential residual, tied/untied, sliding-window layers),
saves them as HF model directories, and next to each writes reference.safetensors with what
transformers computes on a right-padded batch of 3 (eager attention, CPU):
  input_ids, attention_mask, labels  the batch (labels -100 on padding)
  logits                             fp32 logits (B, T, V)
  loss                               fp32 causal-LM loss
  embeds_grad                        d loss / d inputs_embeds (B, T, C)
  logits_bf16                        logits of the same model cast to bfloat16
and manifest.json listing the cases with transformers' own parameter counts. It also writes
config-only directories for the real model shapes (polyglot-ko-1.3b, and EXAONE-4.0-1.2B when
../shared is present) with transformers' parameter count from a meta-device model.

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
from transformers import AutoModelForCausalLM, Exaone4Config, GPTNeoXConfig

LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 16}

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
}

# polyglot-ko-1.3b's published shape (model card; architectures.md section 2.1).
POLYGLOT_KO_1_3B = GPTNeoXConfig(
    vocab_size=30080, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=16,
    rotary_pct=0.5, rotary_emb_base=10000, max_position_embeddings=2048, layer_norm_eps=1e-5, hidden_act="gelu",
    use_parallel_residual=True, tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)


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
    # Random norms (not all ones) so that a weight applied in the wrong place shows up.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname or "bias" in pname:
                p.add_(torch.randn_like(p) * 0.1)
    case_dir = out / name
    model.save_pretrained(case_dir)

    generator = torch.Generator().manual_seed(seed + 1)
    input_ids, attention_mask, labels = batch(lengths, config.vocab_size, generator)
    embeds = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
    output = model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)
    output.loss.backward()
    with torch.no_grad():
        logits_bf16 = model.to(torch.bfloat16)(input_ids=input_ids, attention_mask=attention_mask).logits
    save_file({
        "input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
        "logits": output.logits.detach().contiguous(), "loss": output.loss.detach().reshape(()),
        "embeds_grad": embeds.grad.contiguous(), "logits_bf16": logits_bf16.float().contiguous(),
    }, str(case_dir / "reference.safetensors"), metadata={"format": "pt"})
    return {"name": name, "model_type": config.model_type, "lengths": list(lengths),
            "num_parameters": model.num_parameters()}


def config_only(out: Path, name: str, config):
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    (out / name).mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out / name)
    return {"name": name, "model_type": config.model_type, "num_parameters": model.num_parameters()}


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
    exaone = Path(__file__).resolve().parent.parent.parent / "shared/models/EXAONE-4.0-1.2B/config.json"
    if exaone.exists():
        shapes.append(config_only(tmp, "exaone-4.0-1.2b-config", Exaone4Config.from_json_file(exaone)))

    manifest = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": cases,
                "config_only": shapes}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    print(f"wrote {len(cases)} parity cases and {len(shapes)} config-only shapes to {args.out}")


if __name__ == "__main__":
    main()
