#!/usr/bin/env python3
"""bitsandbytes + transformers + PEFT on the CPU as the oracle for lorakit's QLoRA (tests/test_qlora.cpp).

1. tensors.safetensors: inputs of several shapes and dtypes (remainder blocks, an odd count, more
   than one nested block) and, per quant type and double quantization, what
   bitsandbytes.functional.quantize_4bit returns (packed codes, absmax, nested statistics, offset)
   and what dequantize_4bit gives back; plus create_dynamic_map().
2. Per tiny model (llama, EXAONE 4.0, GPT-NeoX; NF4 with double quantization, and llama in FP4
   without it): the float32 base, the model transformers loads with BitsAndBytesConfig (compute
   float32) saved with save_pretrained (a prequantized directory), the 4-bit model's logits for a
   right-padded batch, every 4-bit Linear dequantized, and PEFT's QLoRA on it (lora_B random):
   logits, loss, the gradient of every LoRA parameter, and the adapter.

Usage: qlora_oracle.py --out build/qlora
"""
import argparse
import os
import json
import shutil
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # bitsandbytes compiles its dequantize otherwise (minutes, same values)
import torch
import transformers
import bitsandbytes as bnb
import bitsandbytes.functional as F
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Exaone4Config, GPTNeoXConfig, LlamaConfig

SHAPES = {"square": ((64, 64), torch.float32), "remainder": ((37, 50), torch.float32), "odd": ((33, 31), torch.float32),
          "nested_blocks": ((512, 1024), torch.float32), "bf16": ((96, 64), torch.bfloat16),
          "fp16": ((48, 64), torch.float16), "outliers": ((64, 128), torch.float32)}


def tensor_cases(out):
    tensors = {"dynamic_map": F.create_dynamic_map(signed=True)}
    gen = torch.Generator().manual_seed(7)
    for name, (shape, dtype) in SHAPES.items():
        a = torch.randn(shape, generator=gen) * 0.05
        if name == "outliers":
            a[0, :64] = 0.0              # an all-zero block
            a[3, 5] = 4.0                # one large value
            a[9] = torch.linspace(-1, 1, 128)
        a = a.to(dtype)
        tensors[f"{name}.input"] = a
        for quant_type in ("nf4", "fp4"):
            for nested in (False, True):
                key = f"{name}.{quant_type}.{'double' if nested else 'single'}"
                packed, state = F.quantize_4bit(a, blocksize=64, quant_type=quant_type, compress_statistics=nested)
                tensors[f"{key}.packed"] = packed
                tensors[f"{key}.absmax"] = state.absmax
                tensors[f"{key}.quant_map"] = state.code
                if nested:
                    tensors[f"{key}.nested_absmax"] = state.state2.absmax
                    tensors[f"{key}.nested_quant_map"] = state.state2.code
                    tensors[f"{key}.offset"] = state.offset.reshape(1)
                tensors[f"{key}.dequantized"] = F.dequantize_4bit(packed, state)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "tensors.safetensors"))
    return list(SHAPES)


SMALL = dict(vocab_size=211, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             bos_token_id=1, eos_token_id=2, pad_token_id=0)


def llama():
    return LlamaConfig(**SMALL, num_key_value_heads=2, tie_word_embeddings=False, attention_bias=True)


def exaone4():
    return Exaone4Config(**SMALL, num_key_value_heads=2, tie_word_embeddings=True, sliding_window=None,
                         layer_types=["full_attention"] * 2,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def gpt_neox():
    return GPTNeoXConfig(vocab_size=203, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, rotary_pct=0.5, use_parallel_residual=True, tie_word_embeddings=False,
                         bos_token_id=0, eos_token_id=0)


MODELS = {
    "llama-nf4": (llama, "nf4", True, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "llama-fp4-single": (llama, "fp4", False, ["q_proj", "v_proj"]),
    "exaone4-nf4": (exaone4, "nf4", True, ["q_proj", "k_proj", "v_proj", "o_proj"]),
    "gpt_neox-nf4": (gpt_neox, "nf4", True, ["query_key_value", "dense"]),
}


def bnb_config(quant_type, nested):
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_use_double_quant=nested,
                              bnb_4bit_compute_dtype=torch.float32)


def model_case(out, name, make, quant_type, nested, targets, seed):
    case = out / name
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_config(make())
    with torch.no_grad():
        for p in base.parameters():
            p.normal_(0, 0.08)  # larger than the init's 0.02 so 4-bit rounding moves the logits
    base.save_pretrained(case / "base")
    model = AutoModelForCausalLM.from_pretrained(case / "base", quantization_config=bnb_config(quant_type, nested),
                                                 device_map="cpu", dtype=torch.float32, attn_implementation="eager")
    model.save_pretrained(case / "q4")
    # On CPUs with AVX512-BF16, Linear4bit's inference path repacks the weight and multiplies in bf16
    # whatever the compute dtype; the oracle wants bitsandbytes' float32 product (its training path).
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (2, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    dequantized = {}
    for module_name, module in model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            dequantized[module_name + ".weight"] = F.dequantize_4bit(module.weight.data, module.weight.quant_state)
    model.eval()
    with torch.no_grad():
        logits_4bit = model(input_ids=ids, attention_mask=mask).logits

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1, generator=gen)
    peft_model.save_pretrained(case / "adapter")
    peft_model.train()
    outputs = peft_model(input_ids=ids, attention_mask=mask, labels=labels)
    outputs.loss.backward()
    grads = {n.replace(".default", ""): p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
    peft_model.eval()
    with torch.no_grad():
        logits_lora = peft_model(input_ids=ids, attention_mask=mask).logits
    tensors = {"input_ids": ids, "attention_mask": mask, "labels": labels, "logits_4bit": logits_4bit,
               "logits_lora": logits_lora, "loss": outputs.loss.detach().reshape(1)}
    tensors.update({"dequantized." + k: v for k, v in dequantized.items()})
    tensors.update({"grad." + k: v for k, v in grads.items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(case / "expected.safetensors"))
    return {"name": name, "quant_type": quant_type, "double_quant": nested, "targets": targets,
            "quantized_modules": sorted(k[: -len(".weight")] for k in dequantized)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)  # absmax.mean() summed in one order
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shapes = tensor_cases(out)
    cases = [model_case(out, name, *spec, seed=i + 1) for i, (name, spec) in enumerate(MODELS.items())]
    manifest = {"bitsandbytes": bnb.__version__, "transformers": transformers.__version__, "shapes": shapes,
                "cases": cases}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"qlora oracle: {len(shapes)} tensors x 4 quantizations, {len(cases)} models in {out}")


if __name__ == "__main__":
    main()
