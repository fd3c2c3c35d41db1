#!/usr/bin/env python3
"""PEFT as the oracle for lorakit's LoRA (tests/test_lora.cpp).

For tiny random models of every architecture (EXAONE 3 as a renamed Llama) and several LoraConfigs (target lists, a regex,
all-linear, rsLoRA), wraps the model with peft.get_peft_model, gives lora_B random values (so the
adapter is not a no-op), saves the adapter with save_pretrained, and records for one padded batch
the logits, the loss, and the gradient of the loss with respect to every LoRA parameter, plus
PEFT's trainable/all parameter counts.

Usage: lora_oracle.py --out build/lora
"""
import argparse
import json
import shutil
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, Exaone4Config, Gemma2Config, GemmaConfig, GPT2Config, GPTNeoXConfig,
                          LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, RwkvConfig)

import exaone3


def exaone4(tied=True):
    return Exaone4Config(vocab_size=211, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied, sliding_window=None,
                         layer_types=["full_attention"] * 2,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)


def gpt_neox():
    return GPTNeoXConfig(vocab_size=203, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, rotary_pct=0.5, use_parallel_residual=True, tie_word_embeddings=False,
                         bos_token_id=0, eos_token_id=0)


SHAPE = dict(vocab_size=211, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def llama(tied=False, **kwargs):
    return LlamaConfig(**SHAPE, tie_word_embeddings=tied, **kwargs)


NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # the oracle runs in train mode
ALL_EXAONE3 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # renamed on save

CASES = {
    "exaone4-qkvo-r4": (exaone4, dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
    "exaone4-untied-all-linear-rslora": (lambda: exaone4(tied=False),
                                         dict(r=8, lora_alpha=16, target_modules="all-linear", use_rslora=True)),
    "gpt_neox-default-r4": (gpt_neox, dict(r=4, lora_alpha=4, target_modules=["query_key_value"])),
    "gpt_neox-regex-r2": (gpt_neox, dict(r=2, lora_alpha=6, target_modules=r".*\.(dense|query_key_value)")),
    # PEFT's default targets (q_proj, v_proj) where it has them: target_modules left out.
    "llama-default-bias-r4": (lambda: llama(attention_bias=True, mlp_bias=True), dict(r=4, lora_alpha=8)),
    "llama-tied-all-linear-r8": (lambda: llama(tied=True, rope_parameters={"rope_type": "linear", "rope_theta": 1e4,
                                                                            "factor": 2.0}),
                                 dict(r=8, lora_alpha=16, target_modules="all-linear")),
    "mistral-window-qkvo-r4": (lambda: MistralConfig(**SHAPE, sliding_window=4, tie_word_embeddings=False),
                               dict(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
    "qwen2-tied-default-r4": (lambda: Qwen2Config(**SHAPE, tie_word_embeddings=True), dict(r=4, lora_alpha=8)),
    "qwen3-all-linear-rslora": (lambda: Qwen3Config(**SHAPE, head_dim=32, tie_word_embeddings=True),
                                dict(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=True)),
    "gemma-default-r4": (lambda: GemmaConfig(**SHAPE, head_dim=16, tie_word_embeddings=True), dict(r=4, lora_alpha=8)),
    "gemma2-qkvo-r4": (lambda: Gemma2Config(**SHAPE, head_dim=16, query_pre_attn_scalar=16, attn_logit_softcapping=5.0,
                                            final_logit_softcapping=3.0, sliding_window=4, tie_word_embeddings=True),
                       dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
    # GPT-2: PEFT's default c_attn (a Conv1D: PEFT sets fan_in_fan_out), and every Conv1D.
    "gpt2-default-r4": (lambda: GPT2Config(vocab_size=211, n_positions=64, n_embd=64, n_layer=2, n_head=4,
                                           bos_token_id=1, eos_token_id=2, **NO_DROPOUT),
                        dict(r=4, lora_alpha=8, fan_in_fan_out=True)),
    "gpt2-all-conv1d-r2": (lambda: GPT2Config(vocab_size=211, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                              tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, **NO_DROPOUT),
                           dict(r=2, lora_alpha=4, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True)),
    # RWKV: PEFT's default targets (key, value, receptance, output: seven Linears a block). Without
    # rescale_every first (transformers' eval mode leaves PEFT's unmerged delta unscaled), then with it.
    "rwkv-default-r4": (lambda: RwkvConfig(vocab_size=211, hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                                           rescale_every=0, bos_token_id=1, eos_token_id=2), dict(r=4, lora_alpha=8)),
    "rwkv-rescale2-r2": (lambda: RwkvConfig(vocab_size=211, hidden_size=32, num_hidden_layers=4, intermediate_size=64,
                                            rescale_every=2, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2),
                         dict(r=2, lora_alpha=4)),
    # EXAONE 3: PEFT on the Llama oracle, base and adapter renamed to EXAONE's names (scripts/exaone3.py).
    "exaone-all-r4": (lambda: llama(tied=True, rms_norm_eps=1e-5), dict(r=4, lora_alpha=8, target_modules=ALL_EXAONE3)),
}


def make_case(out, name, make_config, lora_kwargs, seed):
    torch.manual_seed(seed)
    config = make_config()
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float32).eval()
    base_dir = out / name / "base"
    exaone = name.startswith("exaone-")
    if exaone:
        exaone3.save_as_exaone(model, base_dir)
    else:
        model.save_pretrained(str(base_dir), safe_serialization=True)
    peft_model = get_peft_model(model, LoraConfig(lora_dropout=0.0, **lora_kwargs))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for pname, p in peft_model.named_parameters():
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    peft_model.save_pretrained(str(out / name / "adapter"))
    if exaone:
        exaone3.adapter_to_exaone(out / name / "adapter")
    trainable, total = peft_model.get_nb_trainable_parameters()

    lengths = [9, 5]
    input_ids = torch.randint(3, config.vocab_size, (2, max(lengths)), generator=generator)
    attention_mask = torch.zeros_like(input_ids)
    for row, n in enumerate(lengths):
        attention_mask[row, :n] = 1
    input_ids[attention_mask == 0] = 0
    labels = input_ids.clone()
    labels[attention_mask == 0] = -100
    peft_model.train()
    result = peft_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    result.loss.backward()
    tensors = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
               "logits": result.logits.detach().contiguous(), "loss": result.loss.detach().reshape(1)}
    for pname, p in peft_model.named_parameters():
        if p.requires_grad:
            key = pname.replace(".default", "")
            tensors["grad/" + (exaone3.to_exaone_name(key, "base_model.model.") if exaone else key)] = \
                p.grad.detach().contiguous()
    save_file(tensors, str(out / name / "reference.safetensors"))
    return {"name": name, "trainable": trainable, "all": total, "lora": {k: v for k, v in lora_kwargs.items()},
            "model_type": "exaone" if exaone else config.model_type, "tied": config.tie_word_embeddings}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cases = [make_case(out, name, make, kwargs, seed) for seed, (name, (make, kwargs)) in enumerate(CASES.items())]
    (out / "manifest.json").write_text(json.dumps({"cases": cases}, indent=1))
    print(f"lora oracle: {len(cases)} PEFT cases -> {out}")


if __name__ == "__main__":
    main()
