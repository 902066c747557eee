"""Chapter 4 exercises: the causal mask."""

from __future__ import annotations

import torch

from . import ExerciseError, Mistake, check


def allowed_pairs(T: int) -> int:
    """How many (query, key) pairs the causal mask allows for T positions."""
    return T * (T + 1) // 2


def check_allowed_pairs(fn) -> str:
    """Exercise: count the pairs a T x T causal mask allows, without building it."""
    return check(
        "allowed_pairs",
        fn,
        allowed_pairs,
        cases=[(1,), (2,), (512,), (1024,)],
        mistakes=[
            Mistake(lambda T: T * (T - 1) // 2, "each position may also look at itself: count the diagonal."),
            Mistake(lambda T: T * T, "that is every pair; the mask hides the pairs where the key comes after the query."),
            Mistake(lambda T: T * T // 2, "half of T x T misses the diagonal's half: the diagonal is fully allowed."),
        ],
    )


def build_causal_mask(T: int) -> torch.Tensor:
    """The T x T causal mask: True where query i may look at key j, that is j <= i."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def check_build_causal_mask(fn) -> str:
    """Exercise: build the T x T causal mask (bool, True = allowed)."""
    result = check(
        "build_causal_mask",
        fn,
        build_causal_mask,
        cases=[(1,), (2,), (5,), (8,)],
        mistakes=[
            Mistake(
                lambda T: torch.ones(T, T, dtype=torch.bool).triu(),
                "that is the upper triangle: it lets each position see the ones after it. "
                "Query i may look at key j only when j <= i, the lower triangle: tril().",
            ),
            Mistake(
                lambda T: torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1),
                "each position may look at itself: keep the diagonal (tril(), not tril(diagonal=-1)).",
            ),
            Mistake(
                lambda T: torch.ones(T, T, dtype=torch.bool).triu(diagonal=1),
                "you marked the pairs to hide; here True means allowed, so return the opposite: the lower triangle with its diagonal.",
            ),
            Mistake(
                lambda T: torch.ones(T, T, dtype=torch.bool),
                "that allows every pair, so nothing is masked; keep only the pairs with j <= i.",
            ),
        ],
    )
    for T in (1, 2, 5, 8):
        mask = fn(T)
        if mask.dtype != torch.bool:
            raise ExerciseError(
                f"build_causal_mask: the values are right, but the dtype is {mask.dtype}. "
                "Return a bool tensor (add .bool()): masked_fill and ~mask need True and False."
            )
    return result


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention weights: hide the scores where mask is False, then softmax each row."""
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def _mask_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(4)
    random_mask = torch.rand(6, 6, generator=g) < 0.5
    random_mask.fill_diagonal_(True)  # every row keeps at least one key
    return [
        (torch.randn(5, 5, generator=g), build_causal_mask(5)),
        (torch.randn(2, 3, 8, 8, generator=g), build_causal_mask(8)),  # the mask broadcasts over batch and heads
        (torch.randn(6, 6, generator=g), random_mask),  # any mask, not only the causal one
    ]


def check_masked_softmax(fn) -> str:
    """Exercise: mask the scores, then softmax, so hidden pairs get weight exactly 0."""
    cases = _mask_cases()
    return check(
        "masked_softmax",
        fn,
        masked_softmax,
        cases=cases,
        nan_hint=(
            "some rows are NaN, which happens when every score of a row is -inf. "
            "masked_fill fills where its mask is True, so fill where the pair is NOT allowed: masked_fill(~mask, ...)."
        ),
        mistakes=[
            Mistake(
                lambda s, m: torch.softmax(s.masked_fill(~m, 0.0), dim=-1),
                "a hidden score of 0 still gets weight exp(0) = 1 before normalising; "
                "fill with float('-inf'), whose exp is exactly 0.",
            ),
            Mistake(
                lambda s, m: torch.softmax(s, dim=-1).masked_fill(~m, 0.0),
                "mask the scores before the softmax: weights zeroed afterwards leave rows that no longer sum to 1.",
            ),
            Mistake(
                lambda s, m: torch.softmax(s.masked_fill(~m, float("-inf")), dim=-2),
                "the softmax runs over the wrong dimension: each query's row must sum to 1, so use dim=-1.",
            ),
        ],
    )
