"""Time to loss: training on a time budget against nanoGPT's README CPU recipe, side by side.

    python benchmarks/time_to_loss.py [--seeds 1337 1 2] [--fraction 0.36] [--three-minutes]

For each seed, both train a character-level model on the bundled Shakespeare, one after
the other in this process. The baseline (``--recipe nanogpt-cpu``) runs its 2,000 steps;
its final validation loss is the target and its wall time the yardstick. Then gptlib
trains with only a time budget, ``--max-seconds`` = fraction x the baseline's wall time
(``budget_recipe``: the model sized for the budget, the learning rate decayed over it).
The number reported is its wall time (evaluation included) until its first evaluation at
or below the target, divided by the baseline's wall time.

With --three-minutes it also trains on a 180 s budget and reports the best validation loss.
"""

import argparse
import tempfile

from common import machine

from gptlib.dataset import shakespeare_path
from gptlib.train import run_training


def train(out, **kw):
    return run_training(shakespeare_path(), out=out, progress=False, **kw)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    parser.add_argument("--fraction", type=float, default=0.36, help="the budget, as a fraction of the baseline's time")
    parser.add_argument("--three-minutes", action="store_true")
    parser.add_argument("--skip-ratio", action="store_true", help="only the 3-minute run")
    args = parser.parse_args()
    print(machine())
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [] if args.skip_ratio else args.seeds:
            base = train(f"{tmp}/base{seed}", recipe="nanogpt-cpu", seed=seed)
            target, base_time = base[-1]["val_loss"], base[-1]["elapsed_s"]
            budget = args.fraction * base_time
            print(f"seed {seed}: nanogpt-cpu {base[-1]['step']} steps, val loss {target:.4f} in {base_time:.1f} s")
            fast = train(f"{tmp}/fast{seed}", max_seconds=budget, seed=seed)
            last = fast[-1]
            print(
                f"seed {seed}: --max-seconds {budget:.1f}: {last['step']} steps, val loss {last['val_loss']:.4f} "
                f"in {last['elapsed_s']:.1f} s"
            )
            hit = next((row for row in fast if row["val_loss"] <= target), None)
            if hit is None:
                print(f"seed {seed}: did not reach {target:.4f} within the budget: no ratio")
                ratios.append(None)
                continue
            ratios.append(hit["elapsed_s"] / base_time)
            print(
                f"seed {seed}: reached {hit['val_loss']:.4f} <= {target:.4f} at step {hit['step']}, "
                f"{hit['elapsed_s']:.1f} s: time-to-loss ratio {ratios[-1]:.2f}  (goal <= 0.4)"
            )
        if ratios:
            shown = ", ".join("none" if r is None else f"{r:.2f}" for r in ratios)
            print(f"time-to-loss ratios for seeds {args.seeds}: {shown}")

        if args.three_minutes:
            long = train(f"{tmp}/long", max_seconds=180)
            best = min(long, key=lambda row: row["val_loss"])
            print(
                f"--max-seconds 180: {long[-1]['step']} steps in {long[-1]['elapsed_s']:.1f} s, "
                f"best val loss {best['val_loss']:.4f} at step {best['step']}  (aim <= 1.60)"
            )


if __name__ == "__main__":
    main()
