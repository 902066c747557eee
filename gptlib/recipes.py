"""Chapter 9: the recipe, how to train.

``TrainConfig`` holds a recipe's numbers: the batch, AdamW's settings, the learning-rate
schedule (a linear warmup, then a cosine decay over the steps or over a time budget),
how often to evaluate, and when to stop. ``make_optimizer`` builds AdamW with weight
decay on the matrices only.

The named recipes pair a model shape (everything but the vocabulary) with a
TrainConfig: ``RECIPES`` by name, and ``budget_recipe`` for a time budget, which picks
the largest shape of ``BUDGET_LADDER`` that the budget can afford.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCHEDULES = ("steps", "time")
# What max_seconds and the time schedule count: "wall", the time that passes (time.perf_counter);
# "cpu", the CPU time this process uses (time.process_time), which time spent waiting for a
# core that another program holds does not add to.
CLOCKS = ("wall", "cpu")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the optimiser, the schedule, evaluation, and when to stop.

    ``schedule="steps"`` decays the learning rate over ``max_iters`` steps (or
    ``lr_decay_iters``). ``schedule="time"`` decays it over the time budget
    ``max_seconds`` instead: after the warmup steps the cosine follows the fraction of the
    budget used, and reaches min_lr when the time is up, however fast the machine is.
    """

    batch_size: int = 12  # sequences per step, in all processes and micro-batches together
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # None: decay until max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 turns clipping off
    eval_interval: int = 250
    eval_iters: int = 20
    max_seconds: float | None = None  # stop after this many seconds of `clock`, evaluation included
    seed: int = 1337
    grad_accum: int = 1  # each step's batch is computed in this many pieces (same result, less memory)
    schedule: str = "steps"  # "steps" or "time" (decay over max_seconds)
    clock: str = "wall"  # what max_seconds counts: "wall" (time that passes) or "cpu" (this process's CPU time)

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_iters", "eval_interval", "eval_iters", "grad_accum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, got {value!r}")
        if isinstance(self.warmup_iters, bool) or not isinstance(self.warmup_iters, int) or self.warmup_iters < 0:
            raise ValueError(f"TrainConfig.warmup_iters must be an int >= 0, got {self.warmup_iters!r}")
        if not self.learning_rate > 0 or not 0 <= self.min_lr <= self.learning_rate:
            raise ValueError(
                f"need 0 <= min_lr <= learning_rate and learning_rate > 0, "
                f"got learning_rate={self.learning_rate}, min_lr={self.min_lr}"
            )
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"TrainConfig.max_seconds must be > 0, got {self.max_seconds}")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"TrainConfig.batch_size {self.batch_size} does not split into grad_accum={self.grad_accum} "
                f"equal micro-batches; choose a batch_size that is a multiple of {self.grad_accum}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be 'steps' or 'time', got {self.schedule!r}")
        if self.clock not in CLOCKS:
            raise ValueError(
                f"TrainConfig.clock must be 'wall' (time that passes) or 'cpu' (the process's CPU time), "
                f"got {self.clock!r}"
            )
        if self.schedule == "time" and self.max_seconds is None:
            raise ValueError("TrainConfig.schedule='time' decays the learning rate over max_seconds: set max_seconds")

    def lr_at(self, step: int, elapsed_s: float = 0.0) -> float:
        """Linear warmup to learning_rate, then cosine decay to min_lr: over the steps
        (schedule "steps"), or over the time budget, by elapsed_s / max_seconds ("time")."""
        if step < self.warmup_iters:
            return self.learning_rate * (step + 1) / (self.warmup_iters + 1)
        if self.schedule == "time":
            progress = min(1.0, elapsed_s / self.max_seconds)
        else:
            decay_iters = self.lr_decay_iters or self.max_iters
            if step >= decay_iters:
                return self.min_lr
            progress = (step - self.warmup_iters) / max(1, decay_iters - self.warmup_iters)
        return self.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (self.learning_rate - self.min_lr)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (embeddings, linear weights), not on biases or LayerNorms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.beta1, config.beta2))


# Named recipes: the model's shape (besides its vocabulary) and how to train it.
NANOGPT_CPU = (
    # nanoGPT README's CPU recipe for character-level Shakespeare, as its baseline.
    dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False),
    TrainConfig(
        batch_size=12,
        max_iters=2000,
        learning_rate=1e-3,
        min_lr=1e-4,
        warmup_iters=100,
        lr_decay_iters=2000,
        beta2=0.99,
        eval_interval=250,
        eval_iters=20,
    ),
)
TUNED_CPU = (
    # The project's recipe (benchmarks/time_to_loss.py): one layer fewer, so each step is
    # faster, and a 5x higher learning rate with a short warmup, so each step does more.
    # The cosine decays until max_iters, so --max-iters N stretches the whole schedule.
    dict(n_layer=3, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False),
    TrainConfig(
        batch_size=12,
        max_iters=1200,
        learning_rate=5e-3,
        min_lr=1e-4,
        warmup_iters=20,
        lr_decay_iters=None,
        beta2=0.99,
        eval_interval=200,
        eval_iters=20,
    ),
)
BUNDLED_CHAR = (
    # The model that ships in gptlib/data/shakespeare (scripts/export_bundled_model.py):
    # 4 layers, 6 heads of 32, 128 characters of context, trained for about an hour on
    # one CPU thread over all 37 plays of the bundled corpus.
    dict(n_layer=4, n_head=6, n_embd=192, block_size=128, dropout=0.1, bias=False),
    TrainConfig(
        batch_size=32,
        max_iters=4500,
        learning_rate=3e-3,
        min_lr=1e-4,
        warmup_iters=200,
        lr_decay_iters=None,
        beta2=0.99,
        eval_interval=250,
        eval_iters=20,
    ),
)
RECIPES = {"tuned-cpu": TUNED_CPU, "nanogpt-cpu": NANOGPT_CPU, "bundled-char": BUNDLED_CHAR}
DEFAULT_RECIPE = "tuned-cpu"

# Time budgets (train --max-seconds S, no recipe, no --max-iters): the larger the budget,
# the larger the model that can use it. Up to each limit in seconds, this shape and
# schedule; measured on 2 CPU cores (benchmarks/README.md, "Training on a time budget").
BUDGET_LADDER = (
    (
        60.0,
        dict(n_layer=2, n_head=4, n_embd=96, block_size=64, dropout=0.0, bias=False),
        dict(batch_size=24, learning_rate=6e-3, warmup_iters=20, eval_interval=100),
    ),
    (
        600.0,
        dict(n_layer=3, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False),
        dict(batch_size=24, learning_rate=5e-3, warmup_iters=50, eval_interval=250),
    ),
    (math.inf, BUNDLED_CHAR[0], dict(batch_size=32, learning_rate=3e-3, warmup_iters=200, eval_interval=250)),
)


def budget_recipe(seconds: float):
    """(model shape, TrainConfig) for a time budget: the shape the budget can afford, and a
    schedule that warms up, then decays the learning rate over the whole budget."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"a time budget must be a number of seconds > 0, got {seconds!r}")
    shape, schedule = next((shape, schedule) for limit, shape, schedule in BUDGET_LADDER if seconds <= limit)
    config = TrainConfig(
        max_iters=10**9, min_lr=1e-4, beta2=0.99, eval_iters=20, max_seconds=float(seconds), schedule="time", **schedule
    )
    return dict(shape), config
