"""What each piece buys: train the same small character model with each piece of GPT-2's
block removed or changed (gptlib.ablation), and log the held-out loss. Chapter 8 reads
the log that ships in gptlib/data/ablation/.

    OMP_NUM_THREADS=1 python scripts/ablate_pieces.py             # all changes, 3 seeds
    python scripts/ablate_pieces.py --seeds 0 --steps 20 --out /tmp/ablation   # a quick try

Every run has the same shape, data, batches (for a seed), learning-rate schedule and
number of steps; only the change differs. With the same seed, the weights that two runs
share also start equal. A run that is already in the log is skipped, so the script can
be stopped and started again; the runs go seed by seed, so a stopped run still leaves
whole seeds behind.

Each line of log.jsonl is one run: the change, the seed, the parameter count, the
trainer's evaluations along the way (random windows) and, at the end, the loss over the
whole held-out split (the last 10% of the corpus, in consecutive windows).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from gptlib import GPTConfig
from gptlib.ablation import CHANGES, ablated_gpt
from gptlib.dataset import read_text, shakespeare_path, train_val_split
from gptlib.tokenizer import CharTokenizer
from gptlib.train import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bundled_model import split_loss  # noqa: E402 - a script beside this one

OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "ablation"
SHAPE = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False)


def corpus() -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """The bundled Shakespeare's character tokenizer, and its first 90% and last 10% as ids."""
    text = read_text(shakespeare_path())
    tok = CharTokenizer(text)
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(text), dtype=torch.long))
    return tok, train_ids, val_ids


def train_config(steps: int, seed: int) -> TrainConfig:
    return TrainConfig(
        batch_size=32,
        max_iters=steps,
        learning_rate=3e-3,
        min_lr=1e-4,
        warmup_iters=min(100, steps // 10),
        eval_interval=max(1, steps // 10),
        eval_iters=10,
        seed=seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--changes", nargs="+", default=list(CHANGES), choices=CHANGES)
    args = parser.parse_args()
    torch.set_num_threads(1)

    tok, train_ids, val_ids = corpus()
    config = GPTConfig(vocab_size=tok.vocab_size, **SHAPE)

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "log.jsonl"
    done = set()
    if log.exists():
        done = {(r["change"], r["seed"]) for r in map(json.loads, log.read_text().splitlines())}
    for seed in args.seeds:
        for change in args.changes:
            if (change, seed) in done:
                continue
            torch.manual_seed(seed)
            model = ablated_gpt(config, change)
            trainer = Trainer(model, train_ids, val_ids, train_config(args.steps, seed))
            start = time.perf_counter()
            history = trainer.train(progress=False)
            seconds = time.perf_counter() - start
            val = split_loss(model, val_ids)
            row = {
                "change": change,
                "seed": seed,
                "steps": args.steps,
                "parameters": model.num_parameters(),
                "val_loss": round(val, 4) if math.isfinite(val) else None,  # None: the run diverged
                "seconds": round(seconds),
                "history": [{k: r[k] for k in ("step", "train_loss", "val_loss")} for r in history],
                "shape": SHAPE,
                "threads": torch.get_num_threads(),
            }
            with open(log, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"seed {seed} {change:24s} val {row['val_loss']}  {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
