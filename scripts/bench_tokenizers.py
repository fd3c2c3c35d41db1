#!/usr/bin/env python3
"""Tokenizer speed, lorakit vs Hugging Face `tokenizers` (Rust), side by side on one machine.

Both encode the same Korean corpus (every text field of ../shared/datasets, or generated
Korean-like text when ../shared is absent) without special tokens, single-threaded
(RAYON_NUM_THREADS=1 for HF's encode_batch), for several passes. Reported: the first pass (cold
per-word caches) and the best later pass, tokens/s for both, and lorakit/HF. The ids must agree.

Usage: bench_tokenizers.py [--model DIR ...] [--passes 5] [--repeat 2] [--out results.json]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from tokenizer_oracle import generated_text, shared_texts  # noqa: E402


def hf_bench(model_dir, texts, passes):
    start = time.perf_counter()
    backend = AutoTokenizer.from_pretrained(model_dir).backend_tokenizer
    load = time.perf_counter() - start
    times, tokens, ids = [], 0, None
    for _ in range(passes):
        start = time.perf_counter()
        encodings = backend.encode_batch(texts, add_special_tokens=False)
        times.append(time.perf_counter() - start)
        if ids is None:
            ids = [e.ids for e in encodings]
            tokens = sum(len(x) for x in ids)
    return {"tokens": tokens, "load_s": load, "first_pass_s": times[0], "best_pass_s": min(times[1:]),
            "tokens_per_s_first": tokens / times[0], "tokens_per_s_best": tokens / min(times[1:])}, ids


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = ROOT.parent / "shared"
    defaults = [str(p) for p in (shared / "models" / "EXAONE-4.0-1.2B", shared / "models" / "polyglot-ko-1.3b")
                if p.exists()]
    parser.add_argument("--model", action="append", help="model directory (default: the real EXAONE and polyglot-ko)")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2, help="corpus copies (more text per pass)")
    parser.add_argument("--bench-binary", default=str(ROOT / "build" / "tests" / "bench_tokenizer"))
    parser.add_argument("--out")
    args = parser.parse_args()
    models = args.model or defaults
    if not models:
        sys.exit("bench_tokenizers: no model directory (../shared/models absent); pass --model DIR")

    texts = shared_texts(shared) if (shared / "datasets").exists() else generated_text(20000)
    texts = texts * args.repeat
    results = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "tokenizers": tokenizers.__version__, "texts": len(texts),
               "bytes": sum(len(t.encode()) for t in texts), "passes": args.passes, "models": []}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(texts, f, ensure_ascii=False)
        corpus_path = f.name
    try:
        for model in models:
            hf, hf_ids = hf_bench(model, texts, args.passes)
            out = subprocess.run([args.bench_binary, model, corpus_path, str(args.passes)], check=True,
                                 capture_output=True, text=True).stdout
            lk = json.loads(out)
            if lk["tokens"] != hf["tokens"]:
                sys.exit(f"{model}: token counts differ (lorakit {lk['tokens']}, HF {hf['tokens']})")
            row = {"model": Path(model).name, "hf": hf, "lorakit": lk,
                   "ratio_first": lk["tokens_per_s_first"] / hf["tokens_per_s_first"],
                   "ratio_best": lk["tokens_per_s_best"] / hf["tokens_per_s_best"]}
            results["models"].append(row)
    finally:
        os.unlink(corpus_path)

    print(f"{results['texts']:,} texts, {results['bytes'] / 1e6:.1f} MB of UTF-8, {args.passes} passes, one thread; "
          f"HF tokenizers {results['tokenizers']}; {results['machine']}")
    print(f"{'model':<20} {'pass':<6} {'HF tokens/s':>13} {'lorakit tokens/s':>17} {'lorakit/HF':>11}")
    for row in results["models"]:
        for kind in ("first", "best"):
            print(f"{row['model']:<20} {kind:<6} {row['hf']['tokens_per_s_' + kind]:>13,.0f} "
                  f"{row['lorakit']['tokens_per_s_' + kind]:>17,.0f} {row['ratio_' + kind]:>10.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
