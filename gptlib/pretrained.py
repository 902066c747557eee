"""The small trained models that ship with gptlib, so that the book can show a model that
has learned something, with no download.

- ``load_shakespeare_char()``: a character-level GPT trained on the bundled Shakespeare
  with gptlib's trainer (recipe ``bundled-char``: 4 layers, 6 heads of 32, 192 dims, 128
  characters of context). ``gptlib/data/shakespeare/SOURCE.md`` says how it was trained
  and ``scripts/export_bundled_model.py`` how it was exported.
- ``load_induction_model()``: a 2-layer character-level GPT trained on Shakespeare
  passages and repeated random strings, in which an induction head forms
  (``scripts/train_induction_model.py``), with the log of its training. It uses the
  same 83 characters as the first model.

Both are safetensors files: the weights, the tied ``lm_head`` stored once, and the
configuration in the file's metadata (a model with ``tie_embeddings=False`` stores its
``lm_head.weight`` too; a configuration without the options of ``GPTConfig`` is GPT-2's).
"""

from __future__ import annotations

import json
from importlib import resources

from .config import GPTConfig
from .model import GPT
from .tokenizer import CharTokenizer


def data_path(*parts: str) -> str:
    return str(resources.files("gptlib").joinpath("data", *parts))


def bundled_model_path() -> str:
    return data_path("shakespeare", "model.safetensors")


def load_safetensors_model(path: str) -> tuple[GPT, dict]:
    """A GPT from a safetensors file written by the scripts above, in eval mode, and the
    file's metadata (every value still a JSON string)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .checkpoint import load_checked

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    config = GPTConfig(**json.loads(meta["config"]))
    state = load_file(path)
    if config.tie_embeddings:
        state["lm_head.weight"] = state["transformer.wte.weight"]  # tied: stored once
    return load_checked(GPT(config), state).eval(), meta


def load_shakespeare_char() -> tuple[GPT, CharTokenizer, dict]:
    """(model in eval mode, its character tokenizer, how it was trained)."""
    model, meta = load_safetensors_model(bundled_model_path())
    return model, CharTokenizer(json.loads(meta["chars"])), json.loads(meta["trained"])


def load_induction_model() -> tuple[GPT, list[dict], dict]:
    """(the 2-layer induction model in eval mode, its training log, its data settings).

    Each log row is one probe during training: the step, the train and val loss, the loss
    on the first and on the second copy of repeated random strings, the best
    previous-token (layer 0) and induction (layer 1) scores, the in-context learning score
    on held-out text with its standard error, and the CPU seconds used so far."""
    model, meta = load_safetensors_model(data_path("induction", "model.safetensors"))
    with open(data_path("induction", "log.jsonl")) as f:
        log = [json.loads(line) for line in f if line.strip()]
    return model, log, json.loads(meta["data"])
