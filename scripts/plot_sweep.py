#!/usr/bin/env python3
"""Plots of a lorakit sweep directory (run by `lorakit report` / `lorakit sweep`):

  loss_curves.png          training loss of every run overlaid (solid), validation loss (dashed markers)
  time_memory_by_rank.png  fine-tune time and peak memory against the LoRA rank, one line per model

Reads each run's metrics.h5 (datasets step, loss, eval/step, eval/loss) and the sweep's report.csv.

Usage: plot_sweep.py SWEEP_DIR
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sweep = Path(sys.argv[1])
    rows = list(csv.DictReader(open(sweep / "report.csv.tmp" if (sweep / "report.csv.tmp").exists() else sweep / "report.csv",
                                    encoding="utf-8")))
    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        path = sweep / row["run"] / "metrics.h5"
        if not path.exists():
            continue
        with h5py.File(path, "r") as f:
            line, = ax.plot(f["step"][:], f["loss"][:], label=f"{row['run']} train")
            if len(f["eval/step"]):
                ax.plot(f["eval/step"][:], f["eval/loss"][:], "o--", color=line.get_color(), label=f"{row['run']} validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("Loss curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sweep / "loss_curves.png", dpi=100)

    by_model = defaultdict(list)
    for row in rows:
        if row["status"] == "finished" and row["r"]:
            by_model[row["model"]].append(row)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for model, items in by_model.items():
        items.sort(key=lambda r: int(r["r"]))
        ranks = [int(r["r"]) for r in items]
        left.plot(ranks, [float(r["finetune_seconds"]) for r in items], "o-", label=model)
        right.plot(ranks, [float(r["peak_memory_bytes"]) / 2**20 for r in items], "o-", label=model)
    left.set_xlabel("LoRA rank r")
    left.set_ylabel("fine-tune time (s)")
    right.set_xlabel("LoRA rank r")
    right.set_ylabel("peak memory (MiB)")
    for a in (left, right):
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sweep / "time_memory_by_rank.png", dpi=100)


if __name__ == "__main__":
    main()
