#!/usr/bin/env python3
"""LoRA training speed and memory: lorakit vs PEFT + transformers, side by side, one machine.

For each model shape (EXAONE-4.0-1.2B and polyglot-ko-1.3b from their real config.json, random
weights from transformers' from_config, saved as safetensors with the real tokenizer files) and each
LoRA rank, every variant trains the same number of steps on the same batches, each in its own
process:
  peft        PEFT + transformers, SDPA, AdamW, bf16 base weights, LoRA in fp32 (PEFT's default)
  peft-gc     the same with gradient checkpointing (enable_input_require_grads)
  lorakit     lorakit train with its defaults
  lorakit-rc  lorakit with activation recompute and the chunked loss (loss_chunk_tokens 1024)
  lorakit-pk  lorakit with packing (the original rows, block-diagonal attention): its own batches
The batches: the data's rows (Oh-LoRA prompt + answer for polyglot-ko, SKN13 conversations for
EXAONE) concatenated and cut into rows of exactly --seq tokens, --batch rows a step, in file order,
so both frameworks see the same token ids (lorakit's tokenizer equals HF's, tests/test_tokenizers).
Measured after --warmup steps: tokens/s, seconds/step, peak allocated and reserved memory (CUDA
allocator; on the CPU the process's peak RSS), MFU and the final loss.

MFU = tokens/s x FLOPs per token / peak FLOP/s, FLOPs per token = 4 N + 6 L T d: N the matmul
parameters (every Linear and the output head, not the embedding lookup), 4 N = the forward (2N)
and the input gradients (2N; the frozen weights need no weight gradients; LoRA's own are under
1%), 6 L T d = causal attention's QK^T and AV forward and backward (L layers, T tokens, d =
heads x head_dim), recompute not counted as useful work. Peak: --peak-tflops (989 for H100/H200
SXM bf16 dense).

--quick: shrunken configs (2 layers, width 64), 2 x 64 tokens, 3 steps, r=16, fp32 on the CPU:
the same code path in seconds (ctest runs it through scripts/gpu_check.sh --quick).

Usage: bench_vs_peft.py --out DIR [--device cuda] [--ranks 16,32,64] [--steps 12] [--warmup 3]
       [--batch 4] [--seq 1024] [--budget-seconds 300] [--max-vram 12GiB] [--quick]
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
PROMPT = "### 질문: {input_data}\n### 답변: "
MODELS = {  # name -> (shared model dir, data file)
    "exaone4": ("EXAONE-4.0-1.2B", "skn13_exaone/train.jsonl"),
    "gpt_neox": ("polyglot-ko-1.3b", "ohlora/OhLoRA_fine_tuning_25042213.csv"),
}
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "chat_template.jinja", "generation_config.json"]


def shared_dir(args):
    for candidate in [args.shared, ROOT / ".device" / "shared", ROOT.parent / "shared"]:
        if candidate and (Path(candidate) / "models").is_dir():
            return Path(candidate)
    if args.quick:  # the ctest smoke run on a machine without ../shared: say so and pass
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "bench_vs_peft.md").write_text("skipped: no ../shared (the real configs, tokenizers and data)\n")
        print("bench_vs_peft --quick: skipped, no ../shared with the real model configs, tokenizers and data")
        sys.exit(0)
    sys.exit("bench_vs_peft: no shared models/ and datasets/ (give --shared, or copy them into .device/shared)")


def texts_of(path):
    """The data's rows as plain text, in file order."""
    if path.suffix == ".jsonl":
        for line in open(path, encoding="utf-8"):
            row = json.loads(line)
            yield "\n".join(m["content"] for m in row["messages"] if isinstance(m.get("content"), str))
    else:
        for row in csv.DictReader(open(path, encoding="utf-8")):
            if row.get("output_data"):
                yield PROMPT.format(input_data=row["input_data"]) + row["output_data"]


def build(work, name, args, shared):
    """Model directory (random weights, real config and tokenizer), bench.jsonl (rows of exactly seq
    tokens) and rows.csv (the original rows, for packing). Returns facts for the MFU."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    src = shared / "models" / MODELS[name][0]
    model_dir = work / f"{name}-model"
    config_dir = src
    if not (src / "config.json").exists():  # polyglot-ko ships no config.json: scripts/parity.py writes its values
        config_dir = next((d for d in [ROOT / "build" / "parity" / f"{MODELS[name][0].lower()}-config",
                                       shared / "configs" / MODELS[name][0]] if (d / "config.json").exists()), None)
        if config_dir is None:
            sys.exit(f"bench_vs_peft: no config.json for {MODELS[name][0]} (run scripts/parity.py, or put one in "
                     f"{shared / 'configs' / MODELS[name][0]})")
    config = AutoConfig.from_pretrained(config_dir)
    if args.quick:
        for key, value in {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
                           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}.items():
            if hasattr(config, key):
                setattr(config, key, value)
        if hasattr(config, "layer_types"):
            config.layer_types = ["full_attention"] * config.num_hidden_layers
        if hasattr(config, "sliding_window"):
            config.sliding_window = None
    dtype = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    if not (model_dir / "model.safetensors").exists() and not (model_dir / "model.safetensors.index.json").exists():
        torch.manual_seed(0)
        with torch.device(args.device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.save_pretrained(str(model_dir))
        del model
        for f in TOKENIZER_FILES:
            if (src / f).exists():
                shutil.copy(src / f, model_dir / f)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids, rows = [], []
    for text in texts_of(shared / "datasets" / MODELS[name][1]):
        rows.append(text)
        ids.extend(tok(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= args.seq * args.batch * (args.steps + 1) and len(rows) >= args.batch * (args.steps + 1):
            break
    # The same token ids for both frameworks: chunks of exactly seq ids cut from the concatenated rows,
    # given to lorakit as pre-tokenized rows (data.ids_column).
    chunks = [ids[i:i + args.seq] for i in range(0, len(ids) - args.seq, args.seq)][: args.batch * args.steps]
    with open(work / f"{name}-bench.jsonl", "w", encoding="utf-8") as f:
        for chunk in chunks:
            f.write(json.dumps({"input_ids": chunk}) + "\n")
    with open(work / f"{name}-rows.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        for r in rows:
            w.writerow([r])
    d = config.num_attention_heads * getattr(config, "head_dim", None) if getattr(config, "head_dim", None) else config.hidden_size
    embed = config.vocab_size * config.hidden_size
    head = 0 if getattr(config, "tie_word_embeddings", False) else embed
    with torch.device("meta"):
        total = AutoModelForCausalLM.from_config(config).num_parameters()
    n_matmul = total - embed - head + config.vocab_size * config.hidden_size  # Linears + the head matmul
    return {"num_parameters": total, "matmul_parameters": n_matmul, "layers": config.num_hidden_layers, "attn_width": d,
            "chunks": len(chunks)}


def peft_child(args, work, name, rank, checkpointing):
    """One PEFT + transformers run; prints one JSON line."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    transformers.logging.set_verbosity_error()
    device = torch.device(args.device)
    dtype = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(str(work / f"{name}-model"), attn_implementation="sdpa", dtype=dtype).to(device)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"] if name == "exaone4" else ["query_key_value", "dense"]
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets))
    init = work / f"init-{name}-r{rank}"  # the initial adapter lorakit starts from too
    if not (init / "adapter_model.safetensors").exists():
        model.save_pretrained(str(init))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=device.type == "cuda")
    chunks = [json.loads(l)["input_ids"] for l in open(work / f"{name}-bench.jsonl")]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    times, tokens, losses = [], [], []
    for step in range(args.steps):
        ids = torch.tensor(chunks[step * args.batch:(step + 1) * args.batch], device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(out.loss.item())  # synchronises
        times.append(time.perf_counter() - start)
        tokens.append(ids.numel())
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    reserved = torch.cuda.max_memory_reserved() if device.type == "cuda" else peak
    print(json.dumps({"seconds": times, "tokens": tokens, "losses": losses, "peak": peak, "reserved": reserved}))


def lorakit_run(args, work, name, rank, variant):
    run_dir = work / f"run-{name}-r{rank}-{variant}"
    shutil.rmtree(run_dir, ignore_errors=True)
    targets = "[q_proj,k_proj,v_proj,o_proj]" if name == "exaone4" else "[query_key_value,dense]"
    packed = variant == "lorakit-pk"
    recipe = run_dir.parent / f"{run_dir.name}.yaml"
    recipe.write_text("model: {path: %s}\ndata: {path: %s}\n" % (json.dumps(str(work / (name + "-model"))),
                                                                  json.dumps(str(work / (name + "-rows.csv")))))
    sets = [f"model.dtype={args.dtype}", f"train.device={args.device}",
            f"lora.r={rank}", f"lora.lora_alpha={2 * rank}", f"lora.target_modules={targets}", "lora.lora_dropout=0.0",
            f"train.per_device_train_batch_size={args.batch}", f"train.max_steps={args.steps}", "train.num_train_epochs=100",
            "train.learning_rate=1e-4", "train.shuffle_buffer=1", "train.warmup_steps=0", "train.lr_scheduler_type=constant",
            f"data.max_seq_len={args.seq}", "data.add_eos=false", f"output.dir={run_dir}"]
    if packed:
        sets += [f"data.path={work / (name + '-rows.csv')}", "data.text_column=text", "train.packing=true"]
    else:
        sets += [f"data.path={work / (name + '-bench.jsonl')}", "data.ids_column=input_ids"]
    if variant == "lorakit-rc":
        sets += ["train.gradient_checkpointing=true", "train.loss_chunk_tokens=1024"]
    if args.max_vram:
        sets += [f"train.max_vram={args.max_vram}"]
    command = [str(args.lorakit), "train", str(recipe)]
    init = work / f"init-{name}-r{rank}"
    if (init / "adapter_model.safetensors").exists():
        command += ["--adapter", str(init)]
    for s in sets:
        command += ["--set", s]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    summary = json.load(open(run_dir / "summary.json"))
    return {"tokens_per_step": summary["tokens"] / max(summary["steps"], 1),
            "tokens_per_s_steps": [float(r["tokens_per_s"]) for r in rows], "losses": [float(r["loss"]) for r in rows],
            "peak": summary["peak_memory_bytes"], "reserved": summary["peak_reserved_bytes"]}


def summarise(result, warmup, facts, args):
    if "error" in result:
        return result
    if "seconds" in result:  # PEFT
        secs, toks = result["seconds"][warmup:], result["tokens"][warmup:]
        tps = sum(toks) / sum(secs)
        sps = sum(secs) / len(secs)
    else:
        rates = result["tokens_per_s_steps"][warmup:]
        sps = sum(result["tokens_per_step"] / r for r in rates) / len(rates)
        tps = result["tokens_per_step"] / sps
    flops = 4 * facts["matmul_parameters"] + 6 * facts["layers"] * args.seq * facts["attn_width"]
    return {"tokens_per_s": tps, "seconds_per_step": sps, "peak_bytes": result["peak"], "reserved_bytes": result["reserved"],
            "mfu": tps * flops / (args.peak_tflops * 1e12), "final_loss": result["losses"][-1]}


def markdown(results, args, env):
    lines = [f"# lorakit vs PEFT + transformers: LoRA training ({env['device_name']})", "",
             f"{args.batch} x {args.seq} tokens per step, {args.dtype}, {args.steps} steps ({args.warmup} warm-up not "
             f"counted), AdamW, SDPA; torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}; "
             f"{env['date']}. MFU against {args.peak_tflops:g} TFLOP/s.", "",
             "| model | r | variant | tokens/s | s/step | peak alloc | peak reserved | MFU | final loss | tokens/s vs peft | peak vs peft |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (name, rank), variants in results.items():
        base = variants.get("peft", {})
        for variant, r in variants.items():
            if "error" in r:
                lines.append(f"| {name} | {rank} | {variant} | failed: {' '.join(r['error'])} | | | | | | | |")
                continue
            ratio = r["tokens_per_s"] / base["tokens_per_s"] if base.get("tokens_per_s") else float("nan")
            mem = r["peak_bytes"] / base["peak_bytes"] if base.get("peak_bytes") else float("nan")
            lines.append(f"| {name} | {rank} | {variant} | {r['tokens_per_s']:,.0f} | {r['seconds_per_step']:.3f} | "
                         f"{r['peak_bytes'] / 2**30:.2f} GiB | {r['reserved_bytes'] / 2**30:.2f} GiB | {100 * r['mfu']:.1f}% | "
                         f"{r['final_loss']:.4f} | {ratio:.2f}x | {mem:.2f}x |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--models", default="exaone4,gpt_neox")
    p.add_argument("--ranks", default="16,32,64")
    p.add_argument("--variants", default="peft,peft-gc,lorakit,lorakit-rc,lorakit-pk")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--budget-seconds", type=float, default=1e9, help="start no new run after this long")
    p.add_argument("--max-vram", default="", help="lorakit train.max_vram for every lorakit run")
    p.add_argument("--lorakit", default=str(ROOT / "build" / "lorakit"))
    p.add_argument("--shared")
    p.add_argument("--work")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", nargs=3, metavar=("MODEL", "RANK", "GC"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.device, args.dtype, args.ranks, args.steps, args.warmup, args.batch, args.seq = "cpu", "fp32", "16", 3, 1, 2, 64
        args.peak_tflops = 1.0
    work = Path(args.work or (ROOT / "build" / ("bench-vs-peft-quick" if args.quick else "bench-vs-peft"))).resolve()
    if args.child:
        peft_child(args, work, args.child[0], int(args.child[1]), args.child[2] == "1")
        return
    import peft
    import torch
    import transformers
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shared = shared_dir(args)
    start = time.time()
    env = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
           "date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "cpus": os.cpu_count(),
           "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {os.cpu_count()} cores",
           "command": " ".join(sys.argv)}
    results, raw = {}, {}
    for name in args.models.split(","):
        facts = build(work, name, args, shared)
        for rank in [int(r) for r in args.ranks.split(",")]:
            results[(name, rank)] = {}
            for variant in args.variants.split(","):
                if time.time() - start > args.budget_seconds:
                    results[(name, rank)][variant] = {"error": ["not run: over --budget-seconds"]}
                    continue
                if variant.startswith("peft"):
                    child = [sys.executable, __file__, "--child", name, str(rank), "1" if variant == "peft-gc" else "0",
                             "--work", str(work)] + [a for a in sys.argv[1:] if a != "--quick"] + (["--quick"] if args.quick else [])
                    proc = subprocess.run(child, capture_output=True, text=True)
                    r = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else \
                        {"error": (proc.stderr or "").strip().splitlines()[-1:]}
                else:
                    r = lorakit_run(args, work, name, rank, variant)
                raw[f"{name}/r{rank}/{variant}"] = r
                results[(name, rank)][variant] = summarise(r, args.warmup, facts, args)
                print(f"{name} r{rank} {variant}: {results[(name, rank)][variant]}", flush=True)
    table = markdown(results, args, env)
    (out / "bench_vs_peft.md").write_text(table)
    (out / "bench_vs_peft.json").write_text(json.dumps(
        {"env": env, "args": vars(args), "results": {f"{n}/r{r}": v for (n, r), v in results.items()}, "raw": raw}, indent=1))
    print(table)


if __name__ == "__main__":
    main()
