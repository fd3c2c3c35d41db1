#!/usr/bin/env python3
"""Loads a classifier the way a transformers user does and reports what it computes
(tests/test_classifier.cpp, tests/test_cli.cpp):

  --base DIR --adapter DIR   PeftModel.from_pretrained(AutoModelForSequenceClassification(base), adapter):
                             the adapter keys PEFT found missing or unexpected;
  --merged DIR               AutoModelForSequenceClassification.from_pretrained(merged): its missing and
                             unexpected keys, num_labels and id2label.

With --reference FILE (input_ids, attention_mask, logits) it reports the largest difference between the
logits it computes and the file's (or, with --logits-key, another tensor of the file).

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
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    report = {}
    if args.merged:
        model, info = AutoModelForSequenceClassification.from_pretrained(args.merged, dtype=torch.float32,
                                                                         output_loading_info=True)
        report.update(missing=info["missing_keys"], unexpected=info["unexpected_keys"])
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
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
