"""apply_chat_template as the oracle for lorakit's chat templates (tests/test_tokenizers.cpp).

For each template family lorakit renders (Llama 3 as Bllossom/Meta-Llama-3 ship it, Llama 3.1/3.2,
Qwen1.5's ChatML, Qwen3 with thinking and tools, EXAONE 3.5), writes a tokenizer directory with the
family's special tokens and its real chat template (from ../shared/models; EXAONE 3.5's is the one
LG publishes), then renders generated conversations (system or not, 1-4 turns, padded whitespace,
generation prompts, thinking on/off/unset, reasoning, tool calls and tool results) with transformers
and records the text and the ids. Called by scripts/tokenizer_oracle.py.
"""
import json
import random
from pathlib import Path

from tokenizers import AddedToken, Tokenizer
from transformers import PreTrainedTokenizerFast

# EXAONE-3.5-*-Instruct's tokenizer_config.json chat_template (LG's model cards and READMEs).
EXAONE3_TEMPLATE = ("{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
                    "{{ '[|system|][|endofturn|]\\n' }}{% endif %}{{ '[|' + message['role'] + '|]' + message['content'] }}"
                    "{% if message['role'] == 'user' %}{{ '\\n' }}{% else %}{{ '[|endofturn|]\\n' }}{% endif %}{% endfor %}"
                    "{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}")

# Qwen2-*-Instruct's (Ko-Qwen2-7B's base) chat_template, as Qwen publishes it.
QWEN2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                  "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
                  "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# gemma-2-*-it's (and gemma-1.1-*-it's) tokenizer_config.json chat_template, as Google publishes it.
GEMMA_TEMPLATE = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                  "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
                  "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
                  "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
                  "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}")

SENTENCES = ["LoRA가 뭐야?", "rank는 16, 32, 64 중에 무엇이 좋아?", "서울 날씨 알려줘.", "오늘 회의는 몇 시에 시작하나요?",
             "What is a low-rank adapter?", "  앞뒤 공백이 있는 문장  ", "줄바꿈이\n있는 답변입니다.\n", "1+1은?",
             "메시지 템플릿 승인 기준을 설명해 주세요.", "알림톡 문구를 더 친절하게 바꿔 줘.", "Yes.", "감사합니다!",
             "\n\n빈 줄로 시작하는 내용", "코드: `print('안녕')`", "이모지도 괜찮아요 😀", "숫자 12345와 영어 ABC 섞기"]
SYSTEMS = ["당신은 친절한 AI 비서입니다.", "You are a helpful assistant.", "  공백 있는 시스템 프롬프트 \n"]
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "날씨 조회", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def conversations(rng, count, family):
    cases = []
    for i in range(count):
        messages = []
        if rng.random() < 0.5 and family != "gemma":  # Gemma's template refuses a system turn
            messages.append({"role": "system", "content": rng.choice(SYSTEMS)})
        turns = rng.randint(1, 4)
        for t in range(turns):
            messages.append({"role": "user", "content": rng.choice(SENTENCES)})
            if t + 1 < turns or rng.random() < 0.6:
                answer = {"role": "assistant", "content": rng.choice(SENTENCES)}
                if family == "qwen3" and rng.random() < 0.3:
                    answer["reasoning_content"] = rng.choice(["\n생각해 보자.\n", "짧은 추론", ""])
                elif family == "qwen3" and rng.random() < 0.3:
                    answer["content"] = "<think>\n" + rng.choice(SENTENCES) + "\n</think>\n\n" + answer["content"]
                messages.append(answer)
        case = {"messages": messages}
        if messages[-1]["role"] == "user" or rng.random() < 0.2:
            case["add_generation_prompt"] = rng.random() < 0.8
        if family == "qwen3" and rng.random() < 0.6:
            case["enable_thinking"] = rng.random() < 0.5
        if family == "llama3.1" and rng.random() < 0.8:
            case["date_string"] = rng.choice(["26 Jul 2024", "01 Dec 2026"])
        cases.append(case)
    # Tool use, where the family's template has it.
    if family == "qwen3":
        for with_system in (False, True):
            messages = ([{"role": "system", "content": "도구를 쓰세요."}] if with_system else []) + [
                {"role": "user", "content": "서울 날씨 알려줘"},
                {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                    "name": "get_weather", "arguments": {"city": "서울"}}}]},
                {"role": "tool", "content": "맑음, 20도"}, {"role": "tool", "content": "습도 40%"},
                {"role": "assistant", "content": "서울은 맑고 20도입니다.", "tool_calls": [{"function": {
                    "name": "get_weather", "arguments": "{\"city\": \"부산\"}"}}]},
                {"role": "tool", "content": "흐림"}]
            cases.append({"messages": messages, "tools": [TOOL], "add_generation_prompt": True})
    if family == "llama3.1":
        cases.append({"messages": [
            {"role": "user", "content": "서울 날씨 알려줘"},
            {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                "name": "get_weather", "arguments": {"city": "서울"}}}]},
            {"role": "ipython", "content": {"weather": "맑음"}}, {"role": "tool", "content": "20도"},
            {"role": "assistant", "content": "맑고 20도입니다."}], "date_string": "26 Jul 2024"})
    return cases


def tokenizer_json_dir(out, source: Path, specials, config):
    """A PreTrainedTokenizerFast over source's tokenizer.json plus the family's special tokens."""
    tok = Tokenizer.from_file(str(source / "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, normalized=False) for t in specials])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **{k: v for k, v in config.items() if k != "chat_template"})
    fast.chat_template = config["chat_template"]
    fast.save_pretrained(str(out))


def files_dir(out, source: Path, template, tokens, config_changes=None):
    """A copy of a vocab.json + merges.txt directory with more added tokens and the template."""
    out.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.update(config_changes or {})
    config["chat_template"] = template
    decoder = config["added_tokens_decoder"]
    next_id = max(max(int(k) for k in decoder), len(json.loads((out / "vocab.json").read_text())) - 1) + 1
    for content, special in tokens:
        decoder[str(next_id)] = {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                                 "single_word": False, "special": special}
        next_id += 1
    (out / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))


def write(out: Path, shared: Path, trained: dict):
    """Writes out/<family>/ tokenizers (from the tokenizer oracle's trained directories) and returns
    the chat cases: {family, dir, messages, options..., text, ids}."""
    from transformers import AutoTokenizer
    models = shared / "models"
    templates = {}
    for family, name in [("llama3", "llama-3-Korean-Bllossom-8B"), ("llama3.1", "Llama-3.2-1B-Instruct"),
                         ("qwen1.5", "Qwen1.5-0.5B-Chat"), ("qwen3", "Qwen3-0.6B")]:
        path = models / name / "tokenizer_config.json"
        if path.exists():
            templates[family] = json.loads(path.read_text())["chat_template"]
    templates["exaone3"] = EXAONE3_TEMPLATE
    templates["gemma"] = GEMMA_TEMPLATE
    templates["qwen2"] = QWEN2_TEMPLATE

    llama_tokens = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    qwen3_tokens = [(t, False) for t in ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>",
                                        "</tool_response>"]]
    records, rng = [], random.Random(7)
    for family, template in templates.items():
        directory = out / family
        if family.startswith("llama3"):
            tokenizer_json_dir(directory, trained["split-llama3-ignore-merges"], llama_tokens, {
                "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|end_of_text|>",
                "chat_template": template})
        elif family == "gemma":
            tokenizer_json_dir(directory, trained["split-llama3-ignore-merges"],
                               ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"],
                               {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<|pad|>", "chat_template": template})
        elif family.startswith("qwen"):
            files_dir(directory, trained["qwen2-files"], template, qwen3_tokens if family == "qwen3" else [])
        else:
            files_dir(directory, trained["gpt2-files"], template, [("[|system|]", True), ("[|assistant|]", True)])
        tok = AutoTokenizer.from_pretrained(str(directory))
        for case in conversations(rng, 60, family):
            kwargs = {k: v for k, v in case.items() if k != "messages"}
            text = tok.apply_chat_template(case["messages"], tokenize=False, **kwargs)
            ids = tok.apply_chat_template(case["messages"], tokenize=True, return_dict=False, **kwargs)
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
            records.append({"family": family, "dir": str(directory), **case, "text": text, "ids": list(ids)})
    return records
