"""The sweep behind ``BUDGET_LADDER``: which model shape and schedule learn fastest in a
given number of seconds on this machine.

    python benchmarks/budget_sweep.py --seconds 44 --target 1.866 [--seed 1337]

Each candidate trains the character-level model on the bundled Shakespeare for the same
time budget (the learning rate decayed over the budget, as ``--max-seconds`` does) and
reports the wall time at which its validation loss first reached ``--target`` (evaluation
included, as in ``time_to_loss.py``) and its last validation loss. Candidates run one
after the other in this process, so they share the machine's state.
"""

import argparse
import dataclasses

import torch
from common import machine

from gptlib import GPT, GPTConfig
from gptlib.checkpoint import encode_text
from gptlib.dataset import read_text, shakespeare_path, train_val_split
from gptlib.train import Trainer, budget_recipe

CANDIDATES = {
    # name: (model shape, schedule); 4 heads, no dropout, no biases unless given
    "3L128 ctx64 b12 lr5e-3": (dict(n_layer=3, n_embd=128, block_size=64), dict(batch_size=12, learning_rate=5e-3)),
    "2L128 ctx64 b16 lr6e-3": (dict(n_layer=2, n_embd=128, block_size=64), dict(batch_size=16, learning_rate=6e-3)),
    "2L128 ctx64 b24 lr8e-3": (dict(n_layer=2, n_embd=128, block_size=64), dict(batch_size=24, learning_rate=8e-3)),
    "2L96 ctx64 b24 lr8e-3": (dict(n_layer=2, n_embd=96, block_size=64), dict(batch_size=24, learning_rate=8e-3)),
    "2L96 ctx64 b24 lr6e-3": (dict(n_layer=2, n_embd=96, block_size=64), dict(batch_size=24, learning_rate=6e-3)),
    "2L96 ctx64 b32 lr1e-2": (dict(n_layer=2, n_embd=96, block_size=64), dict(batch_size=32, learning_rate=1e-2)),
    "2L64 ctx64 b32 lr1e-2": (dict(n_layer=2, n_embd=64, block_size=64), dict(batch_size=32, learning_rate=1e-2)),
    "3L96 ctx64 b16 lr6e-3": (dict(n_layer=3, n_embd=96, block_size=64), dict(batch_size=16, learning_rate=6e-3)),
    "3L128 ctx64 b24 lr5e-3": (dict(n_layer=3, n_embd=128, block_size=64), dict(batch_size=24, learning_rate=5e-3)),
    "3L128 ctx128 b16 lr5e-3": (dict(n_layer=3, n_embd=128, block_size=128), dict(batch_size=16, learning_rate=5e-3)),
    "4L128 ctx128 b24 lr4e-3": (dict(n_layer=4, n_embd=128, block_size=128), dict(batch_size=24, learning_rate=4e-3)),
    "3L192 ctx128 b16 lr3e-3": (
        dict(n_layer=3, n_embd=192, n_head=6, block_size=128),
        dict(batch_size=16, learning_rate=3e-3),
    ),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--target", type=float, required=True, help="the validation loss to reach")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--only", nargs="*", help="names of candidates to run (default: all)")
    parser.add_argument("--eval-interval", type=int, default=100)
    args = parser.parse_args()
    print(machine())
    text = read_text(shakespeare_path())
    ids, spec = encode_text(text, "char")
    train_data, val_data = train_val_split(ids)
    for name, (shape, schedule) in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        shape = {"n_head": 4, "dropout": 0.0, "bias": False, **shape}
        # budget_recipe's schedule for this budget, with the candidate's settings in place of its own
        config = dataclasses.replace(
            budget_recipe(args.seconds)[1],
            warmup_iters=20,
            eval_interval=args.eval_interval,
            seed=args.seed,
            **schedule,
        )
        torch.manual_seed(config.seed)
        model = GPT(GPTConfig(vocab_size=len(spec["chars"]), **shape))
        history = Trainer(model, train_data, val_data, config).train(progress=False)
        hit = next((row for row in history if row["val_loss"] <= args.target), None)
        reached = f"reached {args.target} at {hit['elapsed_s']:.1f} s" if hit else f"did not reach {args.target}"
        last = history[-1]
        print(f"{name}: {last['step']} steps, val {last['val_loss']:.4f} in {last['elapsed_s']:.1f} s; {reached}")


if __name__ == "__main__":
    main()
