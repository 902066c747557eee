"""The small Shakespeare model that ships with gptlib, so that the chapters on generation
have a model that has learned something, with no download.

It is the tuned CPU recipe (3 layers, 4 heads, 128 dims, 64 characters of context)
trained for 6,000 steps on the bundled Shakespeare; ``scripts/export_bundled_model.py``
says how it was made and rebuilds it.
"""

from __future__ import annotations

import json
from importlib import resources

from .config import GPTConfig
from .model import GPT
from .tokenizer import CharTokenizer


def bundled_model_path() -> str:
    return str(resources.files("gptlib").joinpath("data", "shakespeare", "model.safetensors"))


def load_shakespeare_char() -> tuple[GPT, CharTokenizer, dict]:
    """(model in eval mode, its character tokenizer, how it was trained)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .weights import load_checked

    path = bundled_model_path()
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    config = GPTConfig(**json.loads(meta["config"]))
    state = load_file(path)
    state["lm_head.weight"] = state["transformer.wte.weight"]  # tied: stored once
    model = load_checked(GPT(config), state).eval()
    return model, CharTokenizer(json.loads(meta["chars"])), json.loads(meta["trained"])
