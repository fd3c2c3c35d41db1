#!/usr/bin/env python3
"""transformers/PEFT reading what lorakit wrote (tests/test_export.cpp).

  peft     --base B --adapter A --inputs F --out O   PeftModel.from_pretrained(base, adapter): reports
                                                     missing/unexpected adapter keys, writes logits
  merged   --model M --inputs F --out O              AutoModelForCausalLM.from_pretrained(merged): reports
                                                     missing/unexpected keys and dtype, writes logits (fp32)
  generate --base B [--adapter A] --inputs F --max-new-tokens N
                                                     greedy model.generate; prints the new token ids

F is a safetensors file with `input_ids` (and optionally `attention_mask`). Prints one JSON line.
"""
import argparse
import json

import torch
import transformers
from peft import PeftModel
from peft.utils import get_peft_model_state_dict, load_peft_weights
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["peft", "merged", "generate"])
    parser.add_argument("--base")
    parser.add_argument("--adapter")
    parser.add_argument("--model")
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    inputs = load_file(args.inputs)
    ids = inputs["input_ids"].long()
    mask = inputs.get("attention_mask", torch.ones_like(ids)).long()
    report = {}
    if args.mode == "merged":
        model, info = AutoModelForCausalLM.from_pretrained(args.model, output_loading_info=True,
                                                           attn_implementation="eager")
        report = {"missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
                  "dtype": str(model.dtype), "tied": model.get_output_embeddings().weight.data_ptr()
                  == model.get_input_embeddings().weight.data_ptr()}
    else:
        model = AutoModelForCausalLM.from_pretrained(args.base, attn_implementation="eager", dtype=torch.float32)
        if args.adapter:
            model = PeftModel.from_pretrained(model, args.adapter)
            saved = set(load_peft_weights(args.adapter).keys())
            expected = set(get_peft_model_state_dict(model).keys())
            report = {"missing": sorted(expected - saved), "unexpected": sorted(saved - expected)}
    model.eval()
    with torch.no_grad():
        if args.mode == "generate":
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=args.max_new_tokens, do_sample=False)
            report["new_ids"] = out[0, ids.shape[1]:].tolist()
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            save_file({"logits": logits.contiguous()}, args.out)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
