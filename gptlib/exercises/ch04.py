"""Chapter 4 exercises: the causal mask."""

from __future__ import annotations

from . import Mistake, check


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
