"""Chapter 9: training.

AdamW with weight decay on the matrices only, a linear warmup then cosine decay of the
learning rate, gradient clipping, and an evaluation on held-out data every
``eval_interval`` steps. Checkpoints are written atomically and hold everything needed
to continue exactly where training stopped: on a CPU, a resumed run gives the same
losses as one that never stopped.

Under ``torchrun`` the same code trains with DistributedDataParallel: every process
draws the same global batch and takes its own slice of it, so N processes with batch
B compute what one process computes with batch N * B.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .checkpoint import (  # noqa: F401 - load_checkpoint, model_from_checkpoint: public names of gptlib.train too
    TOKENIZER_KINDS,
    encode_text,
    load_checkpoint,
    model_from_checkpoint,
    save_atomically,
    tokenizer_from_spec,
    tokenizer_spec,
)
from .config import GPTConfig
from .dataset import get_batch, read_text, train_val_split
from .model import GPT
from .weights import load_checked

SCHEDULES = ("steps", "time")


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
    max_seconds: float | None = None  # stop after this much wall time, evaluation included
    seed: int = 1337
    grad_accum: int = 1  # each step's batch is computed in this many pieces (same result, less memory)
    schedule: str = "steps"  # "steps" or "time" (decay over max_seconds)

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


def make_optimizer(model: GPT, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (embeddings, linear weights), not on biases or LayerNorms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.beta1, config.beta2))


@torch.no_grad()
def estimate_loss(
    model: GPT, data: torch.Tensor, batch_size: int, eval_iters: int, seed: int, device: str = "cpu", autocast=None
) -> float:
    """Mean loss of model over eval_iters windows of data, drawn by a generator seeded with
    seed: the same batches every time, so that evaluations are comparable."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(eval_iters):
        x, y = get_batch(data, model.config.block_size, batch_size, generator)
        with autocast if autocast is not None else nullcontext():
            _, loss = model(x.to(device), y.to(device))
        losses.append(loss.item())
    model.train(was_training)
    return sum(losses) / len(losses)


class Trainer:
    """Trains a GPT on a 1-D tensor of token ids split into train and validation parts."""

    def __init__(
        self,
        model: GPT,
        train_data: torch.Tensor,
        val_data: torch.Tensor,
        config: TrainConfig,
        device: str = "cpu",
        out_dir=None,
        extra: dict | None = None,
        compile: bool = False,
    ):
        self.config = config
        self.device = device
        self.model = model.to(device)
        self.train_data, self.val_data = train_data, val_data
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.extra = extra or {}  # saved in the checkpoint as it is (the tokenizer, say)
        self.optimizer = make_optimizer(self.model, config)
        self.step = 0
        self.elapsed_s = 0.0
        self.eval_seconds = 0.0  # how long the last evaluation took (kept free at the end of a time budget)
        self.lr = config.lr_at(0)
        self.history: list[dict] = []
        self.batch_generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)  # dropout
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        if config.batch_size % (self.world * config.grad_accum):
            raise ValueError(
                f"batch_size {config.batch_size} does not split evenly over {self.world} processes "
                f"x {config.grad_accum} micro-batches"
            )
        self.forward_model = self.model
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.forward_model = self.ddp = DistributedDataParallel(self.model)
        if compile:
            self.forward_model = torch.compile(self.forward_model)
        self.autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "model_config": dataclasses.asdict(self.model.config),
            "train_config": dataclasses.asdict(self.config),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "history": self.history,
            "rng": {"torch": torch.get_rng_state(), "batch": self.batch_generator.get_state()},
            **self.extra,
        }

    def save(self) -> None:
        if self.out_dir is not None and self.rank == 0:
            save_atomically(self.state(), self.out_dir / "ckpt.pt")

    def resume(self, ckpt: dict) -> None:
        """Continue from a checkpoint of the same model configuration."""
        saved = GPTConfig(**ckpt["model_config"])
        if saved != self.model.config:
            changed = [
                f"{k}: {getattr(saved, k)} in the checkpoint, {getattr(self.model.config, k)} now"
                for k in dataclasses.asdict(saved)
                if getattr(saved, k) != getattr(self.model.config, k)
            ]
            raise ValueError("the checkpoint is from another model configuration: " + "; ".join(changed))
        load_checked(self.model, ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.elapsed_s, self.history = ckpt["step"], ckpt["elapsed_s"], list(ckpt["history"])
        self.lr = self.config.lr_at(max(self.step - 1, 0), self.elapsed_s)
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.batch_generator.set_state(ckpt["rng"]["batch"])

    # -- the loop ------------------------------------------------------------------------
    def next_batch(self):
        """This process's slice of the global batch: every process draws the same windows."""
        x, y = get_batch(self.train_data, self.model.config.block_size, self.config.batch_size, self.batch_generator)
        per = self.config.batch_size // self.world
        x, y = x[self.rank * per : (self.rank + 1) * per], y[self.rank * per : (self.rank + 1) * per]
        return x.to(self.device), y.to(self.device)

    def estimate_loss(self) -> dict:
        """Mean loss over eval_iters fixed batches of each split (the same batches every time)."""
        cfg = self.config
        return {
            split: estimate_loss(
                self.model, data, cfg.batch_size, cfg.eval_iters, cfg.seed + offset, self.device, self.autocast
            )
            for split, data, offset in (("train", self.train_data, 1), ("val", self.val_data, 2))
        }

    def evaluate_and_log(self, start: float) -> dict:
        """Evaluate, then record the row in the history (saved with the checkpoint)."""
        before = time.perf_counter()
        losses = self.estimate_loss()
        self.eval_seconds = time.perf_counter() - before
        self.elapsed_s = time.perf_counter() - start  # evaluation time included
        row = {
            "step": self.step,
            "train_loss": round(losses["train"], 4),
            "val_loss": round(losses["val"], 4),
            "lr": self.lr,
            "elapsed_s": round(self.elapsed_s, 2),
        }
        self.history.append(row)
        return row

    def write_log_row(self, log_file, row: dict) -> None:
        """One whole line per evaluation, written after the checkpoint that holds it."""
        if log_file is not None:
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()

    def open_log(self):
        """log.jsonl, rewritten from the history of the checkpoint before appending: after a
        crash it may end with rows of steps the checkpoint does not hold (those steps run
        again) or, in principle, half a line; neither survives a resume."""
        if self.out_dir is None or self.rank != 0:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "log.jsonl"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in self.history)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return open(path, "a")

    def train_step(self) -> float:
        """One optimiser step on this step's batch, in grad_accum micro-batches; returns the loss."""
        cfg = self.config
        x, y = self.next_batch()  # (B_local, T)
        micro = x.size(0) // cfg.grad_accum
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i in range(cfg.grad_accum):
            last = i == cfg.grad_accum - 1
            # DDP averages gradients over processes once per step, after the last micro-batch.
            sync = self.ddp.no_sync() if self.ddp is not None and not last else nullcontext()
            with sync:
                with self.autocast:
                    _, loss = self.forward_model(x[i * micro : (i + 1) * micro], y[i * micro : (i + 1) * micro])
                # Each micro-batch's loss is a mean over its positions: dividing by grad_accum
                # makes the summed gradients those of the mean over the whole batch.
                (loss / cfg.grad_accum).backward()
            total += loss.item() / cfg.grad_accum
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        return total

    def out_of_time(self) -> bool:
        """With max_seconds: stop when one more step and the final evaluation would not fit."""
        if self.config.max_seconds is None:
            return False
        step_s = self.elapsed_s / max(1, self.step) if self.step else 0.0
        return self.elapsed_s + step_s + self.eval_seconds >= self.config.max_seconds

    def train(self, progress: bool = True) -> list[dict]:
        """Train until max_iters steps (or until max_seconds are used up, the final
        evaluation included); evaluate every eval_interval steps and at the end; return
        the evaluation history."""
        from tqdm.auto import tqdm

        cfg = self.config
        log_file = self.open_log()
        total = None if cfg.schedule == "time" else cfg.max_iters
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not progress or self.rank != 0,
            desc="training",
            unit="step",
            mininterval=1.0,  # a redraw a second: a notebook gets a message per redraw
        )
        self.model.train()
        start = time.perf_counter() - self.elapsed_s
        try:
            while self.step < cfg.max_iters and not self.out_of_time():
                self.lr = cfg.lr_at(self.step, self.elapsed_s)
                for group in self.optimizer.param_groups:
                    group["lr"] = self.lr
                self.train_step()
                self.step += 1
                self.elapsed_s = time.perf_counter() - start
                bar.update(1)
                if self.step % cfg.eval_interval == 0 and self.step < cfg.max_iters:
                    row = self.evaluate_and_log(start)
                    bar.set_postfix(train=row["train_loss"], val=row["val_loss"])
                    self.save()
                    self.write_log_row(log_file, row)
            if not self.history or self.history[-1]["step"] != self.step:
                row = self.evaluate_and_log(start)
                bar.set_postfix(train=row["train_loss"], val=row["val_loss"])
                self.save()
                self.write_log_row(log_file, row)
            else:
                self.save()
        except KeyboardInterrupt:
            self.save()  # keep every finished step: --resume continues from here
            raise
        finally:
            bar.close()
            if log_file is not None:
                log_file.close()
        return self.history


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
) -> list[dict]:
    """What ``python -m gptlib train`` does; returns the evaluation history.

    recipe None means: with max_seconds and no max_iters, the time-budget recipe
    (``budget_recipe``); otherwise the default recipe. When resuming, the checkpoint's
    model and schedule continue, unless a recipe or preset is named (then it must match).
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
    if ckpt is not None:  # continue the same schedule, unless told otherwise below
        train_config = TrainConfig(**ckpt["train_config"])
    changes = {
        "max_iters": max_iters,
        "max_seconds": max_seconds,
        "seed": seed,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "eval_interval": eval_interval,
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
    try:
        return trainer.train(progress=progress)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
