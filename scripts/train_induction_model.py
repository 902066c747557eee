"""Train the small 2-layer model of the chapter "Inside the trained model", in which an
induction head forms, and ship it with its training log.

    python scripts/train_induction_model.py            # writes gptlib/data/induction/
    python scripts/train_induction_model.py --out DIR  # anywhere else

The data are a stream of episodes of two kinds, in equal shares: a passage of the
bundled Shakespeare (20 to 100 characters, from anywhere in the file: the last 10%, which
the other models hold out, included), or a string of random characters (6 to 24)
followed at once by the same string again. The passages pay for what a language model
learns anyway, a previous-token head among it; only copying predicts the repeats.
Training windows start anywhere in the stream, so where a repeat starts and how far back
its first copy lies vary from window to window: position alone cannot predict the copy,
only the content can (find the earlier occurrence of the current character, and predict
the one that followed it).

The model shipped before used made-up tokens, with made-up "sentences" in place of the
passages (``episode_stream``; ``--text-share 0`` with ``--branching`` above 0 brings them
back). It copied, but its layer-1 heads attended two places after the earlier
occurrence, not one.

Training is gptlib's own Trainer, run in short stretches so that after each stretch the
script can measure what the chapter plots: the loss on the second copy of a repeated
random sequence (against the first), the best induction score of a layer-1 head, and,
with text episodes, the in-context learning score on held-out Shakespeare (the loss with
55 to 64 characters of context minus the loss with 6 to 10, on 512 windows spread
evenly over the held-out 10%). The probes run without gradients, in eval mode, on
sequences drawn by their own generator or on fixed windows, so they change nothing in
the training. The learning-rate schedule is fixed for the whole run (lr_decay_iters), so
running in stretches trains exactly as one run would.
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
from gptlib.interpret import (
    in_context_score,
    induction_scores,
    loss_by_context,
    per_position_loss,
    previous_token_scores,
    repeated_random_tokens,
    run_with_cache,
    spread_windows,
)
from gptlib.train import TrainConfig, Trainer

OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "induction"
ICL_EARLY, ICL_LATE = (6, 10), (55, 64)  # context lengths (characters) of the in-context learning score
ICL_WINDOWS = 512


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the shipped model: the data, the model, the training."""

    vocab: int = 83  # with text episodes: the bundled corpus's characters
    segment: tuple[int, int] = (6, 24)  # the repeated segment's length, drawn uniformly from this range
    repeats: int = 2  # each segment appears between 2 and this many times in a row
    branching: int = 0  # tokens allowed two places after each token in a "sentence" (0: no sentences)
    sentences: float = 0.0  # with a table, the share of episodes that are sentences
    text_share: float = 0.5  # share of episodes that are Shakespeare passages instead (vocab: the corpus's characters)
    text_length: tuple[int, int] = (20, 100)  # a passage's length, drawn uniformly from this range
    probe_period: int = 16  # the probe: this many random tokens, then the same again
    block_size: int = 64
    n_head: int = 4
    n_embd: int = 128
    batch_size: int = 64
    iters: int = 5000
    lr: float = 3e-3
    min_lr: float = 3e-3
    warmup: int = 100

    def model_config(self) -> GPTConfig:
        return GPTConfig(
            vocab_size=self.vocab,
            block_size=self.block_size,
            n_layer=2,
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
            lr_decay_iters=self.iters,
            weight_decay=0.0,
            eval_interval=10_000,
            eval_iters=10,
            seed=0,
        )


def next_token_table(recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    """[vocab, branching]: for each token a, the few tokens that may come two places after it."""
    return torch.randint(recipe.vocab, (recipe.vocab, recipe.branching), generator=generator)


def episode_stream(recipe: Recipe, n_tokens: int, generator: torch.Generator, table: torch.Tensor | None):
    """About n_tokens ids, in episodes of two kinds (with a table, a share ``sentences`` of them
    sentences; without one, none):

    - a random segment (uniform tokens) repeated, 2 to ``repeats`` times in a row: only
      copying predicts the repeats;
    - with a table, a "sentence" that follows it: each token is one of the ``branching``
      tokens the table allows two places after the token before the previous one. As in
      real text, knowing the previous token helps to predict the next one, which is what
      makes a previous-token head worth learning on its own."""
    parts, total = [], 0
    low, high = recipe.segment
    while total < n_tokens:
        n = int(torch.randint(low, high + 1, (1,), generator=generator))
        r = int(torch.randint(2, recipe.repeats + 1, (1,), generator=generator))
        segment = torch.randint(recipe.vocab, (n,), generator=generator)
        sentence = table is not None and bool(torch.rand(1, generator=generator) < recipe.sentences)
        if sentence:
            pick = torch.randint(recipe.branching, (n,), generator=generator)
            for i in range(2, n):
                segment[i] = table[segment[i - 2], pick[i]]
            r = 1
        parts.append(segment.repeat(r))
        total += len(parts[-1])
    return torch.cat(parts)


def corpus_ids(recipe: Recipe) -> torch.Tensor:
    """The bundled Shakespeare as character ids; ``vocab`` must be its number of characters."""
    from gptlib.dataset import read_text, shakespeare_path
    from gptlib.tokenizer import CharTokenizer

    text = read_text(shakespeare_path())
    tokenizer = CharTokenizer(text)
    if recipe.vocab != tokenizer.vocab_size:
        raise ValueError(
            f"text episodes need vocab = {tokenizer.vocab_size} (the corpus's characters), got {recipe.vocab}"
        )
    return torch.tensor(tokenizer.encode(text))


def text_episode_stream(recipe: Recipe, ids: torch.Tensor, n_tokens: int, generator: torch.Generator) -> torch.Tensor:
    """About n_tokens character ids, in episodes of two kinds: a passage of the corpus ids
    (a share ``text_share`` of them), or a random segment followed by the same segment
    again. Real text pays for a previous-token head on its own, as in a language model;
    the repeats pay for copying."""
    parts, total = [], 0
    while total < n_tokens:
        if float(torch.rand(1, generator=generator)) < recipe.text_share:
            n = int(torch.randint(recipe.text_length[0], recipe.text_length[1] + 1, (1,), generator=generator))
            start = int(torch.randint(len(ids) - n, (1,), generator=generator))
            parts.append(ids[start : start + n])
        else:
            n = int(torch.randint(recipe.segment[0], recipe.segment[1] + 1, (1,), generator=generator))
            parts.append(torch.randint(recipe.vocab, (n,), generator=generator).repeat(2))
        total += len(parts[-1])
    return torch.cat(parts)


def held_out_windows(recipe: Recipe, ids: torch.Tensor) -> torch.Tensor:
    """[ICL_WINDOWS, block_size + 1]: windows of the held-out 10% of the corpus ids (the
    split every chapter uses), spread evenly over it."""
    from gptlib.dataset import train_val_split

    return spread_windows(train_val_split(ids)[1], recipe.block_size + 1, ICL_WINDOWS)


def probe(model: GPT, recipe: Recipe, held: torch.Tensor | None = None, n: int = 32) -> dict:
    """Loss on the first and on the second copy of repeated random sequences, and the best
    previous-token score (layer 0) and induction score (layer 1), averaged over n probes;
    with held-out windows, the in-context learning score and its standard error."""
    g = torch.Generator().manual_seed(1234)
    P = recipe.probe_period
    first, second, prev, ind, later = [], [], [], [], []
    for _ in range(n):
        seq = repeated_random_tokens(recipe.vocab, P, 2, generator=g)  # [2P]
        rec = run_with_cache(model, seq)
        losses = per_position_loss(rec.logits[:-1], seq[1:])  # [2P - 1]: loss of predicting seq[t + 1]
        first.append(losses[: P - 1].mean())  # targets inside the first copy
        second.append(losses[P:].mean())  # targets inside the second copy, from its 2nd token on
        prev.append(previous_token_scores(rec.attention))
        ind.append(induction_scores(rec.attention, P))
        # attention from t to t - P + 2, two places after the earlier occurrence (t >= P)
        later.append(rec.attention.diagonal(offset=-(P - 2), dim1=-2, dim2=-1)[..., 2:].mean(-1))
    prev, ind, later = torch.stack(prev).mean(0), torch.stack(ind).mean(0), torch.stack(later).mean(0)  # [L, H]
    row = {
        "first_copy_loss": round(torch.stack(first).mean().item(), 4),
        "second_copy_loss": round(torch.stack(second).mean().item(), 4),
        "prev_token_score_l0": round(prev[0].max().item(), 4),
        "induction_score_l1": round(ind[1].max().item(), 4),
        "two_after_score_l1": round(later[1].max().item(), 4),
    }
    if held is not None:
        score, se = in_context_score(loss_by_context(model, held), ICL_EARLY, ICL_LATE)
        row.update(icl_score=round(score, 4), icl_se=round(se, 4))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--stretch", type=int, default=200, help="steps between two probes")
    parser.add_argument("--snapshots", action="store_true", help="save the model after every stretch")
    for field in dataclasses.fields(Recipe):  # every setting of the recipe can be changed, to search
        flag = "--" + field.name.replace("_", "-")
        if field.name in ("segment", "text_length"):
            parser.add_argument(flag, type=int, nargs=2, default=field.default, help="shortest and longest")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)
    args = parser.parse_args()
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)}
    recipe = Recipe(
        **{**settings, "segment": tuple(settings["segment"]), "text_length": tuple(settings["text_length"])}
    )
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    held = None
    if recipe.text_share:
        ids = corpus_ids(recipe)
        held = held_out_windows(recipe, ids)
        train_data, val_data = (
            text_episode_stream(recipe, ids, 2_000_000, g),
            text_episode_stream(recipe, ids, 50_000, g),
        )
    else:
        table = next_token_table(recipe, g) if recipe.branching else None
        train_data, val_data = episode_stream(recipe, 2_000_000, g, table), episode_stream(recipe, 50_000, g, table)
    config = recipe.train_config()
    torch.manual_seed(config.seed)
    trainer = Trainer(GPT(recipe.model_config()), train_data, val_data, config)
    log, start, cpu_start = (
        [{"step": 0, **probe(trainer.model, recipe, held)}],
        time.perf_counter(),
        time.process_time(),
    )
    while trainer.step < config.max_iters:
        trainer.config = dataclasses.replace(config, max_iters=min(trainer.step + args.stretch, config.max_iters))
        row = trainer.train(progress=False)[-1]
        probed = probe(trainer.model, recipe, held)
        clock = {"wall_s": round(time.perf_counter() - start, 1), "cpu_s": round(time.process_time() - cpu_start, 1)}
        log.append({**row, **probed, **clock})
        print(json.dumps(log[-1]), flush=True)
        if args.snapshots:  # the latest model after every stretch, to look at while it trains
            save(trainer.model, recipe, log, args.out)
    save(trainer.model, recipe, log, args.out)


def save(model: GPT, recipe: Recipe, log: list[dict], out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied: stored once
    meta = {
        "config": json.dumps(dataclasses.asdict(model.config)),
        "data": json.dumps(
            {k: getattr(recipe, k) for k in ("vocab", "segment", "text_share", "text_length", "probe_period")}
        ),
        "recipe": json.dumps(dataclasses.asdict(recipe)),
    }
    save_file(state, str(out / "model.safetensors"), metadata=meta)
    (out / "log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in log))
    print(f"wrote {out / 'model.safetensors'} and {out / 'log.jsonl'}", flush=True)


if __name__ == "__main__":
    main()
