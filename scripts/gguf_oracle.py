#!/usr/bin/env python3
"""The oracle for `lorakit export gguf` / `export gguf-lora`: tiny random HF models, their tokenizers, PEFT LoRA
adapters on them, and the PEFT-merged models, for llama.cpp's convert_hf_to_gguf.py / convert_lora_to_gguf.py
to convert (scripts/check_gguf.py runs them and compares their files with lorakit's).

For every case it writes
  DIR/<case>/base     config.json, model.safetensors (fp32), generation_config.json (most cases), the tokenizer
  DIR/<case>/adapter  PEFT LoRA (r=4, alpha=8, q/k/v/o + one MLP projection, lora_B random and nonzero),
                      saved with PEFT's save_pretrained (adapter_config.json, adapter_model.safetensors, README.md)
  DIR/<case>/merged   base + adapter merged by PEFT (merge_and_unload), saved like base, with the base's tokenizer
                      and generation_config files copied: the reference for lorakit's merged model
and DIR/manifest.json: {"cases": [{"name", "model_type", "architecture", "tokenizer_pre", "outtypes"}]}.
tokenizer_pre is what check_gguf.py --tokenizer-pre must be given: null where the converter knows the tokenizer's
pre-tokenizer hash (the real EXAONE 4.0 tokenizer), otherwise the name the converter would use for the family
(the tiny trained tokenizers and polyglot-ko's tokenizer.json have hashes it does not know).

Tokenizers: byte-level BPE trained here with `tokenizers` on a few Korean/English sentences (tokenizer.json +
tokenizer_config.json, chat templates, bos/eos/pad, special and non-special added tokens, some appended after the
trained vocabulary, some at its start); gemma/gemma2 a SentencePiece tokenizer.model trained with sentencepiece
(gemma2 also a tokenizer.json made from it by transformers); exaone4 the real EXAONE 4.0 tokenizer files and
gpt_neox the real polyglot-ko-1.3b tokenizer.json, both from --shared (those cases are skipped, with a message,
where it is missing). EXAONE 3.5 (model_type exaone) is transformers' Llama saved under EXAONE's names
(scripts/exaone3.py).

Usage: .venv/bin/python scripts/gguf_oracle.py --out build/gguf_oracle [--shared /work/shared]
"""
import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import (AutoModelForCausalLM, Exaone4Config, GemmaConfig, Gemma2Config, GenerationConfig,  # noqa: E402
                          GPT2Config, GPTNeoXConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config)
from transformers.utils import logging as hf_logging  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exaone3  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
warnings.filterwarnings("ignore")

SENTENCES = [
    "안녕하세요, 만나서 반갑습니다. 오늘 날씨가 정말 좋네요!",
    "저는 서울에서 일하는 개발자입니다. LoRA 어댑터를 학습하고 있어요.",
    "The quick brown fox jumps over the lazy dog 3 times in 2024.",
    "Hello world! Low-rank adaptation merges small matrices into big ones.",
    "한국어와 English가 섞인 문장도 tokenizer가 잘 처리해야 합니다.",
    "모델을 GGUF 파일로 내보내면 llama.cpp에서 실행할 수 있습니다.",
    "I'm sure we'll export q8_0, f16 and bf16 files; won't we?",
    "    indented code: def f(x):\n        return x * 2\n",
    "숫자 123, 4567 그리고 89.5%를 포함합니다. 감사합니다.",
    "Emoji 🚀 and tabs\tand newlines\n\nare fine too.",
]

LLAMA3_CHAT = ("{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>"
               "\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
               "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
MISTRAL_CHAT = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
                "{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}")
GEMMA_CHAT = ("{{ bos_token }}{% for message in messages %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
              "{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
EXAONE_CHAT = ("{% for message in messages %}{% if message['role'] == 'system' %}{{ '[|system|]' + message['content'] + '[|endofturn|]\n' }}"
               "{% elif message['role'] == 'user' %}{{ '[|user|]' + message['content'] + '\n' }}{% else %}{{ '[|assistant|]' + "
               "message['content'] + '[|endofturn|]\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}")

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
SAMPLING = dict(do_sample=True, temperature=0.6, top_p=0.9, top_k=40, repetition_penalty=1.1)


# ----------------------------------------------------------------------------------------------------------- tokenizers

def _added_decoder(tok):
    out = {}
    for i, t in sorted(tok.get_added_tokens_decoder().items()):
        out[str(i)] = {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                       "single_word": t.single_word, "special": t.special}
    return out


def bpe_tokenizer(out: Path, *, front=(), back=(), user=(), vocab_size=320, post="bytelevel", bos=None, eos=None,
                  pad=None, unk=None, chat_template=None, chat_file=False, extra=None):
    """Byte-level BPE (GPT-2 style) trained on SENTENCES. front: special tokens trained in at ids 0..; back: special
    tokens appended after the trained vocabulary; user: non-special added tokens (appended). post: "bytelevel"
    (Qwen/GPT-2 style post-processor) or "template" (Llama 3 style: bos + $A). Returns the tokenizer's length."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, min_frequency=1,
                                  special_tokens=[AddedToken(t, special=True, normalized=False) for t in front],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES, trainer)
    if back:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in back])
    if user:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])
    if post == "template":
        bid = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                                           special_tokens=[(bos, bid)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    cfg = {"added_tokens_decoder": _added_decoder(tok), "bos_token": bos, "clean_up_tokenization_spaces": False,
           "eos_token": eos, "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast"}
    if pad is not None:
        cfg["pad_token"] = pad
    if unk is not None:
        cfg["unk_token"] = unk
    cfg.update(extra or {})
    if chat_template is not None:
        if chat_file:
            (out / "chat_template.jinja").write_text(chat_template)
        else:
            cfg["chat_template"] = chat_template
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    return tok.get_vocab_size(with_added_tokens=True)


def spm_tokenizer(out: Path, *, with_json=False):
    """A Gemma-style SentencePiece BPE model (byte fallback, pad/eos/bos/unk = 0/1/2/3, no dummy prefix) plus
    tokenizer_config.json; with_json also writes the tokenizer.json transformers makes from it. Returns its size."""
    import io
    import sentencepiece as spm
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 4), model_writer=buf, vocab_size=420, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
        bos_piece="<bos>", unk_piece="<unk>", user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        control_symbols=["<mask>"], add_dummy_prefix=False, remove_extra_whitespaces=False, split_digits=True,
        hard_vocab_limit=False, num_threads=1, minloglevel=2)
    (out / "tokenizer.model").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    n = sp.get_piece_size()
    added = {}
    for i, special in [(0, True), (1, True), (2, True), (3, True), (4, True), (5, False), (6, True)]:
        added[str(i)] = {"content": sp.id_to_piece(i), "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "special": special}
    cfg = {"add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added, "bos_token": "<bos>",
           "chat_template": GEMMA_CHAT, "clean_up_tokenization_spaces": False, "eos_token": "<eos>",
           "model_max_length": 8192, "pad_token": "<pad>", "sp_model_kwargs": {}, "spaces_between_special_tokens": False,
           "tokenizer_class": "GemmaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False}
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    if with_json:
        from transformers import AutoTokenizer
        tmp = out / "_tok"
        tmp.mkdir(exist_ok=True)
        shutil.copy(out / "tokenizer.model", tmp)
        shutil.copy(out / "tokenizer_config.json", tmp)
        tk = AutoTokenizer.from_pretrained(str(tmp))
        tk.backend_tokenizer.save(str(out / "tokenizer.json")) if hasattr(tk, "backend_tokenizer") else None
        shutil.rmtree(tmp)
    return n


def exaone4_tokenizer(out: Path, shared: Path):
    src = shared / "models" / "EXAONE-4.0-1.2B"
    out.mkdir(parents=True, exist_ok=True)
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"]:
        shutil.copy(src / f, out / f)
    return len(json.loads((src / "vocab.json").read_text()))


def polyglot_tokenizer(out: Path, shared: Path):
    src = shared / "models" / "polyglot-ko-1.3b"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    shutil.copy(src / "tokenizer_config.polyglot-github.json", out / "tokenizer_config.json")
    shutil.copy(src / "special_tokens_map.polyglot-github.json", out / "special_tokens_map.json")
    t = json.loads((src / "tokenizer.json").read_text())
    return max([*t["model"]["vocab"].values(), *(a["id"] for a in t["added_tokens"])]) + 1


# ---------------------------------------------------------------------------------------------------------------- cases

LLAMA_TOK = dict(back=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                 user=["[NOTE]"], post="template", bos="<|begin_of_text|>", eos="<|eot_id|>",
                 chat_template=LLAMA3_CHAT)
QWEN_TOK = dict(back=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], user=["<think>", "</think>"], post="bytelevel",
                bos=None, eos="<|im_end|>", pad="<|endoftext|>", chat_template=CHATML)


def tok_ids(tok_dir: Path):
    t = json.loads((tok_dir / "tokenizer.json").read_text())
    return {a["content"]: a["id"] for a in t["added_tokens"]}


def case_specs():
    """name -> dict(model_type, tokenizer_pre, build(base_dir, shared) -> (config, extra)). Each build writes the
    tokenizer into base_dir and returns the transformers config to instantiate (vocab_size set from the tokenizer)."""
    specs = {}

    def llama(base, shared):
        n = bpe_tokenizer(base, **LLAMA_TOK)
        ids = tok_ids(base)
        cfg = LlamaConfig(vocab_size=n + 29, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                          rope_parameters=dict(LLAMA3_ROPE), tie_word_embeddings=False,
                          bos_token_id=ids["<|begin_of_text|>"], eos_token_id=[ids["<|end_of_text|>"], ids["<|eot_id|>"]])
        return cfg, dict(generation=SAMPLING, targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"])
    specs["llama"] = dict(hub_id="meta-llama/Llama-3.2-1B-Instruct", model_type="llama", tokenizer_pre="llama-bpe", build=llama)

    def llama_tied(base, shared):
        n = bpe_tokenizer(base, **dict(LLAMA_TOK, user=()))
        ids = tok_ids(base)
        cfg = LlamaConfig(vocab_size=n, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=4, max_position_embeddings=128, tie_word_embeddings=True,
                          bos_token_id=ids["<|begin_of_text|>"], eos_token_id=ids["<|eot_id|>"])
        return cfg, dict(generation=None, targets=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"])
    specs["llama_tied"] = dict(hub_id="unsloth/Llama-3.2-1B", model_type="llama", tokenizer_pre="llama-bpe", build=llama_tied)

    def mistral(base, shared):
        n = bpe_tokenizer(base, front=["<unk>", "<s>", "</s>"], user=["[INST]", "[/INST]"], post="template", bos="<s>",
                          eos="</s>", unk="<unk>", chat_template=MISTRAL_CHAT,
                          extra={"add_bos_token": True, "add_eos_token": False})
        cfg = MistralConfig(vocab_size=n, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                            sliding_window=4096, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
        return cfg, dict(generation={}, targets=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"])
    specs["mistral"] = dict(hub_id="mistralai/Mistral-7B-v0.1", model_type="mistral", tokenizer_pre="llama-bpe", build=mistral)

    def qwen2(base, shared):
        n = bpe_tokenizer(base, **QWEN_TOK)
        ids = tok_ids(base)
        # intermediate 80: ffn_down's rows (80) are not a multiple of 32, so q8_0 falls back to F16 for it
        cfg = Qwen2Config(vocab_size=n + 3, hidden_size=64, intermediate_size=80, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                          rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=True,
                          bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
        return cfg, dict(generation=dict(SAMPLING, top_k=20), targets=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"])
    specs["qwen2"] = dict(hub_id="Qwen/Qwen1.5-0.5B-Chat", model_type="qwen2", tokenizer_pre="qwen2", build=qwen2)

    def qwen3(base, shared):
        n = bpe_tokenizer(base, **dict(QWEN_TOK, chat_file=True))  # template in chat_template.jinja
        ids = tok_ids(base)
        cfg = Qwen3Config(vocab_size=n, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=1024,
                          rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=False,
                          bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
        return cfg, dict(generation={}, targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"])
    specs["qwen3"] = dict(hub_id="Qwen/Qwen3-0.6B", model_type="qwen3", tokenizer_pre="qwen2", build=qwen3)

    def gemma(base, shared):
        n = spm_tokenizer(base)
        cfg = GemmaConfig(vocab_size=n + 12, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=1, head_dim=32, max_position_embeddings=512,
                          tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=2)
        return cfg, dict(generation={}, targets=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"])
    specs["gemma"] = dict(hub_id="google/gemma-2b", model_type="gemma", tokenizer_pre=None, build=gemma)

    def gemma2(base, shared):
        n = spm_tokenizer(base, with_json=True)
        cfg = Gemma2Config(vocab_size=n, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                           query_pre_attn_scalar=16, sliding_window=32, attn_logit_softcapping=50.0,
                           final_logit_softcapping=30.0, tie_word_embeddings=True, pad_token_id=0, eos_token_id=1,
                           bos_token_id=2)
        return cfg, dict(generation=dict(SAMPLING), targets=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"])
    specs["gemma2"] = dict(hub_id="google/gemma-2-2b-it", model_type="gemma2", tokenizer_pre=None, build=gemma2)

    def gpt2(base, shared):
        n = bpe_tokenizer(base, front=["<|endoftext|>"], post="bytelevel", bos="<|endoftext|>", eos="<|endoftext|>",
                          unk="<|endoftext|>")
        # n_ctx: the converter reads hparams["n_ctx"] (GPT2Config has no such attribute; the hub's gpt2 config.json has it)
        cfg = GPT2Config(vocab_size=n, n_positions=128, n_ctx=128, n_embd=64, n_layer=2, n_head=4, bos_token_id=0,
                         eos_token_id=0, tie_word_embeddings=True)
        return cfg, dict(generation=None, targets=["c_attn", "attn.c_proj", "c_fc"])
    specs["gpt2"] = dict(hub_id="openai-community/gpt2", model_type="gpt2", tokenizer_pre="gpt-2", build=gpt2)

    def exaone4(base, shared):
        n = exaone4_tokenizer(base, shared)
        cfg = Exaone4Config(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=65536,
                            rms_norm_eps=1e-5, rope_parameters={"rope_type": "llama3", "rope_theta": 1e6, "factor": 16.0,
                                                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                "original_max_position_embeddings": 8192},
                            sliding_window=None, layer_types=["full_attention"] * 2, tie_word_embeddings=True,
                            bos_token_id=1, eos_token_id=361, pad_token_id=0)
        return cfg, dict(generation={}, targets=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"])
    specs["exaone4"] = dict(hub_id="LGAI-EXAONE/EXAONE-4.0-1.2B", model_type="exaone4", tokenizer_pre=None, build=exaone4, shared=True)

    def exaone(base, shared):
        n = bpe_tokenizer(base, front=["[PAD]", "[BOS]", "[EOS]", "[UNK]"],
                          back=["[|system|]", "[|user|]", "[|assistant|]", "[|endofturn|]"], post="bytelevel",
                          bos="[BOS]", eos="[|endofturn|]", pad="[PAD]", unk="[UNK]", chat_template=EXAONE_CHAT,
                          extra={"add_bos_token": False})
        ids = tok_ids(base)
        cfg = LlamaConfig(vocab_size=n, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                          rope_parameters=dict(LLAMA3_ROPE, rope_theta=1e6), tie_word_embeddings=True,
                          bos_token_id=1, eos_token_id=ids["[|endofturn|]"], pad_token_id=0)
        return cfg, dict(generation=dict(SAMPLING), targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"])
    specs["exaone"] = dict(hub_id="LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct", model_type="exaone", tokenizer_pre="exaone", build=exaone)

    def gpt_neox(base, shared):
        polyglot_tokenizer(base, shared)
        cfg = GPTNeoXConfig(vocab_size=30080, hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=2, rotary_pct=0.5, rotary_emb_base=10000, max_position_embeddings=2048,
                            use_parallel_residual=True, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1,
                            layer_norm_eps=1e-5)
        return cfg, dict(generation={}, targets=["query_key_value", "dense", "dense_h_to_4h"])
    specs["gpt_neox"] = dict(hub_id="EleutherAI/polyglot-ko-1.3b", model_type="gpt_neox", tokenizer_pre="gpt-2", build=gpt_neox, shared=True)
    return specs


# -------------------------------------------------------------------------------------------------------------- models

def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norms / biases: visibly away from their init (1 or 0), so +1 etc. show
                p.copy_(p + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def save_model(model, out: Path, model_type: str, generation):
    out.mkdir(parents=True, exist_ok=True)
    if generation:
        gc = GenerationConfig(bos_token_id=model.config.bos_token_id, eos_token_id=model.config.eos_token_id,
                              pad_token_id=model.config.pad_token_id, **generation)
        model.generation_config = gc
    if model_type == "exaone":
        exaone3.save_as_exaone(model, out)
    else:
        model.save_pretrained(str(out), safe_serialization=True)
    if generation is None:
        (out / "generation_config.json").unlink(missing_ok=True)


TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "chat_template.jinja", "added_tokens.json"]


def make_adapter(model, targets, out: Path, model_type: str, seed: int, hub_id: str):
    from peft import LoraConfig, get_peft_model
    # as if trained on the hub model: PEFT puts it in adapter_config.json and README.md's front matter (which
    # convert_lora_to_gguf.py turns into general.base_model.* and general.tags)
    model.name_or_path = hub_id
    model.config._name_or_path = hub_id
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, bias="none",
                     fan_in_fan_out=model_type == "gpt2", task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    pm.save_pretrained(str(out))
    if model_type == "exaone":
        exaone3.adapter_to_exaone(out)
    c = json.loads((out / "adapter_config.json").read_text())
    if isinstance(c.get("target_modules"), list):  # PEFT writes a set: make the file deterministic
        c["target_modules"] = sorted(c["target_modules"])
        (out / "adapter_config.json").write_text(json.dumps(c, indent=2))
    return pm


def build_case(name, spec, root: Path, shared: Path, seed: int):
    case = root / name
    if case.exists():
        shutil.rmtree(case)
    base, adapter, merged = case / "base", case / "adapter", case / "merged"
    base.mkdir(parents=True)
    config, extra = spec["build"](base, shared)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    randomize(model, seed)
    save_model(model, base, spec["model_type"], extra["generation"])
    gen = model.generation_config
    pm = make_adapter(model, extra["targets"], adapter, spec["model_type"], seed, spec["hub_id"])
    merged_model = pm.merge_and_unload()
    merged_model.generation_config = gen
    save_model(merged_model, merged, spec["model_type"],
               None if extra["generation"] is None else (extra["generation"] or {}))
    for f in TOKENIZER_FILES + ["generation_config.json", "config.json"]:
        if (base / f).exists() and (f != "config.json"):
            shutil.copy(base / f, merged / f)
    shutil.copy(base / "config.json", merged / "config.json")  # the same config as the base (merging changes none)
    arch = json.loads((base / "config.json").read_text())["architectures"][0]
    return dict(name=name, model_type=spec["model_type"], architecture=arch, tokenizer_pre=spec["tokenizer_pre"],
                outtypes=["f32", "f16", "bf16", "q8_0"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--cases", nargs="*", help="only these cases")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    args.out.mkdir(parents=True, exist_ok=True)
    specs = case_specs()
    manifest = []
    t0 = time.time()
    for i, (name, spec) in enumerate(specs.items()):
        if args.cases and name not in args.cases:
            continue
        if spec.get("shared") and not (args.shared / "models").is_dir():
            print(f"skip {name}: {args.shared}/models is missing (needs real tokenizer files)")
            continue
        t = time.time()
        manifest.append(build_case(name, spec, args.out, args.shared, seed=1234 + i))
        print(f"{name:11s} {time.time() - t:5.1f}s")
    (args.out / "manifest.json").write_text(json.dumps({"cases": manifest}, indent=2))
    print(f"wrote {len(manifest)} cases to {args.out} in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
