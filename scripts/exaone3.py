"""EXAONE 3.0/3.5 (`model_type: exaone`) as transformers' Llama under other names: the oracle for
lorakit's exaone architecture. transformers has no EXAONE 3 class (the hub ships remote code), so
the tests build a LlamaForCausalLM, save it under EXAONE 3's tensor and config names, and read
EXAONE 3 directories (and adapters) back into Llama. The mapping is architectures-more.md 9.2.
"""
import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

# Llama module name <-> EXAONE 3 module name, as name prefixes ({i}: the layer), most specific first.
_PAIRS = [
    ("model.embed_tokens", "transformer.wte"),
    ("model.norm", "transformer.ln_f"),
    ("model.layers.{i}.input_layernorm", "transformer.h.{i}.ln_1"),
    ("model.layers.{i}.post_attention_layernorm", "transformer.h.{i}.ln_2"),
    ("model.layers.{i}.self_attn.o_proj", "transformer.h.{i}.attn.attention.out_proj"),
    ("model.layers.{i}.self_attn.", "transformer.h.{i}.attn.attention."),
    ("model.layers.{i}.mlp.gate_proj", "transformer.h.{i}.mlp.c_fc_0"),
    ("model.layers.{i}.mlp.up_proj", "transformer.h.{i}.mlp.c_fc_1"),
    ("model.layers.{i}.mlp.down_proj", "transformer.h.{i}.mlp.c_proj"),
]


def _rules(source, target):
    return [("^" + re.escape(pair[source]).replace(re.escape("{i}"), r"(\d+)"), pair[target].replace("{i}", r"\1"))
            for pair in _PAIRS]


_TO_EXAONE, _TO_LLAMA = _rules(0, 1), _rules(1, 0)
# Leaf module names (LoRA target_modules).
TARGETS_TO_EXAONE = {"o_proj": "out_proj", "gate_proj": "c_fc_0", "up_proj": "c_fc_1", "down_proj": "c_proj"}
TARGETS_TO_LLAMA = {v: k for k, v in TARGETS_TO_EXAONE.items()}


def _rename(name, rules, prefix=""):
    body = name[len(prefix):] if name.startswith(prefix) else name
    for pattern, replacement in rules:
        new, n = re.subn(pattern, replacement, body)
        if n:
            return prefix + new if name.startswith(prefix) else new
    return name


def to_exaone_name(name, prefix=""):
    return _rename(name, _TO_EXAONE, prefix)


def to_llama_name(name, prefix=""):
    return _rename(name, _TO_LLAMA, prefix)


def exaone_config(llama: LlamaConfig):
    """EXAONE 3's config.json for a Llama config (4.x rope keys, as the hub files have them)."""
    rope = dict(llama.rope_parameters)
    config = {
        "architectures": ["ExaoneForCausalLM"], "model_type": "exaone",
        "vocab_size": llama.vocab_size, "hidden_size": llama.hidden_size,
        "intermediate_size": llama.intermediate_size, "num_layers": llama.num_hidden_layers,
        "num_attention_heads": llama.num_attention_heads, "num_key_value_heads": llama.num_key_value_heads,
        "max_position_embeddings": llama.max_position_embeddings, "activation_function": llama.hidden_act,
        "layer_norm_epsilon": llama.rms_norm_eps, "tie_word_embeddings": llama.tie_word_embeddings,
        "bos_token_id": llama.bos_token_id, "eos_token_id": llama.eos_token_id, "pad_token_id": llama.pad_token_id,
        "rope_theta": rope.pop("rope_theta"), "torch_dtype": "float32", "use_cache": True,
    }
    rope.pop("type", None)
    config["rope_scaling"] = None if rope.get("rope_type") == "default" else rope
    if config["tie_word_embeddings"]:
        del config["tie_word_embeddings"]  # absent means tied (the PretrainedConfig default); 7.8B writes false
    return config


def save_as_exaone(model: LlamaForCausalLM, out: Path):
    """Writes model (a LlamaForCausalLM) as an EXAONE 3 directory: config.json, model.safetensors."""
    out.mkdir(parents=True, exist_ok=True)
    state = {to_exaone_name(k): v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(exaone_config(model.config), indent=2))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)


def llama_config_of(exaone_dir: Path) -> LlamaConfig:
    c = json.loads((Path(exaone_dir) / "config.json").read_text())
    rope = dict(c.get("rope_scaling") or {"rope_type": "default"})
    rope["rope_theta"] = c.get("rope_theta", 10000.0)
    return LlamaConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_layers"], num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c.get("num_key_value_heads"), max_position_embeddings=c["max_position_embeddings"],
        hidden_act=c.get("activation_function", "silu"), rms_norm_eps=c.get("layer_norm_epsilon", 1e-5),
        tie_word_embeddings=c.get("tie_word_embeddings", True), rope_parameters=rope,
        bos_token_id=c.get("bos_token_id"), eos_token_id=c.get("eos_token_id"), pad_token_id=c.get("pad_token_id"))


def load_as_llama(exaone_dir: Path, dtype=torch.float32):
    """An EXAONE 3 directory as a LlamaForCausalLM; returns (model, missing, unexpected)."""
    exaone_dir = Path(exaone_dir)
    config = llama_config_of(exaone_dir)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).to(dtype).eval()
    state = {}
    for f in sorted(exaone_dir.glob("*.safetensors")):
        state.update({to_llama_name(k): v for k, v in load_file(str(f)).items()})
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if config.tie_word_embeddings:
        model.tie_weights()
    return model, missing, list(result.unexpected_keys), str(next(iter(state.values())).dtype)


def adapter_to_exaone(adapter_dir: Path):
    """Renames a PEFT adapter saved on the Llama oracle to EXAONE 3's module names, in place."""
    adapter_dir = Path(adapter_dir)
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    save_file({to_exaone_name(k, "base_model.model."): v for k, v in weights.items()},
              str(adapter_dir / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    targets = config["target_modules"]
    if isinstance(targets, list):
        config["target_modules"] = sorted(TARGETS_TO_EXAONE.get(t, t) for t in targets)
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))


def adapter_to_llama(adapter_dir: Path, out: Path):
    """A copy of an EXAONE 3 adapter under Llama's module names (for PeftModel on the oracle)."""
    adapter_dir, out = Path(adapter_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    save_file({to_llama_name(k, "base_model.model."): v for k, v in weights.items()},
              str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if isinstance(config["target_modules"], list):
        config["target_modules"] = sorted(TARGETS_TO_LLAMA.get(t, t) for t in config["target_modules"])
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))


def is_exaone(model_dir) -> bool:
    path = Path(model_dir) / "config.json"
    return path.exists() and json.loads(path.read_text()).get("model_type") == "exaone"
