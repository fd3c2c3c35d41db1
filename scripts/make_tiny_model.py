#!/usr/bin/env python3
"""Writes a tiny random Hugging Face model directory (config.json + model.safetensors) with
transformers, shaped like EXAONE-4.0-1.2B or polyglot-ko-1.3b but small, for demos and smoke tests.

With --tokenizer-corpus CSV it also trains a small byte-level BPE tokenizer (HF `tokenizers`) on the
CSV's text, saves it beside the weights and sizes the vocabulary to it: a complete model directory
for the demo, made without downloads.

Usage: .venv/bin/python scripts/make_tiny_model.py --model-type exaone4 --out build/demo/tiny-exaone4
       [--tokenizer-corpus tests/fixtures/demo_ko_qa.csv]
"""
import csv
import sys
import argparse
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForPreTraining, ElectraConfig, Exaone4Config, GPTNeoXConfig

CONFIGS = {
    # EXAONE-4.0-1.2B's scheme: GQA 4:1, llama3 rope, tied embeddings, every layer global.
    "exaone4": lambda: Exaone4Config(
        vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, tie_word_embeddings=True, sliding_window=None, layer_types=["full_attention"] * 4,
        rope_parameters={"rope_type": "llama3", "rope_theta": 1e6, "factor": 16.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        bos_token_id=1, eos_token_id=361 % 512, pad_token_id=0),
    # polyglot-ko-1.3b's scheme: half-rotary heads, parallel residual, untied embed_out.
    "gpt_neox": lambda: GPTNeoXConfig(
        vocab_size=512, hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
        rotary_pct=0.5, rotary_emb_base=10000, use_parallel_residual=True, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=0),
    # KoELECTRA-base's scheme (embedding_size = hidden_size, no projection), small: a discriminator
    # checkpoint (ElectraForPreTraining), the encoder a classifier starts from.
    "electra": lambda: ElectraConfig(
        vocab_size=512, embedding_size=128, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=128, pad_token_id=0),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-type", choices=sorted(CONFIGS), default="exaone4")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenizer-corpus", type=Path, help="CSV whose text trains a tokenizer saved with the model")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    config = CONFIGS[args.model_type]()
    tokenizer = None
    if args.tokenizer_corpus:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from tokenizer_oracle import train_byte_level
        from transformers import PreTrainedTokenizerFast
        with open(args.tokenizer_corpus, newline="", encoding="utf-8") as f:
            texts = [value for row in csv.reader(f) for value in row]
        if args.model_type == "electra":  # KoELECTRA's tokenizer: cased WordPiece, [CLS] ... [SEP]
            from tokenizer_oracle import train_wordpiece
            from transformers import BertTokenizerFast
            tokenizer = BertTokenizerFast(tokenizer_object=train_wordpiece(texts, lowercase=False, strip_accents=False,
                                                                           vocab_size=800), do_lower_case=False)
            config.pad_token_id = tokenizer.pad_token_id
        else:
            tokenizer = PreTrainedTokenizerFast(tokenizer_object=train_byte_level(texts, vocab_size=600),
                                                eos_token="</s>", bos_token="<s>", pad_token="<|pad|>")
            config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
            config.bos_token_id = tokenizer.bos_token_id
        config.vocab_size = len(tokenizer)
    model = (AutoModelForPreTraining if args.model_type == "electra" else AutoModelForCausalLM).from_config(config)
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    print(f"wrote a tiny random {args.model_type} model ({model.num_parameters():,} parameters) to {args.out}")


if __name__ == "__main__":
    main()
