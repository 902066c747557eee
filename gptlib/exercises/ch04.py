"""Chapter 4 exercises: the causal mask."""

from __future__ import annotations

import torch

from ..attention import CausalSelfAttention, scaled_dot_product_attention
from ..layers import MLP
from . import ExerciseError, Mistake, check, whole_number


def allowed_pairs(T: int) -> int:
    """How many (query, key) pairs the causal mask allows for T positions."""
    return T * (T + 1) // 2


_HALF_HINT = "half of T x T misses the diagonal's half: the diagonal is fully allowed."


def check_allowed_pairs(fn) -> str:
    """Exercise: count the pairs a T x T causal mask allows, without building it."""
    return check(
        "allowed_pairs",
        whole_number(fn),
        allowed_pairs,
        cases=[(1,), (2,), (512,), (1024,)],
        mistakes=[
            Mistake(lambda T: T * (T - 1) // 2, "each position may also look at itself: count the diagonal."),
            Mistake(
                lambda T: T * T, "that is every pair; the mask hides the pairs where the key comes after the query."
            ),
            Mistake(lambda T: T * T // 2, _HALF_HINT),
            # T * T / 2 is 0.5 at T = 1, and the reader's answer goes through whole_number: so must the mistake
            Mistake(whole_number(lambda T: T * T / 2), _HALF_HINT),
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
    if result.startswith("not attempted yet"):
        return result
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
            "some rows are NaN, which happens when every score of a row is -inf: the -inf must go where the pair "
            "is NOT allowed. masked_fill fills where its mask is True, so fill where mask is False: masked_fill(~mask, ...)."
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


# ---------------------------------------------------------------------------
# Exercise 4 (an experiment): find where a layer leaks the future.


def first_leak(layer, T: int, C: int):
    """The first position t whose output changes when only the inputs after t change,
    or None when no position depends on its future. layer maps (1, T, C) -> (1, T, C)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, T, C, generator=g)
    with torch.no_grad():
        y = layer(x)
        for t in range(T - 1):
            changed = x.clone()
            changed[:, t + 1 :] = torch.randn(1, T - t - 1, C, generator=g)  # a different future
            if not torch.allclose(layer(changed)[:, t], y[:, t], atol=1e-6, rtol=0):
                return t
    return None


class MaskedAttentionLayer(torch.nn.Module):
    """One head of attention with a fixed projection and a given (T, T) mask (True = allowed)."""

    def __init__(self, mask: torch.Tensor, C: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(3, C, C, generator=g) / C**0.5
        self.mask = mask

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        q, k, v = (x @ w for w in self.w)
        T = x.size(1)
        return scaled_dot_product_attention(q, k, v, self.mask[:T, :T])[0]


class LastPositionOnly(torch.nn.Module):
    """Position by position, and only the last position's output is non-zero."""

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        out = torch.zeros_like(x)
        out[:, -1] = 2.0 * x[:, -1]
        return out


def _leak_layers(T: int = 8, C: int = 16) -> list[tuple]:
    causal = build_causal_mask(T)
    peek_one = torch.ones(T, T, dtype=torch.bool).tril(diagonal=1)  # each position also sees the next one
    late_leak = causal.clone()
    late_leak[5:] = True  # positions from 5 on see everything
    one_pair = causal.clone()
    one_pair[3, 6] = True  # a single forbidden pair: query 3 may read key 6
    with torch.random.fork_rng(devices=[]):  # module init uses the global generator: leave the reader's alone
        torch.manual_seed(40)
        fused = CausalSelfAttention(C, 2).eval()
        mlp = MLP(C).eval()
    return [
        (MaskedAttentionLayer(causal, C, 1), T, C),  # None
        (MaskedAttentionLayer(torch.ones(T, T, dtype=torch.bool), C, 2), T, C),  # 0: no mask at all
        (MaskedAttentionLayer(peek_one, C, 3), T, C),  # 0
        (MaskedAttentionLayer(late_leak, C, 4), T, C),  # 5
        (MaskedAttentionLayer(one_pair, C, 5), T, C),  # 3
        (fused, T, C),  # None: gptlib's layer
        (mlp, T, C),  # None: nothing mixes positions
        (LastPositionOnly(), T, C),  # None, and a probe that compares whole outputs says 0
    ]


def _probe(layer, T, C, first_changed, compare):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, T, C, generator=g)
    with torch.no_grad():
        y = layer(x)
        for t in range(T - 1):
            changed = x.clone()
            start = first_changed(t)
            changed[:, start:] = torch.randn(1, T - start, C, generator=g)
            if compare(layer(changed), y, t):
                return t
    return None


def check_first_leak(fn) -> str:
    """Exercise: first_leak(layer, T, C) -> the first position that sees its future, or None."""
    moved_at = lambda a, b, t: not torch.allclose(a[:, t], b[:, t], atol=1e-6, rtol=0)  # noqa: E731
    moved_anywhere = lambda a, b, t: not torch.allclose(a, b, atol=1e-6, rtol=0)  # noqa: E731
    return check(
        "first_leak",
        fn,
        first_leak,
        cases=_leak_layers(),
        mistakes=[
            Mistake(
                lambda layer, T, C: _probe(layer, T, C, lambda t: t, moved_at),
                "you also changed the input at position t itself. The output at t may depend on "
                "token t; change only the inputs after it, from t + 1 on.",
            ),
            Mistake(
                lambda layer, T, C: _probe(layer, T, C, lambda t: t + 1, moved_anywhere),
                "you compared the whole output. The later positions are allowed to change: "
                "compare only the output at position t.",
            ),
            Mistake(
                lambda layer, T, C: (lambda t: None if t is None else t + 1)(first_leak(layer, T, C)),
                "off by one: return the position whose output moved (t), not the first input you changed (t + 1).",
            ),
        ],
    )
