"""Train a small character model on the bundled Shakespeare alone, with a longer context
and more training than the bundled model had, and watch for induction heads on the way.

    python scripts/train_long_context.py            # writes gptlib/data/long_context/
    python scripts/train_long_context.py --out DIR  # anywhere else

The bundled model (4 layers, context 128, 4,500 steps) does not copy. This run asks
whether a longer context (256 characters, nanoGPT's setting for character-level
Shakespeare) and more training make induction heads form on plain text, with no
synthetic repeats in the data: every training window is a window of the training 90% of
``shakespeare.txt``.

Training is gptlib's own Trainer with a fixed seed, run in stretches of ``probe_every``
steps; the learning-rate schedule is fixed for the whole run (lr_decay_iters), so the
stretches train exactly as one run would, and on one thread the run is deterministic.
After each stretch the script probes the model, without gradients and in eval mode, on
sequences of its own fixed generators and on fixed windows, so the probes change nothing
in the training:

- **the unambiguous copy probe**: ``probe_period`` different characters (a random
  choice out of the 83, in random order; none occurs twice inside one copy), then the
  same string again. Each character of the second copy has exactly one earlier
  occurrence, so an induction head has exactly one place to look: the loss on the first
  and on the second copy, every head's previous-token score and every head's induction
  score (attention from t to t - period + 1);
- **repeated held-out text**: windows of ``text_period`` characters of the held-out 10%
  (cut anywhere, mid-word included), each followed by the same characters again:
  copying on text;
- **the in-context learning score** of Olsson et al. (2022), who take the loss on the
  500th token minus the loss on the 50th: here the mean loss with ``icl_late`` characters
  of context minus the mean loss with ``icl_early`` (the last ten positions of the 256,
  against ten ending at the 50th), on ``icl_windows`` windows of the held-out 10% spread
  evenly over it; also the mean loss in 16 bands of context length.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gptlib import GPT, GPTConfig
from gptlib.dataset import read_text, shakespeare_path, train_val_split
from gptlib.interpret import (
    batch_attention,
    in_context_score,
    induction_scores,
    loss_by_context,
    previous_token_scores,
    repeated_distinct_tokens,
    spread_windows,
)
from gptlib.tokenizer import CharTokenizer
from gptlib.train import TrainConfig, Trainer

OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "long_context"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the run: the model, the training, the probes."""

    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 256
    batch_size: int = 16
    iters: int = 10_000
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup: int = 200
    seed: int = 1337
    probe_every: int = 250
    probe_period: int = 50  # the copy probe: this many different characters, then the same again
    probe_count: int = 32  # probe strings (and held-out lines) per probe
    text_period: int = 100  # the held-out line that is repeated
    icl_early: tuple[int, int] = (41, 50)  # context lengths (characters), inclusive
    icl_late: tuple[int, int] = (247, 256)
    icl_windows: int = 512

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            vocab_size=vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            dropout=0.0,
            bias=False,
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            batch_size=self.batch_size,
            max_iters=self.iters,
            learning_rate=self.lr,
            min_lr=self.min_lr,
            warmup_iters=self.warmup,
            lr_decay_iters=self.iters,  # the same schedule however the run is cut into stretches
            beta2=0.99,
            weight_decay=0.1,
            eval_interval=10**9,  # the trainer evaluates at the end of each stretch only
            eval_iters=10,
            seed=self.seed,
        )

    def check(self, vocab_size: int) -> None:
        """Clear errors for settings the probes cannot use."""
        if self.n_layer < 2:
            raise ValueError(f"an induction head needs a layer after the first: n_layer >= 2, got {self.n_layer}")
        if not 2 <= self.probe_period <= vocab_size:
            raise ValueError(f"probe_period must be 2..{vocab_size} (different characters), got {self.probe_period}")
        for name, period in (("probe_period", self.probe_period), ("text_period", self.text_period)):
            if 2 * period > self.block_size:
                raise ValueError(f"{name} {period} twice does not fit in block_size {self.block_size}")
        for name, (lo, hi) in (("icl_early", self.icl_early), ("icl_late", self.icl_late)):
            if not 1 <= lo <= hi <= self.block_size:
                raise ValueError(f"{name} ({lo}, {hi}) needs 1 <= first <= last <= block_size {self.block_size}")
        if self.block_size % 16:
            raise ValueError(f"block_size {self.block_size} must be a multiple of 16 (the log's 16 context bands)")


def distinct_repeats(vocab_size: int, period: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """[count, 2 * period]: each row ``period`` different token ids in random order (a
    random choice out of vocab_size), then the same ids again."""
    return torch.stack([repeated_distinct_tokens(vocab_size, period, 2, generator) for _ in range(count)])


def copy_losses(model: GPT, seqs: torch.Tensor, period: int) -> tuple[float, float]:
    """Mean loss on the targets inside the first copy and inside the second copy (from its
    second character on, the ones copying can predict) of seqs [B, 2 * period]."""
    losses = loss_by_context(model, seqs)  # [B, 2 * period - 1]: column k predicts seqs[:, k + 1]
    return losses[:, : period - 1].mean().item(), losses[:, period:].mean().item()


def probe(model: GPT, recipe: Recipe, copies: torch.Tensor, lines: torch.Tensor, held: torch.Tensor) -> dict:
    """One row of the log: copy losses, head scores, the in-context learning score."""
    P, Q = recipe.probe_period, recipe.text_period
    first, second = copy_losses(model, copies, P)
    text_first, text_second = copy_losses(model, lines, Q)
    patterns = batch_attention(model, copies)  # [B, L, H, 2P, 2P]
    prev = torch.stack([previous_token_scores(p) for p in patterns]).mean(0)  # [L, H]
    ind = torch.stack([induction_scores(p, P) for p in patterns]).mean(0)  # [L, H]
    losses = loss_by_context(model, held)  # [W, block_size]
    icl, icl_se = in_context_score(losses, recipe.icl_early, recipe.icl_late)
    bands = losses.mean(0).view(16, -1).mean(1)  # [16]: mean loss in 16 bands of context length
    return {
        "first_copy_loss": round(first, 4),
        "second_copy_loss": round(second, 4),
        "text_first_copy_loss": round(text_first, 4),
        "text_second_copy_loss": round(text_second, 4),
        "prev_token_score_l0": round(prev[0].max().item(), 4),
        "induction_score_later": round(ind[1:].max().item(), 4),  # the best head of layers 1 and up
        "icl_score": round(icl, 4),
        "icl_se": round(icl_se, 4),
        "prev_token_scores": [[round(x, 3) for x in row] for row in prev.tolist()],  # [L][H]
        "induction_scores": [[round(x, 3) for x in row] for row in ind.tolist()],  # [L][H]
        "loss_by_context_band": [round(x, 4) for x in bands.tolist()],
    }


def probe_inputs(recipe: Recipe, vocab_size: int, val: torch.Tensor):
    """The fixed inputs of every probe: copy strings, repeated held-out lines, held-out windows."""
    g = torch.Generator().manual_seed(1234)  # the probes' own generator, not the training's
    copies = distinct_repeats(vocab_size, recipe.probe_period, recipe.probe_count, g)
    lines = spread_windows(val, recipe.text_period, recipe.probe_count).repeat(1, 2)  # [count, 2 * text_period]
    held = spread_windows(val, recipe.block_size + 1, recipe.icl_windows)
    return copies, lines, held


def parse_recipe(argv=None) -> tuple[argparse.Namespace, Recipe]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--snapshot-every", type=int, default=0, help="also keep the model every N steps (0: never)")
    for field in dataclasses.fields(Recipe):  # every setting of the recipe can be changed
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, tuple):
            parser.add_argument(flag, type=int, nargs=2, default=field.default, help="first and last")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)}
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return args, Recipe(**settings)


def run(recipe: Recipe, out: Path | None, text: str | None = None, snapshot_every: int = 0) -> tuple[GPT, list[dict]]:
    """Train and probe; with out, write the model and the log there after every stretch
    (and with snapshot_every, a copy of the model every that many steps in out/snapshots)."""
    text = read_text(shakespeare_path()) if text is None else text
    tokenizer = CharTokenizer(text)
    recipe.check(tokenizer.vocab_size)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train, val = train_val_split(ids)
    copies, lines, held = probe_inputs(recipe, tokenizer.vocab_size, val)
    config = recipe.train_config()
    torch.manual_seed(config.seed)
    trainer = Trainer(GPT(recipe.model_config(tokenizer.vocab_size)), train, val, config)
    wall, cpu = time.perf_counter(), time.process_time()
    log = [{"step": 0, **probe(trainer.model, recipe, copies, lines, held)}]
    while trainer.step < config.max_iters:
        trainer.config = dataclasses.replace(config, max_iters=min(trainer.step + recipe.probe_every, config.max_iters))
        row = trainer.train(progress=False)[-1]
        row = {**row, **probe(trainer.model, recipe, copies, lines, held)}
        row.update(wall_s=round(time.perf_counter() - wall, 1), cpu_s=round(time.process_time() - cpu, 1))
        log.append(row)
        print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), flush=True)
        if out is not None:
            save(trainer.model, recipe, log, out)
            if snapshot_every and trainer.step % snapshot_every == 0:
                save(trainer.model, recipe, log, out / "snapshots" / f"step{trainer.step:06d}")
    return trainer.model, log


def save(model: GPT, recipe: Recipe, log: list[dict], out: Path) -> None:
    """out/model.safetensors (the recipe in its metadata), out/recipe.json and out/log.jsonl."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied: stored once
    meta = {"config": json.dumps(dataclasses.asdict(model.config)), "recipe": json.dumps(dataclasses.asdict(recipe))}
    save_file(state, str(out / "model.safetensors"), metadata=meta)
    (out / "recipe.json").write_text(json.dumps(dataclasses.asdict(recipe), indent=1) + "\n")
    tmp = out / "log.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row) + "\n" for row in log))
    tmp.replace(out / "log.jsonl")


def main() -> None:
    args, recipe = parse_recipe()
    torch.set_num_threads(1)
    run(recipe, args.out, snapshot_every=args.snapshot_every)
    print(f"wrote {args.out / 'model.safetensors'} and {args.out / 'log.jsonl'}", flush=True)


if __name__ == "__main__":
    main()
