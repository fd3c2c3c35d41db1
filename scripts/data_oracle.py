#!/usr/bin/env python3
"""Expected examples and eval losses for lorakit's data tests (tests/test_data.cpp).

1. A tiny random EXAONE 4.0 model with a tokenizer trained here and a chat template written for
   this project in EXAONE 4.0's format, plus project-written CSV and JSONL files. For the three
   data formats it records what transformers computes: the ids and labels of every row and the
   token-weighted mean cross-entropy (`lorakit eval` must agree to 1e-5 in fp32).
     text:            ids = tok(text); loss = model(ids, labels=ids).loss, weighted by len(ids) - 1
     prompt/response: ids = tok(prompt) + tok(response, add_special_tokens=False) + [eos];
                      labels -100 on the prompt
     messages:        apply_chat_template text; each segment tokenized without special tokens;
                      labels only on assistant content and its [|endofturn|]
2. When ../shared exists: ids and labels of the first rows of the Oh-LoRA CSV (polyglot-ko
   tokenizer, prompt template) and SKN13 JSONL (EXAONE tokenizer and chat template).

Usage: data_oracle.py --out build/data [--shared ../shared]
"""
import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, Exaone4Config, PreTrainedTokenizerFast  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from tokenizer_oracle import generated_text  # noqa: E402

# EXAONE 4.0's chat format (system/user/assistant turns, the empty think block), written for lorakit.
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}"
    "{{- '[|assistant|]\\n<think>\\n\\n</think>\\n\\n' + m.content + '[|endofturn|]\\n' -}}"
    "{%- else -%}"
    "{{- '[|' + m.role + '|]\\n' + m.content + '[|endofturn|]\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '[|assistant|]\\n<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}")

PROMPT = "### 질문: {input}\n### 답변: "

ROWS = [  # project-written rows: commas, quotes, newlines, emoji, an empty response, a filtered row
    {"data_type": "train", "input": "너는 누구야?", "output": "난 오로라야! 가상 인간이지 😊"},
    {"data_type": "train", "input": "오늘 날씨, 어때?", "output": "맑아요. \"산책\" 가기 좋은 날!"},
    {"data_type": "valid", "input": "여러 줄\n질문", "output": "첫 줄\n둘째 줄\n셋째 줄"},
    {"data_type": "train", "input": "LoRA rank 16과 32 차이는?", "output": "rank가 클수록 학습 파라미터가 늘어납니다."},
    {"data_type": "train", "input": "빈 답", "output": ""},
    {"data_type": "train", "input": "숫자 1,234,567", "output": "백이십삼만 사천오백육십칠"},
]

CONVERSATIONS = [
    [{"role": "system", "content": "친절하게 답하세요."}, {"role": "user", "content": "안녕?"},
     {"role": "assistant", "content": "안녕하세요! 무엇을 도와드릴까요?"}],
    [{"role": "user", "content": "1+1은?"}, {"role": "assistant", "content": "2입니다."},
     {"role": "user", "content": "2+2는?"}, {"role": "assistant", "content": "4입니다."}],
    [{"role": "user", "content": "여러 줄\n답해줘"}, {"role": "assistant", "content": "한 줄\n두 줄 😊"}],
]


def chat_segments(messages):
    """(text, trained) pieces of the EXAONE rendering, as lorakit's renderer marks them."""
    out = []
    for m in messages:
        if m["role"] == "assistant":
            out += [("[|assistant|]\n<think>\n\n</think>\n\n", False), (m["content"] + "[|endofturn|]", True),
                    ("\n", False)]
        else:
            out.append((f"[|{m['role']}|]\n{m['content']}[|endofturn|]\n", False))
    return out


def build_tokenizer(out):
    from tokenizer_oracle import train_byte_level
    tok = train_byte_level(generated_text(3000, seed=7) + [r["input"] + " " + r["output"] for r in ROWS], vocab_size=800)
    tok.add_special_tokens([AddedToken(t, normalized=False) for t in
                            ("[|system|]", "[|user|]", "[|assistant|]", "[|endofturn|]")])
    tok.add_tokens([AddedToken(t, normalized=False) for t in ("<think>", "</think>")])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="[|endofturn|]", pad_token="<|pad|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))
    return AutoTokenizer.from_pretrained(str(out))


def build_model(out, vocab_size):
    torch.manual_seed(0)
    config = Exaone4Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True, sliding_window=None, layer_types=["full_attention"] * 2,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float32).eval()
    model.save_pretrained(str(out), safe_serialization=True)
    return model


def loss_of(model, examples):
    """Sum of token cross-entropies over labels != -100 (next-token), and their count."""
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in examples:
            logits = model(torch.tensor([ids])).logits[0, :-1].double()
            target = torch.tensor(labels[1:])
            total += torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum").item()
            count += int((target != -100).sum())
    return total, count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    model_dir = out / "tiny-exaone4"
    tok = build_tokenizer(model_dir)
    model = build_model(model_dir, len(tok))
    eos = tok.eos_token_id

    # The files lorakit reads.
    with open(out / "rows.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["data_type", "input", "output"], lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(ROWS)
    with open(out / "chat.jsonl", "w", encoding="utf-8") as f:
        for messages in CONVERSATIONS:
            f.write(json.dumps({"messages": messages, "id": len(messages)}, ensure_ascii=False) + "\n")

    cases = []
    # text: every row's output column, scored as model(ids, labels=ids)
    text_rows = [r for r in ROWS if r["output"]]
    ex = [(tok(r["output"])["input_ids"],) * 2 for r in text_rows]
    weighted = sum(model(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item() * (len(ids) - 1)
                   for ids, _ in ex if len(ids) > 1)
    tokens = sum(len(ids) - 1 for ids, _ in ex if len(ids) > 1)
    cases.append({"name": "text", "args": ["--text-column", "output"], "loss": weighted / tokens, "tokens": tokens,
                  "examples": sum(1 for ids, _ in ex if len(ids) > 1), "rows": [list(map(list, e)) for e in ex]})
    # prompt/response on train rows
    ex = []
    for r in ROWS:
        if r["data_type"] != "train" or not r["output"]:
            continue
        p = tok(PROMPT.format(input=r["input"]))["input_ids"]
        resp = tok(r["output"], add_special_tokens=False)["input_ids"] + [eos]
        ex.append((p + resp, [-100] * len(p) + resp))
    total, count = loss_of(model, ex)
    cases.append({"name": "prompt_response",
                  "args": ["--prompt-template", PROMPT, "--response-column", "output", "--filter", "data_type=train"],
                  "loss": total / count, "tokens": count, "examples": len(ex), "rows": [list(map(list, e)) for e in ex]})
    # messages
    ex = []
    for messages in CONVERSATIONS:
        text = tok.apply_chat_template(messages, tokenize=False)
        segments = chat_segments(messages)
        assert "".join(s for s, _ in segments) == text, "segments do not add up to apply_chat_template's text"
        ids, labels = [], []
        for piece, trained in segments:
            piece_ids = tok(piece, add_special_tokens=False)["input_ids"]
            ids += piece_ids
            labels += piece_ids if trained else [-100] * len(piece_ids)
        assert ids == tok(text, add_special_tokens=False)["input_ids"], "segment tokenization != whole-text tokenization"
        ex.append((ids, labels))
    total, count = loss_of(model, ex)
    cases.append({"name": "messages", "args": ["--messages-column", "messages"], "file": "chat.jsonl",
                  "loss": total / count, "tokens": count, "examples": len(ex), "rows": [list(map(list, e)) for e in ex]})

    real = []
    shared = Path(args.shared)
    polyglot, exaone = shared / "models" / "polyglot-ko-1.3b", shared / "models" / "EXAONE-4.0-1.2B"
    ohlora = shared / "datasets" / "ohlora" / "OhLoRA_fine_tuning.csv"
    if polyglot.exists() and ohlora.exists():
        pk = AutoTokenizer.from_pretrained(str(polyglot))
        prompt = "### 질문: {input_data}\n### 답변: "
        rows = []
        with open(ohlora, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["data_type"] != "train":
                    continue
                p = pk(prompt.format(**row))["input_ids"]
                resp = pk(row["output_data"], add_special_tokens=False)["input_ids"]
                rows.append({"ids": p + resp, "labels": [-100] * len(p) + resp})
                if len(rows) == 5:
                    break
        real.append({"name": "ohlora-polyglot", "model": str(polyglot), "file": str(ohlora), "prompt": prompt,
                     "response_column": "output_data", "filter": ["data_type", "train"], "rows": rows})
    skn = shared / "datasets" / "skn13_exaone" / "train.jsonl"
    if exaone.exists() and skn.exists():
        ek = AutoTokenizer.from_pretrained(str(exaone))
        rows = []
        for line in list(open(skn, encoding="utf-8"))[:5]:
            messages = json.loads(line)["messages"]
            text = ek.apply_chat_template(messages, tokenize=False)
            segments = chat_segments(messages)
            assert "".join(s for s, _ in segments) == text
            ids, labels = [], []
            for piece, trained in segments:
                piece_ids = ek(piece, add_special_tokens=False)["input_ids"]
                ids += piece_ids
                labels += piece_ids if trained else [-100] * len(piece_ids)
            assert ids == ek(text, add_special_tokens=False)["input_ids"]
            rows.append({"ids": ids, "labels": labels})
        real.append({"name": "skn13-exaone", "model": str(exaone), "file": str(skn), "messages_column": "messages",
                     "rows": rows})

    manifest = {"model": str(model_dir), "csv": str(out / "rows.csv"), "jsonl": str(out / "chat.jsonl"),
                "cases": cases, "real": real}
    (out / "expected.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    print(f"data oracle: {len(cases)} eval cases on a tiny EXAONE 4.0, {len(real)} real datasets -> {out}")


if __name__ == "__main__":
    main()
