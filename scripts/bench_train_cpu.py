#!/usr/bin/env python3
"""LoRA training speed and memory on the CPU: lorakit vs PEFT + transformers, side by side.

Builds one ~50M-parameter random EXAONE-4.0-architecture model (transformers from_config, saved as
safetensors) with a byte-level BPE tokenizer trained on generated Korean text, and 64 prompt/response
rows. Both frameworks train LoRA r=16 on q/k/v/o from the same initial adapter, fp32, AdamW, the same
micro-batches in file order, for the same number of steps, each in its own process (so peak resident
memory is the process's own). Prints tokens/s (steps after the first), seconds/step, peak RSS,
the final loss of both and the ratios lorakit/PEFT.

Usage: bench_train_cpu.py [--steps 8] [--batch 4] [--threads N] [--out bench/results/cpu-train.json]
"""
import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

PROMPT = "### 질문: {question}\n### 답변: "


def build(work, rows):
    import torch
    from tokenizer_oracle import generated_text, train_byte_level
    from transformers import AutoModelForCausalLM, Exaone4Config, PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_object=train_byte_level(generated_text(6000, seed=3), vocab_size=8000),
                                  eos_token="</s>", bos_token="<s>", pad_token="<|pad|>")
    config = Exaone4Config(vocab_size=len(tok), hidden_size=768, intermediate_size=2048, num_hidden_layers=8,
                           num_attention_heads=12, num_key_value_heads=4, tie_word_embeddings=True,
                           sliding_window=None, layer_types=["full_attention"] * 8,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(work / "model"))
    tok.save_pretrained(str(work / "model"))
    with open(work / "rows.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer"])
        writer.writerows(rows)
    return model.num_parameters()


def peft_run(work, steps, batch, threads):
    """Runs in a child process: PEFT + transformers training; prints one JSON line."""
    import torch
    import transformers
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(str(work / "model"))
    model = AutoModelForCausalLM.from_pretrained(str(work / "model"), attn_implementation="sdpa", dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(work / "init_adapter"), is_trainable=True)
    rows = list(csv.DictReader(open(work / "rows.csv", encoding="utf-8")))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    model.train()
    times, tokens, losses = [], [], []
    for step in range(steps):
        chunk = rows[step * batch:(step + 1) * batch]
        examples = []
        for r in chunk:
            p = tok(PROMPT.format(question=r["question"]))["input_ids"]
            a = tok(r["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            examples.append((p + a, [-100] * len(p) + a))
        width = max(len(i) for i, _ in examples)
        ids = torch.full((len(examples), width), tok.pad_token_id)
        labels = torch.full((len(examples), width), -100)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for k, (i, l) in enumerate(examples):
            ids[k, :len(i)] = torch.tensor(i)
            labels[k, :len(l)] = torch.tensor(l)
            mask[k, :len(i)] = 1
        start = time.perf_counter()
        optimizer.zero_grad()
        logits = model(input_ids=ids, attention_mask=mask).logits
        n = int((labels[:, 1:] != -100).sum())
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                 labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum") / n
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
        tokens.append(int(mask.sum()))
        losses.append(loss.item())
    print(json.dumps({"seconds": times, "tokens": tokens, "losses": losses,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", default=str(ROOT / "build" / "bench-train-cpu"))
    parser.add_argument("--out")
    parser.add_argument("--peft-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    if args.peft_child:
        peft_run(work, args.steps, args.batch, args.threads)
        return

    from make_demo_data import rows as demo_rows
    rows = [(q + " " + q, a + " " + a + " " + a) for _, q, a in demo_rows()] * 2  # longer rows
    rows = rows[: args.steps * args.batch]
    work.mkdir(parents=True, exist_ok=True)
    parameters = build(work, rows)
    # One initial adapter for both.
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(str(work / "model"))
    get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])) \
        .save_pretrained(str(work / "init_adapter"))
    del base

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    peft_out = subprocess.run([sys.executable, __file__, "--peft-child", "--work", str(work), "--steps", str(args.steps),
                               "--batch", str(args.batch), "--threads", str(args.threads)],
                              check=True, capture_output=True, text=True, env=env).stdout
    peft = json.loads(peft_out.strip().splitlines()[-1])

    recipe = work / "recipe.yaml"
    recipe.write_text(f"""model:
  path: {work / 'model'}
lora:
  r: 16
  lora_alpha: 32
  target_modules: [q_proj, k_proj, v_proj, o_proj]
data:
  path: {work / 'rows.csv'}
  prompt_template: "### 질문: {{question}}\\n### 답변: "
  response_column: answer
train:
  max_steps: {args.steps}
  per_device_train_batch_size: {args.batch}
  learning_rate: 1.0e-4
  lr_scheduler_type: constant
  shuffle_buffer: 1
output:
  dir: {work / 'run'}
""", encoding="utf-8")
    subprocess.run([str(ROOT / "build" / "lorakit"), "train", str(recipe), "--adapter", str(work / "init_adapter"),
                    "--overwrite"], check=True, capture_output=True, env=env)
    metrics = list(csv.DictReader(open(work / "run" / "metrics.csv")))
    summary = json.load(open(work / "run" / "summary.json"))
    lk_tps = [float(m["tokens_per_s"]) for m in metrics[1:]]
    peft_tps = [t / s for t, s in zip(peft["tokens"][1:], peft["seconds"][1:])]
    lk = {"tokens_per_s": sum(lk_tps) / len(lk_tps), "peak_rss": summary["peak_memory_bytes"],
          "final_loss": float(metrics[-1]["loss"])}
    pf = {"tokens_per_s": sum(peft_tps) / len(peft_tps), "peak_rss": peft["peak_rss"], "final_loss": peft["losses"][-1]}
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads",
              "parameters": parameters, "steps": args.steps, "batch": args.batch, "lorakit": lk, "peft": pf,
              "ratio_tokens_per_s": lk["tokens_per_s"] / pf["tokens_per_s"], "ratio_peak_rss": lk["peak_rss"] / pf["peak_rss"],
              "date": time.strftime("%Y-%m-%d")}
    print(f"LoRA r=16 q/k/v/o, {parameters / 1e6:.1f}M-parameter EXAONE-shaped model, fp32, batch {args.batch}, "
          f"{args.steps} steps, {result['machine']}")
    print(f"{'':<10} {'tokens/s':>10} {'peak RSS':>12} {'final loss':>11}")
    for name, r in (("PEFT", pf), ("lorakit", lk)):
        print(f"{name:<10} {r['tokens_per_s']:>10.1f} {r['peak_rss'] / 2**20:>9.0f} MiB {r['final_loss']:>11.4f}")
    print(f"lorakit/PEFT: tokens/s {result['ratio_tokens_per_s']:.2f}x, peak RSS {result['ratio_peak_rss']:.2f}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
