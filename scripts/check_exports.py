#!/usr/bin/env python3
"""transformers/PEFT reading what lorakit wrote (tests/test_export.cpp).

  peft     --base B --adapter A --inputs F --out O   PeftModel.from_pretrained(base, adapter): reports
           [--quantize nf4|fp4 [--no-double-quant]]  missing/unexpected adapter keys, writes logits; with
                                                     --quantize the base loads through bitsandbytes (compute
                                                     float32) as a QLoRA base
  merged   --model M --inputs F --out O              AutoModelForCausalLM.from_pretrained(merged): reports
                                                     missing/unexpected keys and dtype, writes logits (fp32)
  generate --base B [--adapter A] --inputs F --max-new-tokens N
                                                     greedy model.generate; prints the new token ids

  batch    --jobs J --inputs -                      runs each line of J (one of the above) in this one
                                                     process; prints a JSON list of their reports

F is a safetensors file with `input_ids` (and optionally `attention_mask`). Prints one JSON line.
EXAONE 3 directories (model_type exaone, no transformers class) are read as the renamed Llama of
scripts/exaone3.py, and their adapters renamed to Llama's module names for PeftModel.
"""
import argparse
import json
import shlex
import tempfile
from pathlib import Path

import torch
import transformers
from peft import PeftModel
from peft.utils import get_peft_model_state_dict, load_peft_weights
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

import exaone3


def parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["peft", "merged", "generate", "batch"])
    parser.add_argument("--base")
    parser.add_argument("--adapter")
    parser.add_argument("--model")
    parser.add_argument("--inputs")
    parser.add_argument("--out")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--jobs", help="batch: a file with one command line of the other modes per line")
    parser.add_argument("--quantize", choices=["nf4", "fp4"], help="peft: load the base in 4 bits (bitsandbytes)")
    parser.add_argument("--no-double-quant", action="store_true")
    return parser


def main():
    args = parser().parse_args()
    transformers.logging.set_verbosity_error()
    if args.mode != "batch":
        print(json.dumps(run(args)))
        return
    # One process for many checks: transformers' import costs seconds per process.
    reports = [run(parser().parse_args(shlex.split(line)))
               for line in Path(args.jobs).read_text().splitlines() if line.strip()]
    print(json.dumps(reports))


def four_bit(model_dir, quant_type=None, double_quant=True):
    """from_pretrained's arguments for a 4-bit model: a directory saved in 4 bits, or quant_type set.

    The Linear4bit modules then compute in float32 (their training path): on CPUs with AVX512-BF16
    their inference path would repack the weight and multiply in bf16."""
    saved = "quantization_config" in json.loads((Path(model_dir) / "config.json").read_text())
    if not saved and not quant_type:
        return {}
    kwargs = {"device_map": "cpu"}
    if quant_type:
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=torch.float32)
    return kwargs


def float32_product(model):
    for module in model.modules():
        if type(module).__name__ == "Linear4bit":
            module.support_avx512bf16_for_cpu = False


def run(args):
    inputs = load_file(args.inputs)
    ids = inputs["input_ids"].long()
    mask = inputs.get("attention_mask", torch.ones_like(ids)).long()
    report = {}
    scratch = tempfile.TemporaryDirectory()
    if args.mode == "merged":
        if exaone3.is_exaone(args.model):
            model, missing, unexpected, dtype = exaone3.load_as_llama(args.model)
            model = model.to(getattr(torch, dtype.replace("torch.", "")))
            info = {"missing_keys": missing, "unexpected_keys": unexpected}
        else:
            model, info = AutoModelForCausalLM.from_pretrained(args.model, output_loading_info=True,
                                                               attn_implementation="eager", **four_bit(args.model))
        report = {"missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
                  "dtype": str(model.dtype), "tied": model.get_output_embeddings().weight.data_ptr()
                  == model.get_input_embeddings().weight.data_ptr()}
    else:
        if exaone3.is_exaone(args.base):
            model = exaone3.load_as_llama(args.base)[0]
            if args.adapter:
                exaone3.adapter_to_llama(args.adapter, Path(scratch.name))
                args.adapter = scratch.name
        else:
            model = AutoModelForCausalLM.from_pretrained(args.base, attn_implementation="eager", dtype=torch.float32,
                                                         **four_bit(args.base, args.quantize, not args.no_double_quant))
        if args.adapter:
            model = PeftModel.from_pretrained(model, args.adapter)
            saved = set(load_peft_weights(args.adapter).keys())
            expected = set(get_peft_model_state_dict(model).keys())
            report = {"missing": sorted(expected - saved), "unexpected": sorted(saved - expected)}
    float32_product(model)
    model.eval()
    with torch.no_grad():
        if args.mode == "generate":
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=args.max_new_tokens, do_sample=False)
            report["new_ids"] = out[0, ids.shape[1]:].tolist()
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            save_file({"logits": logits.contiguous()}, args.out)
    return report


if __name__ == "__main__":
    main()
