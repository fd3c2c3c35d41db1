#!/usr/bin/env python3
"""Peak memory of a LoRA step at the real model shapes, on the CPU: lorakit vs PEFT + transformers.

For EXAONE-4.0-1.2B and polyglot-ko-1.3b (their real config.json; random weights from transformers'
from_config, saved in bf16 like the released checkpoints, with the real tokenizer files), each
framework in its own process loads the model in fp32 on the CPU, puts LoRA r=16 on PEFT's default
targets (the same initial adapter, with non-zero lora_B), and trains --steps AdamW steps on one
batch of 1 x --seq tokens cut from the Oh-LoRA text. Reported: the process's peak resident set
(getrusage ru_maxrss) and the per-step losses, which must agree.

Usage: bench_memory_cpu.py [--seq 256] [--steps 2] [--out bench/results/cpu-memory-full-size.json]
"""
import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"exaone4": ("EXAONE-4.0-1.2B", ["q_proj", "v_proj"]),
          "gpt_neox": ("polyglot-ko-1.3b", ["query_key_value"])}


def config_dir(shared, name):
    src = shared / "models" / MODELS[name][0]
    if (src / "config.json").exists():
        return src
    return ROOT / "build" / "parity" / f"{MODELS[name][0].lower()}-config"  # polyglot-ko: scripts/parity.py's


def build(work, shared, name, seq):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    model_dir = work / f"{name}-model"
    if not (model_dir / "model.safetensors").exists() and not (model_dir / "model.safetensors.index.json").exists():
        config = AutoConfig.from_pretrained(config_dir(shared, name))
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(str(model_dir), max_shard_size="20GB")
        src = shared / "models" / MODELS[name][0]
        for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                  "chat_template.jinja", "generation_config.json"]:
            if (src / f).exists():
                shutil.copy(src / f, model_dir / f)
        # The initial adapter both start from: PEFT's init with lora_B made non-zero.
        torch.manual_seed(1)
        peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=MODELS[name][1]))
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.01)
        peft_model.save_pretrained(str(work / f"{name}-adapter"))
        del model, peft_model
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    text = "".join(r["input_data"] + " " + r["output_data"] + "\n"
                   for r in csv.DictReader(open(shared / "datasets" / "ohlora" / "OhLoRA_fine_tuning_25042213.csv",
                                                encoding="utf-8")) if r["output_data"])
    ids = tok(text, add_special_tokens=False)["input_ids"][:seq]
    (work / f"{name}-batch.jsonl").write_text(json.dumps({"input_ids": ids}) + "\n")
    return model_dir


def peft_child(work, name, steps):
    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    transformers.logging.set_verbosity_error()
    model = AutoModelForCausalLM.from_pretrained(str(work / f"{name}-model"), dtype=torch.float32, attn_implementation="sdpa")
    model = PeftModel.from_pretrained(model, str(work / f"{name}-adapter"), is_trainable=True)
    ids = torch.tensor([json.loads(open(work / f"{name}-batch.jsonl").readline())["input_ids"]])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), ids[0, 1:], reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(loss.item())
    print(json.dumps({"losses": losses, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def lorakit_run(work, name, steps, lorakit):
    run_dir = work / f"run-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    recipe = work / f"{name}.yaml"
    recipe.write_text(f"model: {{path: {json.dumps(str(work / (name + '-model')))}, dtype: fp32}}\n"
                      f"data: {{path: {json.dumps(str(work / (name + '-batch.jsonl')))}, ids_column: input_ids}}\n"
                      f"lora: {{r: 16, lora_alpha: 32, target_modules: {json.dumps(MODELS[name][1])}}}\n"
                      f"train: {{max_steps: {steps}, num_train_epochs: {steps}, per_device_train_batch_size: 1, "
                      f"learning_rate: 1.0e-4, lr_scheduler_type: constant, shuffle_buffer: 1}}\n"
                      f"output: {{dir: {json.dumps(str(run_dir))}}}\n")
    command = ["/usr/bin/env", str(lorakit), "train", str(recipe), "--adapter", str(work / f"{name}-adapter")]
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"lorakit failed: {proc.stderr or proc.stdout}")
    losses = [float(r["loss"]) for r in csv.DictReader(open(run_dir / "metrics.csv"))]
    summary = json.load(open(run_dir / "summary.json"))
    return {"losses": losses, "peak_rss": summary["peak_memory_bytes"], "seconds": time.time() - start,
            "children_max_rss": usage.ru_maxrss * 1024}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--models", default="exaone4,gpt_neox")
    p.add_argument("--shared", default=str(ROOT.parent / "shared"))
    p.add_argument("--work", default=str(ROOT / "build" / "bench-memory-cpu"))
    p.add_argument("--lorakit", default=str(ROOT / "build" / "lorakit"))
    p.add_argument("--out")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    work = Path(args.work).resolve()
    if args.child:
        peft_child(work, args.child[0], int(args.child[1]))
        return
    import peft
    import torch
    import transformers
    work.mkdir(parents=True, exist_ok=True)
    shared = Path(args.shared)
    results = {}
    for name in args.models.split(","):
        build(work, shared, name, args.seq)
        start = time.time()
        proc = subprocess.run([sys.executable, __file__, "--child", name, str(args.steps), "--work", str(work)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"PEFT run failed: {proc.stderr}")
        peft_result = json.loads(proc.stdout.strip().splitlines()[-1])
        peft_result["seconds"] = time.time() - start
        ours = lorakit_run(work, name, args.steps, args.lorakit)
        worst = max(abs(a - b) / abs(b) for a, b in zip(ours["losses"], peft_result["losses"]))
        results[name] = {"model": MODELS[name][0], "peft": peft_result, "lorakit": ours,
                         "peak_ratio": ours["peak_rss"] / peft_result["peak_rss"], "worst_relative_loss_difference": worst}
        print(f"{MODELS[name][0]}: peak RSS lorakit {ours['peak_rss'] / 2**30:.2f} GiB vs PEFT "
              f"{peft_result['peak_rss'] / 2**30:.2f} GiB ({results[name]['peak_ratio']:.2f}x); losses lorakit "
              f"{ours['losses']} PEFT {peft_result['losses']} (worst relative difference {worst:.1e})", flush=True)
    report = {"machine": f"{platform.platform()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
              "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
              "setting": f"fp32 on the CPU, 1 x {args.seq} tokens, LoRA r=16 (alpha 32) on PEFT's default targets, "
                         f"{args.steps} AdamW steps, the same initial adapter",
              "command": " ".join(sys.argv), "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
