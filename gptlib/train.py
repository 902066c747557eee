"""Chapter 9: ``python -m gptlib train``, the training run from the command line.

``run_training`` reads the text, encodes it, picks the model and the recipe (or continues
a checkpoint's), joins the process group under ``torchrun``, and runs the ``Trainer``.
``prepare_out_dir``, ``pick_device`` and ``setup_distributed`` are its checks and set-up.

This module also gathers the public names of training, so that ``from gptlib.train
import ...`` finds them all: the recipe (``gptlib.recipes``), the loop
(``gptlib.trainer``), Ctrl-C (``gptlib.interrupt``) and checkpoints (``gptlib.checkpoint``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.distributed as dist

from .checkpoint import TOKENIZER_KINDS, encode_text, load_checkpoint, model_from_checkpoint, tokenizer_spec
from .config import GPTConfig
from .dataset import read_text, train_val_split
from .interrupt import TrainingInterrupted
from .model import GPT
from .recipes import (
    BUDGET_LADDER,
    BUNDLED_CHAR,
    DEFAULT_RECIPE,
    NANOGPT_CPU,
    RECIPES,
    SCHEDULES,
    TUNED_CPU,
    TrainConfig,
    budget_recipe,
    make_optimizer,
)
from .trainer import Trainer, estimate_loss

__all__ = [
    "BUDGET_LADDER",
    "BUNDLED_CHAR",
    "DEFAULT_RECIPE",
    "NANOGPT_CPU",
    "RECIPES",
    "SCHEDULES",
    "TUNED_CPU",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "budget_recipe",
    "estimate_loss",
    "load_checkpoint",
    "make_optimizer",
    "model_from_checkpoint",
    "pick_device",
    "prepare_out_dir",
    "run_training",
    "setup_distributed",
]


def pick_device(device: str = "auto") -> str:
    """'auto' picks cuda, then mps, then cpu; an explicit name must be available."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if device == "auto":
        return "cuda" if available["cuda"] else "mps" if available["mps"] else "cpu"
    if device not in available:
        raise ValueError(f"unknown device {device!r}; choose auto, cpu, cuda or mps")
    if not available[device]:
        raise ValueError(f"device {device!r} is not available on this machine")
    return device


def prepare_out_dir(out, resume: bool) -> Path:
    """Check --out before anything is trained, so that no earlier work is overwritten."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder (it will hold ckpt.pt and log.jsonl)")
    ckpt = out / "ckpt.pt"
    if resume and not ckpt.is_file():
        raise FileNotFoundError(f"--resume: there is no checkpoint at {ckpt} to continue from")
    if not resume and ckpt.exists():
        raise FileExistsError(f"{ckpt} already exists; continue it with --resume, or choose another --out")
    return out


def setup_distributed(device: str) -> None:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")


def run_training(
    data,
    tokenizer="char",
    preset=None,
    recipe=None,
    out="out",
    max_iters=None,
    max_seconds=None,
    device="auto",
    resume=False,
    compile=False,
    progress=True,
    seed=None,
    batch_size=None,
    grad_accum=None,
    eval_interval=None,
    model_options=None,
    clock=None,
) -> list[dict]:
    """What ``python -m gptlib train`` does; returns the evaluation history.

    recipe None means: with max_seconds and no max_iters, the time-budget recipe
    (``budget_recipe``); otherwise the default recipe. When resuming, the checkpoint's
    model and schedule continue, unless a recipe or preset is named (then it must match).
    model_options changes fields of the chosen model's GPTConfig (``bias`` and the options
    after GPT-2's, e.g. ``{"position": "rope", "n_kv_head": 2}``); resuming, they must match too.
    clock is what max_seconds counts (TrainConfig.clock): "wall" or "cpu" (the process's CPU
    time); None keeps the recipe's ("wall") or, resuming, the checkpoint's.
    """
    if recipe is not None and recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known recipes: {', '.join(RECIPES)}")
    if tokenizer not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; choose char or gpt2")
    out = prepare_out_dir(out, resume)
    ckpt = load_checkpoint(out / "ckpt.pt") if resume else None
    text = read_text(data)
    chars = None
    if ckpt is not None:
        saved = tokenizer_spec(ckpt, out / "ckpt.pt")
        if saved["kind"] != tokenizer:
            raise ValueError(
                f"the checkpoint was trained with the {saved['kind']} tokenizer, not {tokenizer}; "
                f"resume it with --tokenizer {saved['kind']}"
            )
        chars = saved.get("chars")
    ids, tok_spec = encode_text(text, tokenizer, chars)
    train_data, val_data = train_val_split(ids)

    if recipe is None and max_seconds is not None and max_iters is None and ckpt is None:
        model_shape, train_config = budget_recipe(max_seconds)
    else:
        model_shape, train_config = RECIPES[recipe or DEFAULT_RECIPE]
    vocab_size = len(tok_spec["chars"]) if tokenizer == "char" else 50257
    if preset is not None:
        model_config = GPTConfig.from_preset(preset, vocab_size=vocab_size)
    elif ckpt is not None and recipe is None:
        model_config = GPTConfig(**ckpt["model_config"])  # the checkpoint's model continues
    else:
        model_config = GPTConfig(vocab_size=vocab_size, **model_shape)
    if model_options:
        model_config = model_config.replace(**model_options)
    if ckpt is not None:  # continue the same schedule, unless told otherwise below
        train_config = TrainConfig(**ckpt["train_config"])
    changes = {
        "max_iters": max_iters,
        "max_seconds": max_seconds,
        "seed": seed,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "eval_interval": eval_interval,
        "clock": clock,
    }
    train_config = dataclasses.replace(train_config, **{k: v for k, v in changes.items() if v is not None})

    device = pick_device(device)
    setup_distributed(device)
    torch.manual_seed(train_config.seed)
    model = GPT(model_config)
    trainer = Trainer(
        model,
        train_data,
        val_data,
        train_config,
        device=device,
        out_dir=out,
        extra={"tokenizer": tok_spec},
        compile=compile,
    )
    if ckpt is not None:
        trainer.resume(ckpt)
        trainer.saved_step = ckpt["step"]  # out/ckpt.pt holds it until the trainer saves again
    try:
        return trainer.train(progress=progress)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
