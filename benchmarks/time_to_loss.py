"""Time to loss: the tuned CPU recipe against nanoGPT's README CPU recipe, side by side.

    python benchmarks/time_to_loss.py [--three-minutes]

Both recipes train a character-level model on the bundled Shakespeare, one after the
other in this process. The baseline runs its 2,000 steps; its final validation loss is
the target. The number reported is the tuned recipe's wall time (evaluation included)
until its first evaluation at or below that target, divided by the baseline's wall time.
With --three-minutes it also trains the tuned recipe with its schedule stretched to
fill 180 s and reports the best validation loss it reaches.
"""

import argparse
import tempfile

from common import machine

from gptlib.dataset import shakespeare_path
from gptlib.train import run_training


def train(recipe, out, **kw):
    return run_training(shakespeare_path(), recipe=recipe, out=out, progress=False, **kw)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--three-minutes", action="store_true")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        base = train("nanogpt-cpu", f"{tmp}/base")
        target, base_time = base[-1]["val_loss"], base[-1]["elapsed_s"]
        print(f"nanogpt-cpu: {base[-1]['step']} steps, val loss {target:.4f} in {base_time:.1f} s")

        tuned = train("tuned-cpu", f"{tmp}/tuned")
        hit = next((row for row in tuned if row["val_loss"] <= target), None)
        print(
            f"tuned-cpu:   {tuned[-1]['step']} steps, val loss {tuned[-1]['val_loss']:.4f} in {tuned[-1]['elapsed_s']:.1f} s"
        )
        if hit is None:
            print(f"tuned-cpu did not reach {target:.4f}: no ratio")
        else:
            print(
                f"tuned-cpu reached val loss {hit['val_loss']:.4f} <= {target:.4f} at step {hit['step']}, "
                f"{hit['elapsed_s']:.1f} s"
            )
            print(f"time-to-loss ratio (tuned / baseline): {hit['elapsed_s'] / base_time:.2f}  (goal <= 0.5)")

        if args.three_minutes:
            steps_per_s = tuned[-1]["step"] / tuned[-1]["elapsed_s"]
            steps = int(steps_per_s * 170)  # the schedule fills the budget; max_seconds is the hard stop
            long = train("tuned-cpu", f"{tmp}/long", max_iters=steps, max_seconds=180)
            best = min(long, key=lambda row: row["val_loss"])
            print(
                f"tuned-cpu in 3 minutes: {long[-1]['step']} steps in {long[-1]['elapsed_s']:.1f} s, "
                f"best val loss {best['val_loss']:.4f} at step {best['step']}"
            )


if __name__ == "__main__":
    main()
