"""Llama checkpoints from Hugging Face, as a gptlib GPT.

A Llama is GPT-2 with four pieces changed, each an option of ``GPTConfig``: rotary
positions instead of wpe (``position="rope"``), RMSNorm instead of LayerNorm
(``norm="rmsnorm"``), a SwiGLU MLP (``mlp="swiglu"``) and grouped-query attention
(``n_kv_head``); and it has no biases (``bias=False``) and, mostly, an lm_head of its own
(``tie_embeddings=False``). ``load_llama`` reads a folder as Hugging Face's
``LlamaForCausalLM.save_pretrained`` writes it (config.json and model.safetensors, or
shards listed in model.safetensors.index.json) into a GPT.

The names, per block i (``model.layers.{i}.X`` -> ``transformer.h.{i}.Y``):

    model.embed_tokens.weight            transformer.wte.weight
    input_layernorm.weight               ln_1.weight
    self_attn.q_proj.weight              attn.c_attn.weight, its first n_head * hs rows
    self_attn.k_proj.weight              attn.c_attn.weight, the next n_kv_head * hs rows
    self_attn.v_proj.weight              attn.c_attn.weight, the last n_kv_head * hs rows
    self_attn.o_proj.weight              attn.c_proj.weight
    post_attention_layernorm.weight      ln_2.weight
    mlp.gate_proj.weight                 mlp.c_gate.weight
    mlp.up_proj.weight                   mlp.c_fc.weight
    mlp.down_proj.weight                 mlp.c_proj.weight
    model.norm.weight                    transformer.ln_f.weight
    lm_head.weight                       lm_head.weight (tied: wte's matrix; the file may omit it)

Both sides store ``nn.Linear`` weights as (out, in): nothing is transposed, unlike GPT-2's
Conv1D. The query and key rows are in Hugging Face's rotary order (``gptlib.rope``).
Files are read with safetensors only: nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import load_checked
from .config import GPTConfig
from .model import GPT
from .weights import read_state_dict

# A Llama block's tensors -> gptlib's, in the order they are stacked (q, k, v into c_attn).
LAYER_NAMES = {
    "input_layernorm.weight": "ln_1.weight",
    "self_attn.q_proj.weight": "attn.c_attn.weight",
    "self_attn.k_proj.weight": "attn.c_attn.weight",
    "self_attn.v_proj.weight": "attn.c_attn.weight",
    "self_attn.o_proj.weight": "attn.c_proj.weight",
    "post_attention_layernorm.weight": "ln_2.weight",
    "mlp.gate_proj.weight": "mlp.c_gate.weight",
    "mlp.up_proj.weight": "mlp.c_fc.weight",
    "mlp.down_proj.weight": "mlp.c_proj.weight",
}
# A buffer of the rotary frequencies that older transformers saved with the weights: no weights.
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def llama_name_map(config: GPTConfig) -> dict[str, str]:
    """Every tensor of a ``LlamaForCausalLM`` with this config, by name -> the gptlib tensor
    it fills. Three names fill each ``attn.c_attn.weight``: q, k, v rows, in this order."""
    names = {"model.embed_tokens.weight": "transformer.wte.weight"}
    for i in range(config.n_layer):
        names.update({f"model.layers.{i}.{k}": f"transformer.h.{i}.{v}" for k, v in LAYER_NAMES.items()})
    names["model.norm.weight"] = "transformer.ln_f.weight"
    names["lm_head.weight"] = "lm_head.weight"
    return names


def config_from_llama(hf_config: dict) -> GPTConfig:
    """A GPTConfig from the fields of a Hugging Face ``LlamaConfig`` (its config.json).

    Raises ValueError naming the field for a config that is not a Llama's, or that uses
    what gptlib does not model (rope scaling, biases, another activation, a head_dim other
    than hidden_size // num_attention_heads)."""
    if not isinstance(hf_config, dict):
        raise ValueError(f"a Llama config is a JSON object of fields, got {type(hf_config).__name__}")
    model_type = hf_config.get("model_type")
    if model_type != "llama":
        raise ValueError(f"config.json says model_type {model_type!r}; load_llama reads Llama checkpoints ('llama')")
    try:
        n_embd, n_head = hf_config["hidden_size"], hf_config["num_attention_heads"]
        fields = dict(
            vocab_size=hf_config["vocab_size"],
            block_size=hf_config["max_position_embeddings"],
            n_layer=hf_config["num_hidden_layers"],
            n_head=n_head,
            n_embd=n_embd,
            mlp_hidden=hf_config["intermediate_size"],
        )
    except KeyError as e:
        raise ValueError(f"the Llama config is missing the field {e.args[0]!r}") from None
    unsupported = [
        f"{name}={hf_config[name]!r} (gptlib models {want!r})"
        for name, want in (("attention_bias", False), ("mlp_bias", False), ("hidden_act", "silu"))
        if name in hf_config and hf_config[name] != want
    ]
    head_dim = hf_config.get("head_dim")
    if head_dim is not None and isinstance(n_head, int) and n_head > 0 and head_dim != n_embd // n_head:
        unsupported.append(f"head_dim={head_dim} (gptlib's heads have hidden_size // num_attention_heads dimensions)")
    rope = hf_config.get("rope_parameters") or {}  # transformers 5; version 4 wrote rope_theta and rope_scaling
    if hf_config.get("rope_scaling") is not None:
        unsupported.append(f"rope_scaling={hf_config['rope_scaling']!r} (gptlib has plain rotary positions only)")
    if rope.get("rope_type", "default") != "default" or rope.get("partial_rotary_factor", 1.0) != 1.0:
        unsupported.append(f"rope_parameters={rope!r} (gptlib has plain rotary positions only, rope_type 'default')")
    if unsupported:
        raise ValueError("this Llama uses what gptlib does not model: " + "; ".join(unsupported))
    return GPTConfig(
        **fields,
        dropout=0.0,
        bias=False,
        position="rope",
        rope_theta=float(rope.get("rope_theta", hf_config.get("rope_theta", 10000.0))),
        norm="rmsnorm",
        norm_eps=hf_config.get("rms_norm_eps", 1e-6),
        mlp="swiglu",
        n_kv_head=hf_config.get("num_key_value_heads") or n_head,
        tie_embeddings=hf_config.get("tie_word_embeddings", False),
    )


def from_llama_state_dict(state: dict, config: GPTConfig) -> dict:
    """A Hugging Face Llama state dict renamed for gptlib (q, k, v stacked into c_attn).

    Raises ValueError listing every tensor that is missing or that gptlib does not know."""
    names = llama_name_map(config)
    state = {k: v for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}
    optional = {"lm_head.weight"} if config.tie_embeddings else set()
    problems = [f"missing: {n}" for n in names if n not in state and n not in optional]
    problems += [f"unexpected: {n} {list(state[n].shape)}" for n in state if n not in names]
    if problems:
        raise ValueError(
            f"the Llama weights do not fit their config.json ({config}); {len(problems)} problem(s):\n  "
            + "\n  ".join(problems)
        )
    parts: dict[str, list] = {}
    for llama_name, name in names.items():
        if llama_name in state:
            parts.setdefault(name, []).append(state[llama_name])
    out = {name: torch.cat(tensors) if len(tensors) > 1 else tensors[0] for name, tensors in parts.items()}
    if config.tie_embeddings:
        if "lm_head.weight" in out and not torch.equal(out["lm_head.weight"], out["transformer.wte.weight"]):
            raise ValueError(
                "config.json ties the embeddings (tie_word_embeddings true), but lm_head.weight differs from "
                "model.embed_tokens.weight"
            )
        out["lm_head.weight"] = out["transformer.wte.weight"]  # one matrix, two uses
    return out


def to_llama_state_dict(model: GPT) -> dict:
    """gptlib's weights under Hugging Face Llama names (c_attn cut into q, k, v), the inverse
    of ``from_llama_state_dict``; with tied embeddings, without lm_head.weight."""
    config, state = model.config, model.state_dict()
    q_rows, kv_rows = config.n_embd, config.kv_heads * config.head_size
    out = {}
    for llama_name, name in llama_name_map(config).items():
        tensor = state[name]
        kind = llama_name.split(".")[-2]  # q_proj, k_proj, ..., embed_tokens, lm_head
        if kind in ("q_proj", "k_proj", "v_proj"):
            q, k, v = tensor.split([q_rows, kv_rows, kv_rows])  # (nh * hs, C), 2 x (nkv * hs, C)
            tensor = {"q_proj": q, "k_proj": k, "v_proj": v}[kind]
        if kind != "lm_head" or not config.tie_embeddings:
            out[llama_name] = tensor.detach().contiguous()
    return out


def read_llama_weights(folder: Path) -> dict:
    """The tensors of a checkpoint folder: model.safetensors, or the shards that
    model.safetensors.index.json lists (each read with safetensors, never unpickled)."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return read_state_dict(single)
    if not index.is_file():
        held = sorted(p.name for p in folder.iterdir())
        pickled = [name for name in held if name.endswith((".bin", ".pt", ".pth"))]
        why = f"; {', '.join(pickled)} would need unpickling, which gptlib never does" if pickled else ""
        raise FileNotFoundError(
            f"no model.safetensors or model.safetensors.index.json in {folder} (it holds {', '.join(held)}){why}; "
            f"save the model with save_pretrained, which writes safetensors"
        )
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{index} is not a safetensors index (a JSON object with a weight_map)") from None
    state = {}
    for shard in sorted(set(weight_map.values())):
        tensors = read_state_dict(folder / shard)
        listed = {name for name, file in weight_map.items() if file == shard}
        if set(tensors) != listed:
            raise ValueError(f"{folder / shard} does not hold the tensors {index.name} lists for it")
        state.update(tensors)
    return state


def load_llama(folder) -> GPT:
    """A GPT, in eval mode, from a Hugging Face Llama checkpoint folder: config.json and
    model.safetensors (or its shards), as ``LlamaForCausalLM.save_pretrained`` writes them.

    The weights are copied into the model's float32 parameters, whatever their dtype in the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; load_llama reads a folder with config.json and weights")
    config_file = folder / "config.json"
    if not config_file.is_file():
        held = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise FileNotFoundError(f"no config.json in {folder} (it holds {held}); load_llama needs the model's config")
    try:
        hf_config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_file} is not valid JSON: {e}") from None
    config = config_from_llama(hf_config)
    state = from_llama_state_dict(read_llama_weights(folder), config)
    return load_checked(GPT(config), state).eval()
