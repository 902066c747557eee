"""Chapter 13 exercises: head scores, and an ablation experiment on the induction model."""

from __future__ import annotations

from functools import lru_cache

import torch

from ..interpret import ablate_heads, induction_scores, per_position_loss, previous_token_scores, run_with_cache
from . import Mistake, check


def _patterns(L: int, H: int, T: int, seed: int) -> torch.Tensor:
    """Random causal attention patterns [L, H, T, T]: rows sum to 1, nothing above the diagonal."""
    g = torch.Generator().manual_seed(seed)
    scores = 3.0 * torch.randn(L, H, T, T, generator=g, dtype=torch.float64)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1)


def check_previous_token_scores(fn) -> str:
    """Exercise: the mean attention from t to t - 1, over t >= 1, per head."""
    cases = [(_patterns(2, 3, 5, 0),), (_patterns(1, 4, 9, 1),), (_patterns(3, 2, 16, 2),)]
    return check(
        "previous_token_scores",
        fn,
        previous_token_scores,
        cases,
        mistakes=[
            Mistake(
                lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1) / p.size(-1),
                "divide by T - 1, the number of positions that have a previous token, not by T.",
            ),
            Mistake(
                lambda p: p.diagonal(offset=1, dim1=-2, dim2=-1).mean(-1),
                "that is the diagonal above the main one (entries [t, t + 1], offset=1): attention to the "
                "next token, which the causal mask sets to 0. The previous token is one below the main "
                "diagonal (entries [t, t - 1], offset=-1).",
            ),
            Mistake(
                lambda p: p.diagonal(dim1=-2, dim2=-1).mean(-1),
                "that is the main diagonal: attention of each token to itself. Go one below it.",
            ),
        ],
    )


def check_induction_scores(fn) -> str:
    """Exercise: the mean attention from t to t - period + 1, over t >= period, per head."""
    cases = [(_patterns(2, 3, 10, 3), 5), (_patterns(1, 2, 12, 4), 4), (_patterns(2, 2, 16, 5), 8)]

    def diagonal_mean(p, offset, first_row):
        t = torch.arange(first_row, p.size(-1))
        return p[..., t, t - offset].mean(-1)

    return check(
        "induction_scores",
        fn,
        induction_scores,
        cases,
        mistakes=[
            Mistake(
                lambda p, period: diagonal_mean(p, period, period),
                "t - period is the earlier occurrence of the current token itself (a duplicate-token "
                "head looks there). The induction head looks one step later: t - period + 1.",
            ),
            Mistake(
                lambda p, period: diagonal_mean(p, period - 1, period - 1),
                "start at t = period: row period - 1 is still inside the first copy, where nothing has repeated yet.",
            ),
        ],
    )


@lru_cache(maxsize=1)
def _head_rises() -> dict:
    """{(layer, head): second-copy loss with that head zeroed}, for the bundled induction model."""
    from ..pretrained import load_induction_model

    model, _, data = load_induction_model()
    V, P = model.config.vocab_size, data["probe_period"]
    g = torch.Generator().manual_seed(13)
    seqs = [torch.randint(V, (P,), generator=g).repeat(2) for _ in range(16)]

    def second_copy_loss():
        return sum(per_position_loss(run_with_cache(model, s).logits[:-1], s[1:])[P:].mean().item() for s in seqs)

    losses = {}
    for layer in range(model.config.n_layer):
        for head in range(model.config.n_head):
            with ablate_heads(model, [(layer, head)]):
                losses[(layer, head)] = second_copy_loss()
    return losses


def check_most_needed_head(fn) -> str:
    """Experiment: which head of the induction model, zeroed alone, hurts the second copy most."""
    losses = _head_rises()
    most = max(losses, key=losses.get)
    least = min(losses, key=losses.get)
    best_elsewhere = max((k for k in losses if k[0] != most[0]), key=losses.get)
    swapped = (most[1], most[0])
    hints: dict[tuple, list[str]] = {}
    hints.setdefault(least, []).append(
        "zeroing that head changes the second copy least: take the largest rise, not the smallest."
    )
    hints.setdefault(best_elsewhere, []).append(
        f"that head matters, but it is not the one copying needs most; compare all heads of both layers "
        f"(layer {most[0]} holds a head whose loss rises more)."
    )
    if swapped in losses and swapped != most:  # the right head, written (head, layer)
        hints.setdefault(swapped, []).append(
            "if you answered (head, layer), swap them: the answer is (layer, head), the layer first."
        )
    return check(
        "most_needed_head",
        lambda: _as_pair(fn()),
        lambda: most,
        cases=[()],
        mistakes=[Mistake(lambda answer=answer: answer, " Or, ".join(said)) for answer, said in hints.items()],
    )


def _as_pair(answer):
    """(layer, head) as two ints, from a tuple, a list or a tensor of two whole numbers."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 2:
        answer = answer.flatten().tolist()
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        return tuple(int(a) for a in answer)
    return answer
