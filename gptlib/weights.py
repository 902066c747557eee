"""Chapter 11: real GPT-2 weights.

gptlib's parameter names are those of Hugging Face's ``GPT2LMHeadModel``
(``transformer.h.0.attn.c_attn.weight``; nanoGPT uses the same, while OpenAI's TensorFlow
checkpoint says ``model/h0/attn/c_attn/w``), so a Hugging Face checkpoint loads by name with
one twist: GPT-2 stores its four projection matrices as ``Conv1D`` weights, input dimension
first (OpenAI's ``src/model.py`` as [1, in, out], Hugging Face's ``Conv1D`` as [in, out]),
while ``torch.nn.Linear`` stores (out, in). Those four are transposed on the way in and out.

Files are read with ``safetensors`` or ``torch.load(weights_only=True)``: never by
unpickling arbitrary objects.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .checkpoint import HOLDS_OBJECTS, REQUIRED_KEYS, load_checked, why_unreadable
from .config import GPTConfig
from .model import GPT

# The Conv1D weights of a GPT-2 block, stored (in, out) in GPT-2 checkpoints.
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers some Hugging Face GPT-2 files carry (the causal mask, saved by older transformers); no weights.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def is_conv1d_weight(name: str) -> bool:
    return name.endswith(CONV1D_WEIGHTS)


def from_hf_state_dict(hf_state_dict: dict) -> dict:
    """A Hugging Face GPT-2 state dict renamed and transposed for gptlib.

    Accepts the names of ``GPT2LMHeadModel`` (``transformer.h.0.attn.c_attn.weight``) or of
    ``GPT2Model``, without the ``transformer.`` prefix (as the hub's ``model.safetensors`` for
    ``gpt2`` stores them), drops the causal-mask buffers, and ties ``lm_head.weight`` to
    ``transformer.wte.weight``.
    """
    out = {}
    for name, tensor in hf_state_dict.items():
        if name.endswith(IGNORED_SUFFIXES) or name == "lm_head.weight":
            continue
        if not name.startswith("transformer."):
            name = "transformer." + name
        out[name] = tensor.t() if is_conv1d_weight(name) else tensor
    if "transformer.wte.weight" in out:
        out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def to_hf_state_dict(model: GPT) -> dict:
    """gptlib's weights in Hugging Face ``GPT2LMHeadModel`` layout (Conv1D weights transposed)."""
    return {
        name: (t.t() if is_conv1d_weight(name) else t).detach().contiguous() for name, t in model.state_dict().items()
    }


def config_from_hf(hf_config: dict) -> GPTConfig:
    """A GPTConfig from the fields of a Hugging Face ``GPT2Config`` (its config.json).

    It refuses the switches that change the function the model computes: another activation
    or epsilon, attention scores not scaled by 1/sqrt(head size), or scaled by 1/(layer + 1) as
    well. ``reorder_and_upcast_attn`` is accepted: it computes the same scores in float32, the
    dtype gptlib loads weights in."""
    activation = hf_config.get("activation_function", "gelu_new")
    eps = hf_config.get("layer_norm_epsilon", 1e-5)
    if activation != "gelu_new" or abs(eps - 1e-5) > 1e-12:
        raise ValueError(
            f"gptlib models GPT-2 exactly (activation gelu_new, layer_norm_epsilon 1e-05); "
            f"this config has activation {activation!r} and layer_norm_epsilon {eps}"
        )
    for switch, gpt2_value in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)):
        value = hf_config.get(switch, gpt2_value)
        if value != gpt2_value:
            raise ValueError(
                f"gptlib models GPT-2 exactly ({switch}={gpt2_value}); this config has {switch}={value}, "
                f"which changes the attention scores"
            )
    try:
        return GPTConfig(
            vocab_size=hf_config["vocab_size"],
            block_size=hf_config["n_positions"],
            n_layer=hf_config["n_layer"],
            n_head=hf_config["n_head"],
            n_embd=hf_config["n_embd"],
            dropout=0.0,
            bias=True,
        )
    except KeyError as e:
        raise ValueError(f"GPT-2 config is missing the field {e.args[0]!r}") from None


def config_to_hf(config: GPTConfig) -> dict:
    """The config.json fields Hugging Face's GPT2Config needs to rebuild this model."""
    if not config.bias:
        raise ValueError("GPT-2 checkpoints have biases; a model with bias=False cannot be exported to GPT-2")
    if config.non_gpt2_options():
        options = ", ".join(f"{k}={v!r}" for k, v in config.non_gpt2_options().items())
        raise ValueError(f"GPT-2 has none of the options this model sets ({options}); it cannot be exported to GPT-2")
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "tie_word_embeddings": True,
    }


def read_state_dict(path) -> dict:
    """Tensors from a ``.safetensors`` file, or a torch file loaded with weights_only=True.

    Raises ValueError naming the file when it is damaged, is not a dict of tensors, or is a
    gptlib training checkpoint; pickle.UnpicklingError when it holds Python objects other
    than tensors and plain data (they are refused, never run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except SafetensorError as e:
            raise ValueError(
                f"{path} is not a readable safetensors file (damaged, truncated or another format): {e}"
            ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes one of the two messages below
        reason = why_unreadable(e, path)
        if reason == HOLDS_OBJECTS:
            raise pickle.UnpicklingError(f"{path} is refused: {reason}") from None
        raise ValueError(f"{path} is not a weights file gptlib can read: {reason}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (found {type(state).__name__})")
    if is_training_checkpoint(state):
        raise not_gpt2_weights(f"{path} is")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path} is not a state dict of tensors: {name!r} is of type {type(value).__name__}")
    return state


def is_training_checkpoint(state: dict) -> bool:
    """Whether a loaded file is what `python -m gptlib train` writes (gptlib.checkpoint)."""
    return all(key in state for key in REQUIRED_KEYS) and isinstance(state["model"], dict)


def not_gpt2_weights(what: str) -> ValueError:
    """The error for a training checkpoint handed to load_gpt2; what: "PATH is" or "FOLDER holds ckpt.pt,"."""
    return ValueError(
        f"{what} a gptlib training checkpoint (written by `python -m gptlib train`), not GPT-2 weights; "
        "load_gpt2 reads config.json and model.safetensors (what save_gpt2 and Hugging Face's save_pretrained "
        "write); read a training checkpoint with gptlib.checkpoint.load_checkpoint and model_from_checkpoint"
    )


def weights_in_folder(folder: Path) -> Path:
    """The model.safetensors of a checkpoint folder, or a clear error saying what the folder holds."""
    weights = folder / "model.safetensors"
    if weights.is_file():
        return weights
    if (folder / "ckpt.pt").is_file():
        raise not_gpt2_weights(f"{folder} holds no model.safetensors but ckpt.pt,")
    held = sorted(p.name for p in folder.iterdir())
    listing = ", ".join(held[:8]) + (", ..." if len(held) > 8 else "") if held else "nothing"
    raise FileNotFoundError(
        f"no model.safetensors in {folder} (it holds {listing}); load_gpt2 reads a folder with config.json "
        f"and model.safetensors, or a weights file"
    )


def load_gpt2(path, config: GPTConfig | None = None) -> GPT:
    """A GPT from a local GPT-2 checkpoint: a folder with ``config.json`` and
    ``model.safetensors`` (what ``save_pretrained`` writes), or a weights file with
    its config given (or a ``config.json`` beside it)."""
    path = Path(path)
    weights_file = weights_in_folder(path) if path.is_dir() else path
    state = read_state_dict(weights_file)  # first: a training checkpoint gets its own message
    if config is None:
        config_file = weights_file.parent / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no config.json beside {weights_file}; pass config=GPTConfig(...)")
        config = config_from_hf(json.loads(config_file.read_text()))
    model = GPT(config)
    load_checked(model, from_hf_state_dict(state))
    return model.eval()


def save_gpt2(model: GPT, directory) -> Path:
    """Write ``config.json`` and ``model.safetensors`` as Hugging Face's ``save_pretrained`` does for GPT-2.

    ``transformers.GPT2LMHeadModel.from_pretrained(directory)`` loads the result.
    """
    from safetensors.torch import save_file

    config = config_to_hf(model.config)  # first: a model GPT-2 cannot hold leaves no folder behind
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} exists and is not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.clone() for k, v in to_hf_state_dict(model).items() if k != "lm_head.weight"}
    # Write to temporary names, then rename, so an interrupted save leaves the old files whole.
    tmp_weights, tmp_config = directory / "model.safetensors.tmp", directory / "config.json.tmp"
    save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
    tmp_config.write_text(json.dumps(config, indent=2))
    os.replace(tmp_weights, directory / "model.safetensors")
    os.replace(tmp_config, directory / "config.json")
    return directory


def from_pretrained(name: str = "gpt2") -> GPT:
    """Real GPT-2 weights from the Hugging Face hub (needs ``transformers`` and a network).

    name: ``gpt2``, ``gpt2-medium``, ``gpt2-large`` or ``gpt2-xl``.
    """
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(name)
    model = GPT(config_from_hf(hf.config.to_dict()))
    load_checked(model, from_hf_state_dict(hf.state_dict()))
    return model.eval()
