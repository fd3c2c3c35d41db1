#!/usr/bin/env python3
"""Loads a classifier the way a transformers user does and reports what it computes
(tests/test_classifier.cpp, tests/test_cli.cpp):

  --base DIR --adapter DIR   PeftModel.from_pretrained(AutoModelForSequenceClassification(base), adapter):
                             the adapter keys PEFT found missing or unexpected;
  --merged DIR               AutoModelForSequenceClassification.from_pretrained(merged): its missing and
                             unexpected keys, num_labels and id2label.

With --reference FILE (input_ids, attention_mask, logits) it reports the largest difference between the
logits it computes and the file's (or, with --logits-key, another tensor of the file).

With --predictions CSV (what `lorakit eval --predictions` wrote: line, label, prediction, correct,
p_<label>...) it reports scikit-learn's metrics of those labels and predictions (sklearn_*), and with
--data CSV --text-column C the largest difference between the CSV's probabilities and the softmax of the
model's logits on the same rows, tokenized by AutoTokenizer (right padding with the config's pad id).

Usage: check_classifier.py (--base B --adapter A | --merged M) [--reference R] --report OUT.json
"""
import argparse
import json
import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from peft import PeftModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base")
    parser.add_argument("--adapter")
    parser.add_argument("--merged")
    parser.add_argument("--reference")
    parser.add_argument("--logits-key", default="logits")
    parser.add_argument("--predictions")
    parser.add_argument("--data")
    parser.add_argument("--text-column")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    report = {}
    if args.merged:
        model, info = AutoModelForSequenceClassification.from_pretrained(args.merged, dtype=torch.float32,
                                                                         output_loading_info=True)
        report.update(missing=sorted(info["missing_keys"]), unexpected=sorted(info["unexpected_keys"]))
        report.update(num_labels=model.config.num_labels, id2label={str(k): v for k, v in model.config.id2label.items()})
    else:
        base = AutoModelForSequenceClassification.from_pretrained(args.base, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, args.adapter)
        # Load once more to read PEFT's own verdict on the keys.
        result = model.load_adapter(args.adapter, adapter_name="check")
        report.update(missing=[k for k in result.missing_keys if ".check" in k or "lora_" in k and ".check." in k],
                      unexpected=list(result.unexpected_keys))
        model.set_adapter("default")
    model.eval()
    if args.reference:
        ref = load_file(args.reference)
        with torch.no_grad():
            logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
        report["max_abs_logits"] = float((logits - ref[args.logits_key]).abs().max())
        report["logits"] = logits.tolist()
    if args.predictions:
        import csv
        from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
        with open(args.predictions, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        names = [key[2:] for key in rows[0] if key.startswith("p_")]
        y_true = [names.index(r["label"]) for r in rows]
        y_pred = [names.index(r["prediction"]) for r in rows]
        labels = list(range(len(names)))
        report["sklearn_accuracy"] = accuracy_score(y_true, y_pred)
        for average in ("macro", "micro", "weighted"):
            p, r, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
            report[f"sklearn_{average}"] = {"precision": p, "recall": r, "f1": f1}
        p, r, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        report["sklearn_per_label"] = [{"precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
                                       for a, b, c, d in zip(p, r, f1, support)]
        report["sklearn_confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
        if args.data:
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(args.merged)
            with open(args.data, newline="", encoding="utf-8") as f:
                texts = {i + 2: row[args.text_column] for i, row in enumerate(csv.DictReader(f))}  # line numbers
            worst = 0.0
            for row in rows:
                ids = tokenizer(texts[int(row["line"])], return_tensors="pt")
                with torch.no_grad():
                    probabilities = torch.softmax(model(**ids).logits[0], -1)
                for k, name in enumerate(names):
                    worst = max(worst, abs(float(probabilities[k]) - float(row["p_" + name])))
            report["max_abs_probabilities"] = worst
            report["rows"] = len(rows)
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
