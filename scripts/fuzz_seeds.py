#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses (fuzz/), written at run time: small valid inputs of each
format, made here with the libraries that define the formats (safetensors, tokenizers,
sentencepiece, transformers' config classes, PEFT's key names) and cut from ../shared's real files
where it is present (their licence is unknown, so nothing of them is committed).

  fuzz_seeds.py --out DIR [--shared ../shared]

DIR/<harness>/ holds each harness's seeds; DIR/tokenizer/ is the tokenizer (with a chat template)
fuzz_records reads through $LORAKIT_FUZZ_TOKENIZER. Idempotent: the same files every run.
"""
import argparse
import io
import json
import struct
from pathlib import Path

SEP = b"\n----\n"
TEXTS = ["안녕하세요, 오늘 날씨는 맑습니다.", "캐스퍼는 엔트리 SUV입니다.", "hello world 123", "naïve café 😀",
         "너는 누구야? 난 오로라야!", "The quick brown fox jumps over the lazy dog."]


def put(out: Path, name: str, data: bytes):
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(data)


def safetensors_seeds(out: Path):
    import torch
    from safetensors.torch import save

    put(out, "f32", save({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3)}))
    put(out, "mixed", save({"w": torch.ones(4, 2, dtype=torch.bfloat16), "b": torch.zeros(3, dtype=torch.float16),
                            "i": torch.arange(2, dtype=torch.int64)}, metadata={"format": "pt"}))
    put(out, "empty", save({"e": torch.zeros(0, 5)}))
    put(out, "scalar", save({"s": torch.tensor(1.5)}))


def train_bpe(byte_level=True, vocab=300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if byte_level:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<s>", "</s>", "<|endoftext|>"],
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(TEXTS * 20, trainer)
    return tok


def train_wordpiece(vocab=300):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=20))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                        show_progress=False)
    tok.train_from_iterator(TEXTS * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return tok


def tokenizer_seeds(out_json: Path, out_gpt2: Path, tokenizer_dir: Path, shared: Path):
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "add_bos_token": True}
    for name, byte_level in (("bytelevel", True), ("metaspace", False)):
        tok = train_bpe(byte_level)
        put(out_json, name, tok.to_str().encode() + SEP + json.dumps(config).encode())
        put(out_json, name + "-alone", tok.to_str().encode())
        if byte_level:
            model = json.loads(tok.to_str())["model"]
            merges = "\n".join(" ".join(m) if isinstance(m, list) else m for m in model["merges"])
            put(out_gpt2, name, json.dumps(model["vocab"], ensure_ascii=False).encode() + SEP +
                ("#version: 0.2\n" + merges).encode() + SEP + json.dumps(config).encode())
            # The records harness's tokenizer, with a chat template lorakit recognises when ../shared has one.
            tokenizer_dir.mkdir(parents=True, exist_ok=True)
            (tokenizer_dir / "tokenizer.json").write_text(tok.to_str())
            template = shared / "models/EXAONE-4.0-1.2B/chat_template.jinja"
            cfg = dict(config)
            if template.exists():
                cfg["chat_template"] = template.read_text()
            (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False))
    # WordPiece: as written (BertNormalizer, BertPreTokenizer, TemplateProcessing, the WordPiece decoder)
    # and under tokenizer_class BertTokenizer, which transformers rebuilds from the config.
    wordpiece = train_wordpiece()
    put(out_json, "wordpiece-alone", wordpiece.to_str().encode())
    put(out_json, "wordpiece-bert", wordpiece.to_str().encode() + SEP + json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "strip_accents": True,
         "tokenize_chinese_chars": False, "cls_token": "[CLS]", "mask_token": "[MASK]"}).encode())
    real = shared / "models/polyglot-ko-1.3b/tokenizer.json"
    if real.exists():  # a real one, cut to its first added tokens and a slice of its vocabulary
        data = json.loads(real.read_text())
        data["model"]["vocab"] = dict(list(data["model"]["vocab"].items())[:400])
        data["model"]["merges"] = data["model"]["merges"][:50]
        put(out_json, "polyglot-cut", json.dumps(data, ensure_ascii=False).encode())


def sentencepiece_seeds(out: Path):
    import sentencepiece as spm

    for kind in ("bpe", "unigram"):
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS * 30), model_writer=model,
                                       vocab_size=400 if kind == "bpe" else 120, hard_vocab_limit=False,
                                       model_type=kind, byte_fallback=kind == "bpe", minloglevel=2)
        put(out, kind, model.getvalue())


def records_seeds(out: Path, shared: Path):
    rows = [("안녕", "너는 누구야?", "난 오로라야!"), ("a,b", "x\ny", "\"quoted\""), ("", "q", "")]
    csv = "text,input,output\n" + "".join('"{}","{}","{}"\n'.format(*(c.replace('"', '""') for c in r)) for r in rows)
    put(out, "csv", b"\x00" + csv.encode())
    put(out, "tsv", b"\x01" + "input\toutput\n질문\t답변\nhello\tworld\n".encode())
    messages = [{"messages": [{"role": "user", "content": "캐스퍼는?"}, {"role": "assistant", "content": "SUV입니다."}]},
                {"messages": [{"role": "system", "content": "친절하게"}, {"role": "user", "content": "hi"},
                              {"role": "assistant", "content": "hello"}]}]
    put(out, "chat", b"\x02" + "\n".join(json.dumps(m, ensure_ascii=False) for m in messages).encode() + b"\n")
    put(out, "text", b"\x03" + "\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in TEXTS).encode())
    put(out, "ids", b"\x04" + b'{"input_ids": [1, 2, 3]}\n{"input_ids": []}\n')
    ohlora = shared / "datasets/ohlora/OhLoRA_fine_tuning.csv"
    if ohlora.exists():
        lines = ohlora.read_text(encoding="utf-8").splitlines()[1:6]
        put(out, "ohlora", b"\x01" + (",data_type,input,output,output_message,memory\n" + "\n".join(lines)).encode())
    skn = shared / "datasets/skn13_exaone/train.jsonl"
    if skn.exists():
        put(out, "skn13", b"\x02" + "\n".join(skn.read_text(encoding="utf-8").splitlines()[:2]).encode())


def recipe_seeds(out: Path, root: Path):
    for recipe in sorted((root / "recipes").glob("*.yaml")):
        put(out, recipe.stem, recipe.read_bytes() + SEP + b"lora.r=8\ndata.max_seq_len=128\n")


def config_seeds(out: Path, shared: Path):
    from transformers import (Exaone4Config, Gemma2Config, GemmaConfig, GPT2Config, GPTNeoXConfig, LlamaConfig,
                              MistralConfig, Qwen2Config, Qwen3Config, RwkvConfig)

    small = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    for cls in (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, Exaone4Config, GemmaConfig, Gemma2Config,
                GPTNeoXConfig):
        put(out, cls.model_type, cls(**small).to_json_string().encode())
    put(out, "gpt2", GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2).to_json_string().encode())
    put(out, "rwkv", RwkvConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2).to_json_string().encode())
    # Encoders and a classifier config (id2label: its labels), as fuzz_config builds them.
    from transformers import BertConfig, ElectraConfig
    labels = dict(id2label={0: "approve", 1: "reject", 2: "review"}, label2id={"approve": 0, "reject": 1, "review": 2})
    put(out, "bert", BertConfig(**small, **labels).to_json_string().encode())
    put(out, "electra", ElectraConfig(embedding_size=8, **small).to_json_string().encode())
    put(out, "llama-seqcls", LlamaConfig(**small, architectures=["LlamaForSequenceClassification"], **labels)
        .to_json_string().encode())
    for config in sorted((shared / "models").glob("*/config.json")) if (shared / "models").exists() else []:
        put(out, "shared-" + config.parent.name, config.read_bytes())


def adapter_seeds(out: Path):
    import torch
    from safetensors.torch import save

    config = json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj", "v_proj"],
                         "task_type": "CAUSAL_LM"}).encode()
    tensors = {}
    for layer in range(2):
        for module, out_features in (("q_proj", 16), ("v_proj", 8)):
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[key + ".lora_A.weight"] = torch.ones(2, 16)
            tensors[key + ".lora_B.weight"] = torch.zeros(out_features, 2)
    put(out, "llama", struct.pack("<I", len(config)) + config + save(tensors))


def shards_seeds(out: Path):
    """A tiny llama (fuzz_shards' config) split over two shards, with its index; and every tensor in one."""
    import torch
    from safetensors.torch import save
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    state = {k: v.contiguous() for k, v in LlamaForCausalLM(config).state_dict().items()}
    names = sorted(state)
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    for name, split in (("two", len(names) // 2), ("one", len(names))):
        parts = [names[:split], names[split:]]
        weight_map = {n: shards[i] for i, part in enumerate(parts) for n in part}
        index = json.dumps({"metadata": {"total_size": sum(v.numel() * 4 for v in state.values())},
                            "weight_map": weight_map}, indent=2).encode()
        put(out, name, SEP.join([index] + [save({n: state[n] for n in part}) for part in parts]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    if not args.shared.exists():
        print(f"fuzz_seeds: {args.shared} is absent; seeds without the real files")
    safetensors_seeds(args.out / "fuzz_safetensors")
    tokenizer_seeds(args.out / "fuzz_tokenizer_json", args.out / "fuzz_gpt2_vocab", args.out / "tokenizer", args.shared)
    sentencepiece_seeds(args.out / "fuzz_sentencepiece")
    records_seeds(args.out / "fuzz_records", args.shared)
    recipe_seeds(args.out / "fuzz_recipe", root)
    config_seeds(args.out / "fuzz_config", args.shared)
    adapter_seeds(args.out / "fuzz_adapter")
    shards_seeds(args.out / "fuzz_shards")
    print(f"fuzz_seeds: wrote {sum(1 for p in args.out.rglob('*') if p.is_file())} files under {args.out}")


if __name__ == "__main__":
    main()
