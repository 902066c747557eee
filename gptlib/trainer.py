"""Chapter 9: the training loop.

``Trainer`` trains a GPT: each step draws a batch, computes the loss and its gradients,
clips them and lets AdamW update the weights; every ``eval_interval`` steps it measures
the loss on fixed batches of both splits (``estimate_loss``), writes a checkpoint and
appends a line to log.jsonl. Checkpoints are written atomically and hold everything
needed to continue exactly where training stopped: on a CPU, a resumed run gives the
same losses as one that never stopped.

A time budget (``max_seconds``) counts the seconds of ``TrainConfig.clock``: wall time, or
the CPU time of the process. ``elapsed_s`` holds those seconds; a checkpoint keeps it, and a
resumed run counts on from it (a new process's CPU clock starts near 0, hence the offset).

Ctrl-C stops the loop between two steps, never inside one: the step under way finishes
(with its evaluation and checkpoint if they are due), the trainer saves it, and raises
``TrainingInterrupted``.

Under ``torchrun`` the same code trains with DistributedDataParallel: every process
draws the same global batch and takes its own slice of it, so N processes with batch
B compute what one process computes with batch N * B.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from .checkpoint import load_checked, save_atomically
from .config import GPTConfig
from .dataset import get_batch
from .interrupt import CtrlCBetweenSteps, TrainingInterrupted
from .model import GPT
from .recipes import TrainConfig, make_optimizer


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
        x, y = get_batch(data, model.config.block_size, batch_size, generator)  # (B, T) each
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
        self.saved_step = None  # the step that out_dir/ckpt.pt holds, once known
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

    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "ckpt.pt" if self.out_dir is not None else None

    def save(self) -> None:
        if self.out_dir is None:
            return
        if self.rank == 0:
            save_atomically(self.state(), self.checkpoint_path())
        self.saved_step = self.step

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
    def clock(self) -> float:
        """Seconds on the clock that TrainConfig.clock names: time.perf_counter() (wall) or
        time.process_time() (cpu). Only differences of two readings mean anything."""
        return time.process_time() if self.config.clock == "cpu" else time.perf_counter()

    def next_batch(self):
        """This process's slice of the global batch: every process draws the same windows."""
        x, y = get_batch(self.train_data, self.model.config.block_size, self.config.batch_size, self.batch_generator)
        per = self.config.batch_size // self.world
        x, y = x[self.rank * per : (self.rank + 1) * per], y[self.rank * per : (self.rank + 1) * per]  # (B_local, T)
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
        before = self.clock()
        losses = self.estimate_loss()
        self.eval_seconds = self.clock() - before
        self.elapsed_s = self.clock() - start  # evaluation time included
        row = {
            "step": self.step,
            "train_loss": round(losses["train"], 4),
            "val_loss": round(losses["val"], 4),
            "lr": self.lr,
            "elapsed_s": round(self.elapsed_s, 2),
        }
        self.history.append(row)
        return row

    def evaluate_save_and_log(self, start: float, bar, log_file) -> None:
        row = self.evaluate_and_log(start)
        bar.set_postfix(train=row["train_loss"], val=row["val_loss"])
        self.save()
        # One whole line per evaluation, written after the checkpoint that holds it.
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
        step_s = self.elapsed_s / self.step if self.step else 0.0
        # Before the first evaluation is timed, estimate it: 2 x eval_iters forward passes of
        # a batch, and a forward pass is about a third of a step (forward and backward).
        eval_s = self.eval_seconds or step_s * 2 * self.config.eval_iters / 3
        return self.elapsed_s + step_s + eval_s >= self.config.max_seconds

    def stop_requested(self, ctrl_c: CtrlCBetweenSteps) -> bool:
        """Whether Ctrl-C asked to stop, in any process: all of them stop after the same step
        (DDP would wait forever for a process that went on alone)."""
        if self.world == 1:
            return ctrl_c.requested
        flag = torch.tensor([float(ctrl_c.requested)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def train(self, progress: bool = True) -> list[dict]:
        """Train until max_iters steps (or until max_seconds are used up, the final
        evaluation included); evaluate every eval_interval steps and at the end; return
        the evaluation history. Ctrl-C: see ``CtrlCBetweenSteps`` and ``TrainingInterrupted``."""
        from tqdm.auto import tqdm

        cfg = self.config
        with CtrlCBetweenSteps(announce=self.rank == 0) as ctrl_c:
            log_file = self.open_log()
            bar = tqdm(
                total=None if cfg.schedule == "time" else cfg.max_iters,
                initial=self.step,
                disable=not progress or self.rank != 0,
                desc="training",
                unit="step",
                mininterval=1.0,  # a redraw a second: a notebook gets a message per redraw
            )
            self.model.train()
            start = self.clock() - self.elapsed_s  # a resumed run counts on from its checkpoint
            try:
                stopped = False
                while self.step < cfg.max_iters and not self.out_of_time():
                    if self.stop_requested(ctrl_c):
                        stopped = True
                        break
                    self.lr = cfg.lr_at(self.step, self.elapsed_s)
                    for group in self.optimizer.param_groups:
                        group["lr"] = self.lr
                    self.train_step()
                    self.step += 1
                    self.elapsed_s = self.clock() - start
                    bar.update(1)
                    if self.step % cfg.eval_interval == 0 and self.step < cfg.max_iters:
                        self.evaluate_save_and_log(start, bar, log_file)
                if not stopped:
                    if not self.history or self.history[-1]["step"] != self.step:
                        self.evaluate_save_and_log(start, bar, log_file)
                    else:
                        self.save()
                    # A Ctrl-C during the final evaluation: all is saved, but it still ends as interrupted.
                    stopped = self.stop_requested(ctrl_c)
                if stopped:
                    if self.saved_step != self.step:
                        self.save()
                    raise TrainingInterrupted(self.step, self.saved_step, self.checkpoint_path())
            except TrainingInterrupted:
                raise
            except KeyboardInterrupt:
                # A second Ctrl-C lands anywhere, perhaps between the optimiser's update and
                # the step counter: nothing is saved, the checkpoint keeps the last step it holds.
                raise TrainingInterrupted(None, self.saved_step, self.checkpoint_path()) from None
            finally:
                bar.close()
                if log_file is not None:
                    log_file.close()
        return self.history
