#!/usr/bin/env python3
"""PEFT + transformers training as the oracle for `lorakit train` (tests/test_train.cpp).

A tiny random EXAONE 4.0 model with its tokenizer, 40 Korean prompt/response rows (the demo's), LoRA
r=8 on q/k/v/o from one initial adapter (saved, so lorakit starts from the same weights), dropout 0,
fp32, torch.optim.AdamW with a linear schedule and warmup, gradient clipping, micro-batches of 2
rows in file order padded to the longest row, gradient accumulation 2 with the loss normalised by
the step's loss tokens: 10 optimizer steps. Records every step's loss and the final adapter, and
writes the lorakit recipe with the same settings.

Usage: train_oracle.py --out build/train
"""
import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, get_peft_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from data_oracle import build_model, build_tokenizer  # noqa: E402
from make_demo_data import rows  # noqa: E402

PROMPT = "### 질문: {question}\n### 답변: "
STEPS, MICRO, ACCUM, LR, WARMUP, WD = 10, 2, 2, 1e-3, 2, 0.01


def write_other_architectures(out, model_dir, vocab_size):
    """Tiny random models with the same tokenizer: llama and qwen2 (the cross-architecture sweep), and
    the eight Oh-LoRA candidates (../shared/datasets/ohlora/model_selection) scaled down in width and
    depth with their architecture and options kept (the Oh-LoRA sweep)."""
    from transformers import (AutoModelForCausalLM, Gemma2Config, GemmaConfig, GPTNeoXConfig, LlamaConfig,
                              Qwen2Config, RwkvConfig)
    ids = dict(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    shape = dict(ids, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    llama32 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    models = {
        "model-llama": LlamaConfig(**shape, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
        "model-qwen2": Qwen2Config(**shape, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
        # gemma-2-2b-it: 8:4 heads, head_dim 256 > H/heads, soft caps, sliding window, tied.
        "ohlora/gemma-2-2b-it": Gemma2Config(**shape, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                             query_pre_attn_scalar=32, sliding_window=16, tie_word_embeddings=True),
        # koquality-polyglot-1.3b and polyglot-ko-1.3b: half rotary, parallel residual, untied.
        "ohlora/koquality-polyglot-1.3b": GPTNeoXConfig(**shape, num_attention_heads=4, rotary_pct=0.5,
                                                        use_parallel_residual=True, tie_word_embeddings=False),
        "ohlora/polyglot-ko-1.3b": GPTNeoXConfig(**shape, num_attention_heads=4, rotary_pct=0.5,
                                                 use_parallel_residual=True, tie_word_embeddings=False),
        # gemma-ko-v01 (gemma-2b): multi-query, head_dim 256 > H/heads, tied.
        "ohlora/gemma-ko-v01": GemmaConfig(**shape, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                                           tie_word_embeddings=True),
        # llama1B (Llama-3.2-1B): GQA 4:1, llama3 RoPE, tied.
        "ohlora/llama1B": LlamaConfig(**shape, num_attention_heads=8, num_key_value_heads=2, rope_parameters=llama32,
                                      tie_word_embeddings=True),
        # TinyKo (a small llama; its exact config is not in ../shared): GQA 2:1, untied.
        "ohlora/TinyKo": LlamaConfig(**shape, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
        # KoAlpaca-KoRWKV-1.5B: RWKV-4, untied head.
        "ohlora/KoAlpaca-KoRWKV-1.5B": RwkvConfig(**ids, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                  rescale_every=6, tie_word_embeddings=False),
        # FinguAI-Chat-v1 (Qwen1.5-0.5B-Chat): q/k/v biases, tied.
        "ohlora/FinguAI-Chat-v1": Qwen2Config(**shape, num_attention_heads=4, num_key_value_heads=4,
                                              tie_word_embeddings=True),
    }
    for seed, (name, config) in enumerate(models.items()):
        torch.manual_seed(seed)
        target = out / name
        AutoModelForCausalLM.from_config(config).save_pretrained(str(target))
        for f in model_dir.iterdir():
            if f.name.startswith("tokenizer") or f.name == "chat_template.jinja":
                shutil.copyfile(f, target / f.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    model_dir = out / "model"
    tok = build_tokenizer(model_dir)
    model = build_model(model_dir, len(tok))
    write_other_architectures(out, model_dir, len(tok))
    data = [(q, a) for _, q, a in rows()][: STEPS * MICRO * ACCUM]
    with open(out / "rows.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer"])
        writer.writerows(data)

    torch.manual_seed(7)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape) * 0.01)
    peft_model.save_pretrained(str(out / "init_adapter"))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WD)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, WARMUP, STEPS)

    def example(q, a):
        prompt = tok(PROMPT.format(question=q))["input_ids"]
        response = tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return prompt + response, [-100] * len(prompt) + response

    def batch(pairs):
        examples = [example(q, a) for q, a in pairs]
        width = max(len(ids) for ids, _ in examples)
        ids = torch.full((len(examples), width), tok.pad_token_id)
        labels = torch.full((len(examples), width), -100)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, (i, l) in enumerate(examples):
            ids[row, :len(i)] = torch.tensor(i)
            labels[row, :len(l)] = torch.tensor(l)
            mask[row, :len(i)] = 1
        return ids, labels, mask

    peft_model.train()
    losses = []
    for step in range(STEPS):
        micro = [batch(data[(step * ACCUM + k) * MICRO:(step * ACCUM + k + 1) * MICRO]) for k in range(ACCUM)]
        tokens = sum(int((labels[:, 1:] != -100).sum()) for _, labels, _ in micro)
        optimizer.zero_grad()
        total = 0.0
        for ids, labels, mask in micro:
            logits = peft_model(input_ids=ids, attention_mask=mask).logits
            loss_sum = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                         labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
            (loss_sum / tokens).backward()
            total += loss_sum.item()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(total / tokens)
    peft_model.save_pretrained(str(out / "final_adapter"))

    recipe = f"""# Written by scripts/train_oracle.py: the settings of its PEFT run.
model:
  path: {model_dir}
lora:
  r: 8
  lora_alpha: 16
  lora_dropout: 0.0
  target_modules: [q_proj, k_proj, v_proj, o_proj]
data:
  path: {out / 'rows.csv'}
  prompt_template: "### 질문: {{question}}\\n### 답변: "
  response_column: answer
train:
  max_steps: {STEPS}
  num_train_epochs: 1
  per_device_train_batch_size: {MICRO}
  gradient_accumulation_steps: {ACCUM}
  learning_rate: {LR}
  weight_decay: {WD}
  lr_scheduler_type: linear
  warmup_steps: {WARMUP}
  max_grad_norm: 1.0
  shuffle_buffer: 1
  save_steps: 4
  save_total_limit: 3
output:
  dir: {out / 'run'}
"""
    (out / "recipe.yaml").write_text(recipe, encoding="utf-8")
    (out / "expected.json").write_text(json.dumps({"losses": losses}, indent=1))
    print(f"train oracle: {STEPS} PEFT steps, losses {losses[0]:.4f} -> {losses[-1]:.4f} -> {out}")


if __name__ == "__main__":
    main()
