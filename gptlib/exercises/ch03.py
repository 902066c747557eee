"""Chapter 3 exercises: one attention head.

>>> from gptlib.exercises import ch03
>>> ch03.check_attention_scores(ch03.attention_scores)
'correct: attention_scores agrees with the reference on 3 inputs'
"""

from __future__ import annotations

import math

import torch

from ..attention import scaled_dot_product_attention
from . import Mistake, check


def attention_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The scaled scores Q K^T / sqrt(hs): q, k (..., T, hs) -> (..., T, T)."""
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))


def softmax_rows(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, written out, safe for large scores."""
    shifted = scores - scores.amax(dim=-1, keepdim=True)  # the largest entry of each row becomes 0
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


def attention_one_head(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    """One head: (out, weights) with out (..., T, hs) and weights (..., T, T)."""
    weights = torch.softmax(attention_scores(q, k), dim=-1)
    return weights @ v, weights


def _qkv_cases(n_tensors: int) -> list[tuple]:
    """Random inputs of three shapes; the head sizes differ so a fixed 64 is caught."""
    g = torch.Generator().manual_seed(3)
    shapes = [(1, 6, 64), (2, 5, 16), (3, 4, 7)]
    return [tuple(torch.randn(*s, generator=g) for _ in range(n_tensors)) for s in shapes]


def check_attention_scores(fn) -> str:
    """Exercise: the scaled score matrix Q K^T / sqrt(head size)."""
    return check(
        "attention_scores",
        fn,
        attention_scores,
        cases=_qkv_cases(2),
        mistakes=[
            Mistake(
                lambda q, k: q @ k.transpose(-2, -1),
                "the scores are not scaled: divide q @ k^T by sqrt(head size), or their variance grows with the head size.",
            ),
            Mistake(
                lambda q, k: q @ k.transpose(-2, -1) / q.size(-1),
                "you divided by the head size; divide by its square root (sqrt(64) = 8), "
                "which takes the head size out of the scores' variance.",
            ),
            Mistake(
                lambda q, k: q @ k.transpose(-2, -1) / 8.0,
                "you divided by a fixed 8 = sqrt(64); use the head size of the input, math.sqrt(q.size(-1)).",
            ),
            Mistake(
                lambda q, k: k @ q.transpose(-2, -1) / math.sqrt(q.size(-1)),
                "your matrix is transposed: row i should hold query i against every key, q @ k.transpose(-2, -1).",
            ),
        ],
    )


def _score_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(4)
    return [
        (torch.randn(5, 5, generator=g),),
        (torch.randn(6, 6, 6, generator=g) * 3,),
        (torch.randn(3, 3, 3, 3, generator=g),),
        (torch.randn(4, 4, generator=g) * 1000,),  # scores this large overflow a naive exp
    ]


def check_softmax_rows(fn) -> str:
    """Exercise: softmax over the last dimension, by hand, that survives large scores."""
    cases = _score_cases()
    return check(
        "softmax_rows",
        fn,
        softmax_rows,
        cases=cases,
        nan_hint=(
            "your weights hold inf or nan. That is what exp does to large scores: it overflows to inf, or a whole "
            "row underflows to 0 and 0 / 0 is nan. Subtract each row's own maximum before exp, "
            "scores.amax(dim=-1, keepdim=True): the softmax does not change when a whole row is shifted, "
            "and the row's largest entry becomes exp(0) = 1."
        ),
        mistakes=[
            Mistake(
                lambda s: softmax_rows(s.transpose(-2, -1)).transpose(-2, -1),
                "your columns sum to 1, not your rows: normalise over the last dimension, dim=-1.",
            ),
            Mistake(
                lambda s: (
                    (s - s.amax(dim=-1, keepdim=True)).exp() / (s - s.amax(dim=-1, keepdim=True)).exp().sum(dim=-1)
                ),
                "sum(dim=-1) without keepdim=True has lost a dimension, so the division broadcasts the wrong way: "
                "add keepdim=True.",
            ),
        ],
    )


def check_attention_one_head(fn) -> str:
    """Exercise: one head of attention, returning (out, weights)."""
    return check(
        "attention_one_head",
        fn,
        lambda q, k, v: scaled_dot_product_attention(q, k, v),
        cases=_qkv_cases(3),
        mistakes=[
            Mistake(
                lambda q, k, v: _head(q @ k.transpose(-2, -1), v, dim=-1),
                "the scores are not scaled: divide q @ k^T by sqrt(head size) before the softmax.",
            ),
            Mistake(
                lambda q, k, v: _head(q @ k.transpose(-2, -1) / q.size(-1), v, dim=-1),
                "you divided by the head size; divide by its square root, math.sqrt(q.size(-1)).",
            ),
            Mistake(
                lambda q, k, v: _head(attention_scores(q, k), v, dim=-2),
                "the softmax runs over the wrong dimension: each query's row of weights must sum to 1, so use dim=-1.",
            ),
            Mistake(
                lambda q, k, v: _head(attention_scores(q, k), v, dim=-1)[0],
                "you returned only the output: return the tuple (out, weights), the weights too.",
            ),
            Mistake(
                lambda q, k, v: _head(attention_scores(q, k), v, dim=-1)[::-1],
                "you returned (weights, out): return the output first, then the weights.",
            ),
        ],
    )


def _head(scores: torch.Tensor, v: torch.Tensor, dim: int):
    weights = torch.softmax(scores, dim=dim)
    return weights @ v, weights
