#!/usr/bin/env python3
"""transformers + PEFT (task_type SEQ_CLS) as the oracle for lorakit's sequence classifiers
(tests/test_classifier.cpp), and scikit-learn as the oracle of its classification metrics.

For tiny random llama, EXAONE 4.0, GPT-NeoX, Qwen2, BERT and ELECTRA models: builds the
AutoModelForSequenceClassification (3 labels, dropout off), saves it (base/), wraps it with
peft.get_peft_model(LoraConfig(task_type="SEQ_CLS", ...)), gives lora_B and the head random values,
saves the adapter (adapter/), and records for one right-padded batch the logits, the loss and the
gradient of every trainable parameter (LoRA pairs and the modules_to_save head) under PEFT's saved
names. A causal LM checkpoint of the llama case (lm/) checks loading a base model whose head is new.

Metrics: random label/prediction vectors with sklearn's precision_recall_fscore_support (per label,
macro, micro, weighted), accuracy_score and confusion_matrix (metrics.json).

Usage: classifier_oracle.py --out build/classifier
"""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, BertConfig, ElectraConfig,
                          Exaone4Config, Gemma2Config, GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config)

LABELS = {0: "approve", 1: "reject", 2: "review"}
SHAPE = dict(vocab_size=211, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)
LABEL_KEYS = dict(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
ENCODER = dict(vocab_size=199, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
               max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
               classifier_dropout=0.0, pad_token_id=0)

CASES = {
    # PEFT's default targets where it has them (q_proj/v_proj, query/value, query_key_value).
    "llama-default-r4": (lambda: LlamaConfig(**SHAPE, **LABEL_KEYS), dict(r=4, lora_alpha=8)),
    "exaone4-qkvo-r4": (lambda: Exaone4Config(**SHAPE, sliding_window=None, layer_types=["full_attention"] * 2,
                                              tie_word_embeddings=True, **LABEL_KEYS),
                        dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
    "gpt_neox-default-r2": (lambda: GPTNeoXConfig(vocab_size=203, hidden_size=64, intermediate_size=128,
                                                  num_hidden_layers=2, num_attention_heads=4, rotary_pct=0.5,
                                                  tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
                                                  pad_token_id=1, **LABEL_KEYS),
                            dict(r=2, lora_alpha=4)),
    "qwen2-all-linear-r4": (lambda: Qwen2Config(**SHAPE, tie_word_embeddings=True, **LABEL_KEYS),
                            dict(r=4, lora_alpha=8, target_modules="all-linear")),
    # Gemma-2: scaled embeddings, soft-capped attention, a sliding window (the final softcap is lm_head's only).
    "gemma2-qkvo-r4": (lambda: Gemma2Config(**SHAPE, head_dim=16, query_pre_attn_scalar=16, attn_logit_softcapping=5.0,
                                            final_logit_softcapping=3.0, sliding_window=4, tie_word_embeddings=True,
                                            **LABEL_KEYS),
                       dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
    # GPT-2: PEFT's default c_attn is a Conv1D (fan_in_fan_out); the classifier is `transformer` + `score`.
    "gpt2-default-r4": (lambda: GPT2Config(vocab_size=211, n_positions=64, n_embd=64, n_layer=2, n_head=4,
                                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1,
                                           eos_token_id=2, pad_token_id=0, **LABEL_KEYS),
                        dict(r=4, lora_alpha=8, fan_in_fan_out=True)),
    "bert-default-r4": (lambda: BertConfig(**ENCODER, **LABEL_KEYS), dict(r=4, lora_alpha=8)),
    "electra-small-r4": (lambda: ElectraConfig(embedding_size=32, **ENCODER, **LABEL_KEYS), dict(r=4, lora_alpha=8)),
    "electra-base-shape-r2": (lambda: ElectraConfig(embedding_size=64, **ENCODER, **LABEL_KEYS), dict(r=2, lora_alpha=2)),
}


def peft_name(name):
    """PEFT's in-memory name -> its saved key (the adapter name and the wrapper's copy removed)."""
    return name.replace(".modules_to_save.default", "").replace(".default", "")


def make_case(out, name, make_config, lora_kwargs, seed):
    torch.manual_seed(seed)
    config = make_config()
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager").to(torch.float32).eval()
    model.save_pretrained(str(out / name / "base"), safe_serialization=True)
    if name.startswith("llama"):  # a causal LM checkpoint of the same backbone: the head is new there
        lm = AutoModelForCausalLM.from_config(LlamaConfig(**SHAPE), attn_implementation="eager").to(torch.float32)
        lm.model.load_state_dict(model.model.state_dict())
        lm.save_pretrained(str(out / name / "lm"), safe_serialization=True)
    peft_model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", lora_dropout=0.0, **lora_kwargs))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for pname, p in peft_model.named_parameters():
            if "lora_B" in pname or ("modules_to_save" in pname and p.requires_grad):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    peft_model.save_pretrained(str(out / name / "adapter"))
    trainable, total = peft_model.get_nb_trainable_parameters()

    # Right padding with the config's pad id; the rows end on real tokens that are never the pad id.
    pad = config.pad_token_id
    lengths = [9, 5, 7]
    input_ids = torch.randint(3, config.vocab_size, (len(lengths), max(lengths)), generator=generator)
    attention_mask = torch.zeros_like(input_ids)
    for row, n in enumerate(lengths):
        attention_mask[row, :n] = 1
    input_ids[attention_mask == 0] = pad
    labels = torch.tensor([2, 0, 1])
    peft_model.eval()  # dropout off; gradients still flow
    result = peft_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    result.loss.backward()
    tensors = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
               "logits": result.logits.detach().contiguous(), "loss": result.loss.detach().reshape(1)}
    grads = []
    for pname, p in peft_model.named_parameters():
        if p.requires_grad:
            grads.append(peft_name(pname))
            tensors["grad/" + peft_name(pname)] = p.grad.detach().contiguous()
    save_file(tensors, str(out / name / "reference.safetensors"))
    adapter_config = json.loads((out / name / "adapter" / "adapter_config.json").read_text())
    return {"name": name, "model_type": config.model_type, "trainable": trainable, "all": total,
            "num_labels": len(LABELS), "grads": grads, "lora": lora_kwargs,
            "modules_to_save": adapter_config.get("modules_to_save")}


# klue/bert-base's config.json as published on the hub (not in ../shared/models): BERT-base with KLUE's
# 32,000-entry WordPiece vocabulary.
KLUE_BERT_BASE = {"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
                  "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
                  "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
                  "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
                  "position_embedding_type": "absolute", "type_vocab_size": 2, "vocab_size": 32000}


def parameter_counts(out, shared):
    """transformers' parameter counts (meta device) of real encoder configs: AutoModel (the backbone)
    and AutoModelForSequenceClassification (num_labels from the config, else 2)."""
    dirs = {"klue-bert-base": out / "configs" / "klue-bert-base"}
    dirs["klue-bert-base"].mkdir(parents=True)
    (dirs["klue-bert-base"] / "config.json").write_text(json.dumps(KLUE_BERT_BASE, indent=1))
    koelectra = shared / "models" / "koelectra-base-v3-discriminator"
    if (koelectra / "config.json").exists():
        dirs["koelectra-base-v3-discriminator"] = koelectra
    counts = []
    for name, directory in dirs.items():
        config = transformers.AutoConfig.from_pretrained(str(directory))
        with torch.device("meta"):
            backbone = transformers.AutoModel.from_config(config).num_parameters()
            classifier = AutoModelForSequenceClassification.from_config(config).num_parameters()
        counts.append({"name": name, "dir": str(directory), "backbone": backbone, "classifier": classifier,
                       "num_labels": config.num_labels})
    return counts


def metric_cases(seed=7):
    """Label/prediction vectors and sklearn's numbers for them, labels 0..K-1 (some never predicted)."""
    try:
        from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
    except ImportError:  # the GPU machine's python3 may lack it; the metrics test then fails for want of cases
        print("classifier oracle: scikit-learn missing, no metric cases")
        return []
    rng = np.random.default_rng(seed)
    cases = []
    for k, n in [(2, 40), (3, 25), (5, 60), (4, 9)]:
        y_true = rng.integers(0, k, n)
        y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
        if k == 4:
            y_pred[y_pred == 3] = 0  # label 3 never predicted: precision 0/0 -> 0, as zero_division=0
        labels = list(range(k))
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        averages = {}
        for average in ("macro", "micro", "weighted"):
            ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average,
                                                            zero_division=0)
            averages[average] = [float(ap), float(ar), float(af)]
        cases.append({"num_labels": k, "y_true": y_true.tolist(), "y_pred": y_pred.tolist(),
                      "accuracy": float(accuracy_score(y_true, y_pred)), "precision": p.tolist(), "recall": r.tolist(),
                      "f1": f.tolist(), "support": s.tolist(), "averages": averages,
                      "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parent.parent.parent / "shared"))
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cases = [make_case(out, name, make, kwargs, seed) for seed, (name, (make, kwargs)) in enumerate(CASES.items())]
    (out / "manifest.json").write_text(json.dumps({"cases": cases, "metrics": metric_cases(),
                                                       "counts": parameter_counts(out, Path(args.shared))}, indent=1))
    print(f"classifier oracle: {len(cases)} SEQ_CLS cases -> {out}")


if __name__ == "__main__":
    main()
