"""Chapter 9: training checkpoints on disk.

A checkpoint is one file, ``ckpt.pt``, written by ``torch.save`` and read back with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only, never
arbitrary Python objects. It holds the model's weights and configuration, the optimiser,
the random-number states, the evaluation history and the tokenizer (its *spec*:
``{"kind": "char", "chars": ...}`` or ``{"kind": "gpt2"}``).

The trainer, ``python -m gptlib sample`` and the command line all read and write
checkpoints through this module.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from .config import GPTConfig
from .model import GPT
from .tokenizer import CharTokenizer, gpt2_tokenizer

REQUIRED_KEYS = ("model", "model_config", "step")
# why_unreadable's reason for a file that names Python classes or functions (refused, never run).
HOLDS_OBJECTS = "it holds Python objects other than tensors and plain data, which gptlib does not load"
TOKENIZER_KINDS = ("char", "gpt2")


def load_checked(model: GPT, state_dict: dict) -> GPT:
    """Load a gptlib-layout state dict, or raise ValueError listing every mismatch."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    given = {name: tuple(t.shape) for name, t in state_dict.items()}
    problems = [f"missing: {n} {list(expected[n])}" for n in expected if n not in given]
    problems += [f"unexpected: {n} {list(given[n])}" for n in given if n not in expected]
    problems += [
        f"shape mismatch: {n} is {list(given[n])} in the file, {list(expected[n])} in the model"
        for n in expected
        if n in given and given[n] != expected[n]
    ]
    if problems:
        raise ValueError(
            f"state dict does not fit this model ({model.config}); "
            f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)
        )
    model.load_state_dict(state_dict)
    return model


def save_atomically(obj: dict, path) -> None:
    """torch.save to a temporary file beside path, flushed to disk, then renamed over path.

    A crash (even SIGKILL) in the middle leaves the previous file whole: the rename is the
    only step that changes what path holds, and it is atomic.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    """A checkpoint written by ``Trainer.save`` (a ckpt.pt, or the folder holding it),
    loaded without unpickling arbitrary objects.

    Raises FileNotFoundError when there is no file, and ValueError with one short line
    naming the file and what is wrong when it is damaged or not a gptlib checkpoint.
    """
    path = checkpoint_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes the one message below
        raise ValueError(
            f"checkpoint {path} is corrupt or not a gptlib checkpoint: {why_unreadable(e, path)}"
        ) from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} is not a gptlib checkpoint: it holds a {type(ckpt).__name__}, not a dict")
    missing = [key for key in REQUIRED_KEYS if key not in ckpt]
    if missing:
        raise ValueError(f"checkpoint {path} is not a gptlib checkpoint: it lacks {missing}")
    return ckpt


def why_unreadable(error: Exception, path=None) -> str:
    """A short reason for a failed torch.load, without torch's own advice (which suggests
    weights_only=False: unpickling arbitrary code, unsafe for a file one did not write).

    A file that names a Python class or function ("Unsupported global") holds objects that
    are not plain data; so does a whole zip archive (torch.save's format) that still fails.
    Anything else is truncated or another format."""
    text = str(error)
    whole_archive = path is not None and zipfile.is_zipfile(path)
    refused = "weights_only" in text or "Unpickl" in type(error).__name__
    if "Unsupported global" in text or (whole_archive and refused):
        return HOLDS_OBJECTS
    if not whole_archive or "zip" in text.lower() or "magic number" in text or isinstance(error, EOFError):
        return "it is not a complete file written by torch.save (truncated or another format)"
    return type(error).__name__


def checkpoint_file(path) -> Path:
    """The ckpt.pt a path names: the path itself, or ckpt.pt inside it when it is a folder."""
    path = Path(path)
    return path / "ckpt.pt" if path.is_dir() else path


def model_from_checkpoint(ckpt: dict) -> GPT:
    """The GPT a checkpoint describes, with its weights (in training mode, as built)."""
    try:
        config = GPTConfig(**ckpt["model_config"])
    except TypeError as e:
        raise ValueError(f"the checkpoint's model_config is not a GPTConfig: {e}") from None
    return load_checked(GPT(config), ckpt["model"])


# -- tokenizers ------------------------------------------------------------------------------
def tokenizer_spec(ckpt: dict, path=None) -> dict:
    """The tokenizer spec a checkpoint names; a clear error when it names none."""
    spec = ckpt.get("tokenizer")
    where = f"{path}" if path is not None else "the checkpoint"
    if spec is None:
        raise ValueError(f"{where} was not written by `python -m gptlib train` (it names no tokenizer)")
    if not isinstance(spec, dict) or spec.get("kind") not in TOKENIZER_KINDS:
        raise ValueError(f"{where} names an unknown tokenizer {spec!r}; known kinds: {', '.join(TOKENIZER_KINDS)}")
    return spec


def tokenizer_from_spec(spec: dict):
    """The tokenizer a checkpoint was trained with: {'kind': 'char', 'chars': ...} or {'kind': 'gpt2'}."""
    if spec["kind"] == "char":
        return CharTokenizer(spec["chars"])
    if spec["kind"] == "gpt2":
        return gpt2_tokenizer()
    raise ValueError(f"unknown tokenizer kind {spec['kind']!r}; known kinds: {', '.join(TOKENIZER_KINDS)}")


def encode_text(text: str, kind: str, chars: str | None = None):
    """(token ids as a 1-D long tensor, tokenizer spec) for a text."""
    if kind == "char":
        tok = CharTokenizer(chars if chars is not None else text)
        return torch.tensor(tok.encode(text), dtype=torch.long), {"kind": "char", "chars": "".join(tok.chars)}
    if kind == "gpt2":
        return torch.tensor(gpt2_tokenizer().encode_ordinary(text), dtype=torch.long), {"kind": "gpt2"}
    raise ValueError(f"unknown tokenizer {kind!r}; choose char or gpt2")
