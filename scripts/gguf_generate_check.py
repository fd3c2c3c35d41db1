#!/usr/bin/env python3
"""llama.cpp itself on lorakit's GGUF: greedy tokens against transformers.generate on the merged model.

  gguf_generate_check.py --gguf MODEL.gguf --merged MERGED_HF_DIR [--tokens 16] [--prompt TEXT]

Needs llama-cpp-python (its llama.cpp runs the GGUF on the CPU) next to transformers. The prompt is
tokenized by transformers' tokenizer of MERGED_HF_DIR and fed to both as ids, so the comparison is
of the models, not of the tokenizers. Both decode greedily for --tokens tokens (EOS ignored). Prints
both sequences and the largest logit difference on the prompt's last position; exits 1 when the
sequences differ.
"""
import argparse
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--merged", required=True)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--prompt", default="안녕하세요, 오늘 날씨는 hello world")
    args = ap.parse_args()

    import llama_cpp  # imported here so that --help works without it

    tokenizer = AutoTokenizer.from_pretrained(args.merged)
    ids = tokenizer(args.prompt, add_special_tokens=True)["input_ids"]

    model = AutoModelForCausalLM.from_pretrained(args.merged, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        expected_logits = model(torch.tensor([ids])).logits[0, -1].numpy()
        # A plain greedy config: generation_config.json's sampling settings (repetition_penalty, ...)
        # are not llama.cpp's argmax.
        greedy = GenerationConfig(max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False, num_beams=1,
                                  pad_token_id=0, eos_token_id=None, repetition_penalty=1.0, temperature=None, top_p=None,
                                  top_k=None)
        out = model.generate(torch.tensor([ids]), generation_config=greedy)
    expected = out[0, len(ids):].tolist()

    # float32 K/V cache (llama.cpp's default is f16), so that the comparison is of the same arithmetic.
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=len(ids) + args.tokens + 8, n_threads=2, logits_all=True,
                          verbose=False, type_k=0, type_v=0)
    llm.eval(ids)
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    actual = []
    for _ in range(args.tokens):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        actual.append(token)
        llm.eval([token])

    diff = float(np.abs(logits[: expected_logits.shape[0]] - expected_logits).max())
    print(f"prompt ids ({len(ids)}): {ids}")
    print(f"transformers greedy: {expected}")
    print(f"llama.cpp greedy:    {actual}")
    print(f"last prompt position: max |logit llama.cpp - transformers| = {diff:.3e}")
    if actual != expected:
        print("MISMATCH: the greedy tokens differ")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
