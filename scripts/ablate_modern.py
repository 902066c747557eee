"""What each modern change buys: train chapter 8's small character model with GPT-2's
choices, with each of the four changes that lead to today's open models (rotary positions,
RMSNorm, SwiGLU, grouped-query attention; gptlib.ablation.MODERN_CHANGES), and with all
four together, each for the same CPU time, and log the held-out loss. The log that ships
in gptlib/data/modern/ is read by gptlib.ablation.load_log("modern").

    OMP_NUM_THREADS=1 python scripts/ablate_modern.py                       # 6 configs x 3 seeds
    OMP_NUM_THREADS=1 python scripts/ablate_modern.py --shard 0/2 &         # the same, in two
    OMP_NUM_THREADS=1 python scripts/ablate_modern.py --shard 1/2 &         #   processes
    python scripts/ablate_modern.py --seeds 0 --seconds 5 --out /tmp/modern  # a quick try

Every run has the same shape, data, batches (for a seed: a run that gets more steps draws
further along the same sequence), learning rates and CPU-time budget; only the change
differs. The learning rate warms up for 100 steps, then its cosine decays over the budget
(TrainConfig(schedule="time", clock="cpu")): a change that makes steps cheaper gets more of
them. The budget counts this process's CPU time on one thread, so other jobs on the machine
do not shorten a run (they can still make each step slower, by sharing caches and memory).

A run that is already in the log is skipped, so the script can be stopped and started
again. With --shard i/n the process takes a share of the runs (i = 0 .. n - 1); n processes
write one log, each line appended under a lock.

Each line of log.jsonl is one run: the config and the GPTConfig options it sets, the seed,
the parameter count, the steps done, CPU (and wall) seconds, the trainer's evaluations along
the way (random windows) and, at the end, the loss over the whole held-out split (the last
10% of the corpus, in consecutive windows; not counted in the budget).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import sys
import time
from pathlib import Path

import torch

from gptlib import GPT, GPTConfig
from gptlib.ablation import MODERN_CHANGES, modern_config
from gptlib.train import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablate_pieces import SHAPE, corpus  # noqa: E402 - chapter 8's model, from the script beside this one
from export_bundled_model import split_loss  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "modern"


def train_config(seconds: float, seed: int) -> TrainConfig:
    """Chapter 8's recipe (batch 32, AdamW 3e-3, 100 warmup steps, cosine to 1e-4), with the
    cosine over a CPU-time budget instead of 1,000 steps."""
    return TrainConfig(
        batch_size=32,
        max_iters=10**9,  # the budget decides
        learning_rate=3e-3,
        min_lr=1e-4,
        warmup_iters=100,
        eval_interval=100,
        eval_iters=10,
        seed=seed,
        max_seconds=seconds,
        schedule="time",
        clock="cpu",
    )


def shard(text: str) -> tuple[int, int]:
    try:
        i, n = map(int, text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/n, such as 0/2; got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard i/n needs 0 <= i < n; got {text!r}")
    return i, n


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--seconds must be > 0, got {text}")
    return value


def done_runs(log: Path) -> set:
    if not log.exists():
        return set()
    return {(r["config"], r["seed"]) for r in map(json.loads, log.read_text().splitlines())}


def append(log: Path, row: dict) -> None:
    """One whole line, appended under a lock: two processes may share the log."""
    with open(log, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(row) + "\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seconds", type=positive_seconds, default=120.0, help="CPU seconds per run (default 120)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(MODERN_CHANGES), choices=MODERN_CHANGES)
    parser.add_argument("--shard", type=shard, default=(0, 1), help="i/n: this process's share of the runs")
    args = parser.parse_args()
    torch.set_num_threads(1)

    tok, train_ids, val_ids = corpus()
    base = GPTConfig(vocab_size=tok.vocab_size, **SHAPE)

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "log.jsonl"
    # Seed by seed. Shard i takes the runs whose config and seed positions add up to i
    # (mod n): with two processes each config runs in both, not always beside the same one.
    i, n = args.shard
    runs = [
        (name, seed) for s, seed in enumerate(args.seeds) for c, name in enumerate(args.configs) if (c + s) % n == i
    ]
    for name, seed in runs:
        if (name, seed) in done_runs(log):  # read again: another process may have added runs
            continue
        config = modern_config(base, name)
        torch.manual_seed(seed)
        model = GPT(config)
        trainer = Trainer(model, train_ids, val_ids, train_config(args.seconds, seed))
        wall = time.perf_counter()
        history = trainer.train(progress=False)
        wall = time.perf_counter() - wall
        val = split_loss(model, val_ids)
        row = {
            "config": name,
            "seed": seed,
            "options": config.non_gpt2_options(),
            "parameters": model.num_parameters(),
            "steps": trainer.step,
            "cpu_seconds": round(trainer.elapsed_s, 2),
            "max_seconds": args.seconds,
            "wall_seconds": round(wall, 1),
            "val_loss": round(val, 4) if math.isfinite(val) else None,  # None: the run diverged
            "history": [{k: r[k] for k in ("step", "train_loss", "val_loss", "lr", "elapsed_s")} for r in history],
            "shape": SHAPE,
            "threads": torch.get_num_threads(),
        }
        append(log, row)
        print(
            f"seed {seed} {name:8s} {trainer.step:5d} steps in {trainer.elapsed_s:.0f} CPU s "
            f"({wall:.0f} s wall)  val {row['val_loss']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
