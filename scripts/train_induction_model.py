"""Train the small 2-layer model of the chapter "Inside the trained model", in which an
induction head forms, and ship it with its training log.

    python scripts/train_induction_model.py            # writes gptlib/data/induction/
    python scripts/train_induction_model.py --out DIR  # anywhere else

The data are random tokens in which copying pays and nothing else does: a stream of
episodes, each a random segment of random length followed by the same segment again.
Training windows start anywhere in the stream, so where a repeat starts and how far back
its first copy lies vary from window to window: position alone cannot predict the copy,
only the content can (find the earlier occurrence of the current token, and predict the
token that followed it).

Training is gptlib's own Trainer, run in short stretches so that after each stretch the
script can measure the two things the chapter plots: the loss on the second copy of a
repeated random sequence (against the first), and the best induction score of a layer-1
head. The learning-rate schedule is fixed for the whole run (lr_decay_iters), so running
in stretches trains exactly as one run would.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from gptlib import GPT, GPTConfig
from gptlib.interpret import (
    induction_scores,
    per_position_loss,
    previous_token_scores,
    repeated_random_tokens,
    run_with_cache,
)
from gptlib.train import TrainConfig, Trainer

OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "induction"

VOCAB = 32
MODEL = GPTConfig(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=4, n_embd=128, dropout=0.0, bias=False)
TRAIN = TrainConfig(
    batch_size=128,
    max_iters=1000,
    learning_rate=3e-3,
    min_lr=3e-3,
    warmup_iters=100,
    lr_decay_iters=1000,
    weight_decay=0.0,
    eval_interval=10_000,
    eval_iters=10,
    seed=0,
)
SEGMENT = (4, 12)  # the repeated segment's length, drawn uniformly from this range
REPEATS = 2  # each segment appears between 2 and REPEATS times in a row
BRANCHING = 4  # how many tokens may come two places after each token in a "sentence" (0: no sentences)
EVAL_PERIOD = 12  # the probe: 12 random tokens, then the same 12 again (24 <= block_size)


def next_token_table(generator: torch.Generator) -> torch.Tensor:
    """[VOCAB, BRANCHING]: for each token a, the few tokens that may come two places after it."""
    return torch.randint(VOCAB, (VOCAB, BRANCHING), generator=generator)


def episode_stream(n_tokens: int, generator: torch.Generator, table: torch.Tensor | None) -> torch.Tensor:
    """About n_tokens ids, in episodes of two kinds, each with probability one half:

    - a random segment (uniform tokens) repeated, 2 to REPEATS times in a row: only
      copying predicts the repeats;
    - with a table, a "sentence" that follows it: each token is one of the BRANCHING tokens
      the table allows two places after the token before the previous one. As in real
      text, knowing the previous token helps to predict the next one, which is what makes
      a previous-token head worth learning on its own."""
    parts, total = [], 0
    while total < n_tokens:
        n = int(torch.randint(SEGMENT[0], SEGMENT[1] + 1, (1,), generator=generator))
        r = int(torch.randint(2, REPEATS + 1, (1,), generator=generator))
        segment = torch.randint(VOCAB, (n,), generator=generator)
        sentence = table is not None and bool(torch.rand(1, generator=generator) < 0.5)
        if sentence:
            pick = torch.randint(BRANCHING, (n,), generator=generator)
            for i in range(2, n):
                segment[i] = table[segment[i - 2], pick[i]]
            r = 1
        parts.append(segment.repeat(r))
        total += r * n
    return torch.cat(parts)


def probe(model: GPT, n: int = 32) -> dict:
    """Loss on the first and on the second copy of repeated random sequences, and the best
    previous-token score (layer 0) and induction score (layer 1), averaged over n probes."""
    g = torch.Generator().manual_seed(1234)
    first, second, prev, ind, later = [], [], [], [], []
    for _ in range(n):
        seq = repeated_random_tokens(VOCAB, EVAL_PERIOD, 2, generator=g)  # [2 * period]
        rec = run_with_cache(model, seq)
        losses = per_position_loss(rec.logits[:-1], seq[1:])  # [2P - 1]: loss of predicting seq[t + 1]
        first.append(losses[: EVAL_PERIOD - 1].mean())  # targets inside the first copy
        second.append(losses[EVAL_PERIOD:].mean())  # targets inside the second copy, from its 2nd token on
        prev.append(previous_token_scores(rec.attention))
        ind.append(induction_scores(rec.attention, EVAL_PERIOD))
        # attention from t to t - period + 2, two places after the earlier occurrence (t >= period)
        later.append(rec.attention.diagonal(offset=-(EVAL_PERIOD - 2), dim1=-2, dim2=-1)[..., 2:].mean(-1))
    prev, ind, later = torch.stack(prev).mean(0), torch.stack(ind).mean(0), torch.stack(later).mean(0)  # [L, H]
    return {
        "first_copy_loss": round(torch.stack(first).mean().item(), 4),
        "second_copy_loss": round(torch.stack(second).mean().item(), 4),
        "prev_token_score_l0": round(prev[0].max().item(), 4),
        "induction_score_l1": round(ind[1].max().item(), 4),
        "two_after_score_l1": round(later[1].max().item(), 4),
    }


def main() -> None:
    global MODEL, SEGMENT, REPEATS, BRANCHING, VOCAB, EVAL_PERIOD
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--stretch", type=int, default=100, help="steps between two probes")
    parser.add_argument("--lr", type=float, default=TRAIN.learning_rate)
    parser.add_argument("--min-lr", type=float, default=TRAIN.min_lr)
    parser.add_argument("--iters", type=int, default=TRAIN.max_iters)
    parser.add_argument("--block-size", type=int, default=MODEL.block_size)
    parser.add_argument("--n-embd", type=int, default=MODEL.n_embd)
    parser.add_argument("--n-head", type=int, default=MODEL.n_head)
    parser.add_argument("--vocab", type=int, default=VOCAB)
    parser.add_argument("--probe-period", type=int, default=EVAL_PERIOD)
    parser.add_argument("--snapshots", action="store_true", help="save the model after every stretch")
    parser.add_argument("--batch-size", type=int, default=TRAIN.batch_size)
    parser.add_argument("--segment", type=int, nargs=2, default=SEGMENT, help="shortest and longest segment")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="most times a segment appears in a row")
    parser.add_argument(
        "--branching", type=int, default=BRANCHING, help="tokens allowed two places after each token; 0: uniform"
    )
    args = parser.parse_args()
    VOCAB, EVAL_PERIOD = args.vocab, args.probe_period
    MODEL = dataclasses.replace(
        MODEL, block_size=args.block_size, n_embd=args.n_embd, n_head=args.n_head, vocab_size=VOCAB
    )
    SEGMENT, REPEATS, BRANCHING = tuple(args.segment), args.repeats, args.branching
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    table = next_token_table(g) if BRANCHING else None
    train_data, val_data = episode_stream(2_000_000, g, table), episode_stream(50_000, g, table)
    config = dataclasses.replace(
        TRAIN,
        learning_rate=args.lr,
        min_lr=args.min_lr,
        max_iters=args.iters,
        lr_decay_iters=args.iters,
        batch_size=args.batch_size,
    )
    torch.manual_seed(config.seed)
    trainer = Trainer(GPT(MODEL), train_data, val_data, config)
    log, start = [{"step": 0, **probe(trainer.model)}], time.perf_counter()
    while trainer.step < config.max_iters:
        trainer.config = dataclasses.replace(config, max_iters=min(trainer.step + args.stretch, config.max_iters))
        row = trainer.train(progress=False)[-1]
        log.append({**row, **probe(trainer.model), "wall_s": round(time.perf_counter() - start, 1)})
        print(json.dumps(log[-1]), flush=True)
        if args.snapshots:  # the latest model after every stretch, to look at while it trains
            args.out.mkdir(parents=True, exist_ok=True)
            save(trainer.model, log, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    save(trainer.model, log, args.out)


def save(model: GPT, log: list[dict], out: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied: stored once
    meta = {
        "config": json.dumps(dataclasses.asdict(model.config)),
        "data": json.dumps(
            {
                "vocab": VOCAB,
                "segment": SEGMENT,
                "repeats": REPEATS,
                "branching": BRANCHING,
                "probe_period": EVAL_PERIOD,
            }
        ),
    }
    save_file(state, str(out / "model.safetensors"), metadata=meta)
    (out / "log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in log))
    print(f"wrote {out / 'model.safetensors'} and {out / 'log.jsonl'}", flush=True)


if __name__ == "__main__":
    main()
