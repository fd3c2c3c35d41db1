#!/usr/bin/env python3
"""Reads lorakit's TensorBoard event files with tensorboard's own reader (EventAccumulator) and checks
them against what the run wrote elsewhere. Prints one JSON object; exits 1 on the first mismatch.

  check_tensorboard.py run DIR        every scalar equals metrics.csv / metrics.h5 (float32 rounding),
                                      steps equal; both masked CRC-32Cs of every record check out
  check_tensorboard.py sweep DIR      each finished run's HParams session (hyperparameters and metrics)
                                      equals report.csv; the experiment lists them
  check_tensorboard.py truncated DIR  a copy of the run's event file cut inside its last record is still
                                      read up to the last whole record
"""
import csv
import json
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import logging

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# The purge of a resumed run's orphaned steps is expected; its warning would break the JSON output.
logging.getLogger("tensorboard").setLevel(logging.ERROR)

CSV_TAGS = {"epoch": "train/epoch", "loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
            "tokens_per_s": "train/tokens_per_s", "mem_allocated_bytes": "train/mem_allocated_bytes",
            "mem_reserved_bytes": "train/mem_reserved_bytes", "mem_peak_bytes": "train/mem_peak_bytes"}


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    """(offset, data) of every whole record; checks both CRCs."""
    raw = path.read_bytes()
    out, at = [], 0
    while at + 12 <= len(raw):
        header = raw[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", raw[at + 8:at + 12])
        if masked(header) != length_crc:
            fail(f"{path}: record at byte {at}: length CRC mismatch")
        if at + 12 + length + 4 > len(raw):
            break  # a partial trailing record
        data = raw[at + 12:at + 12 + length]
        (data_crc,) = struct.unpack("<I", raw[at + 12 + length:at + 16 + length])
        if masked(data) != data_crc:
            fail(f"{path}: record at byte {at}: data CRC mismatch")
        out.append((at, data))
        at += 16 + length
    return out


def fail(message):
    print(json.dumps({"error": message}))
    sys.exit(1)


def load(directory):
    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def check_run(directory):
    directory = Path(directory)
    files = sorted(directory.glob("events.out.tfevents.*"))
    if not files:
        fail(f"{directory}: no event file")
    n_records = sum(len(records(f)) for f in files)
    acc = load(directory)
    tags = acc.Tags()["scalars"]
    rows = list(csv.DictReader(open(directory / "metrics.csv")))
    steps = [int(float(r["step"])) for r in rows]
    checked = 0
    for column, tag in CSV_TAGS.items():
        if tag not in tags:
            fail(f"{directory}: no scalar {tag}")
        events = acc.Scalars(tag)
        if [e.step for e in events] != steps:
            fail(f"{tag}: steps {[e.step for e in events][:5]}... vs metrics.csv {steps[:5]}... "
                 f"({len(events)} vs {len(steps)})")
        for e, r in zip(events, rows):
            if e.value != float(np.float32(float(r[column]))):
                fail(f"{tag} step {e.step}: {e.value} vs metrics.csv {r[column]}")
            checked += 1
    import h5py
    with h5py.File(directory / "metrics.h5", "r") as f:
        eval_steps, eval_loss = list(f["eval/step"][:]), list(f["eval/loss"][:])
    if eval_steps:
        events = acc.Scalars("eval/loss")
        if [e.step for e in events] != [int(s) for s in eval_steps]:
            fail(f"eval/loss steps {[e.step for e in events]} vs metrics.h5 {eval_steps}")
        for e, v in zip(events, eval_loss):
            if e.value != float(np.float32(v)):
                fail(f"eval/loss step {e.step}: {e.value} vs {v}")
            checked += 1
    texts = acc.Tags().get("tensors", [])
    print(json.dumps({"files": len(files), "records": n_records, "crc_ok": True, "scalars_checked": checked,
                      "steps": len(steps), "eval_steps": len(eval_steps), "tags": sorted(tags), "tensor_tags": sorted(texts)}))


def check_sweep(directory):
    from tensorboard.plugins.hparams import plugin_data_pb2
    directory = Path(directory)
    report = {r["run"]: r for r in csv.DictReader(open(directory / "report.csv"))}
    experiment = load(directory).PluginTagToContent("hparams")
    if "_hparams_/experiment" not in experiment:
        fail(f"{directory}: no HParams experiment")
    exp = plugin_data_pb2.HParamsPluginData.FromString(experiment["_hparams_/experiment"]).experiment
    metric_tags = sorted(m.name.tag for m in exp.metric_infos)
    hparam_names = sorted(h.name for h in exp.hparam_infos)
    sessions = {}
    for name, row in report.items():
        if row["status"] != "finished":
            continue
        acc = load(directory / name)
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        hparams = {k: (v.number_value if v.HasField("number_value") else v.string_value) for k, v in start.hparams.items()}
        end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"]).session_end_info
        metrics = {t: acc.Scalars(t)[-1].value for t in acc.Tags()["scalars"] if t.startswith("hparams/")}
        expect = {"hparams/final_loss": "final_loss", "hparams/best_eval_loss": "best_eval_loss",
                  "hparams/peak_memory_bytes": "peak_memory_bytes", "hparams/wall_seconds": "finetune_seconds",
                  "hparams/seconds_per_prompt": "inference_seconds_per_prompt"}
        for tag, column in expect.items():
            if row[column] == "":
                continue
            want = float(row[column])
            if tag not in metrics or abs(metrics[tag] - want) > 1e-6 * max(1.0, abs(want)) + 0.5 * 10 ** -_decimals(row[column]):
                fail(f"{name}: {tag} {metrics.get(tag)} vs report.csv {column} {row[column]}")
        if float(hparams["lora.r"]) != float(row["r"]) or float(hparams["lora.lora_alpha"]) != float(row["lora_alpha"]) \
                or hparams["model"] != row["model"]:
            fail(f"{name}: hparams {hparams} vs report.csv r={row['r']} alpha={row['lora_alpha']} model={row['model']}")
        if end.status != 1:
            fail(f"{name}: session status {end.status}")
        sessions[name] = {"hparams": hparams, "metrics": metrics}
    print(json.dumps({"hparams": hparam_names, "metrics": metric_tags, "sessions": sessions}))


def _decimals(text):
    return len(text.split(".")[1]) if "." in text else 0


def check_truncated(directory):
    directory = Path(directory)
    source = sorted(directory.glob("events.out.tfevents.*"))[-1]
    whole = records(source)
    raw = source.read_bytes()
    cut = whole[-1][0] + 12 + len(whole[-1][1]) // 2  # inside the last record's data
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / source.name).write_bytes(raw[:cut])
        acc = load(tmp)
        got = sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"])
        shutil.copy(source, Path(tmp) / source.name)
        full = load(tmp)
        everything = sum(len(full.Scalars(t)) for t in full.Tags()["scalars"])
    print(json.dumps({"records": len(whole), "scalars_whole_file": everything, "scalars_truncated": got}))


if __name__ == "__main__":
    {"run": check_run, "sweep": check_sweep, "truncated": check_truncated}[sys.argv[1]](sys.argv[2])
