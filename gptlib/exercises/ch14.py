"""Chapter 14 exercises: rotary positions, RMSNorm, and the key/value heads of grouped-query attention."""

from __future__ import annotations

import torch

from ..attention import repeat_kv as _repeat_kv
from ..rope import apply_rope, inverse_frequencies, rope_angles, rotate_half
from . import Mistake, check


def rope(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Queries or keys x (B, nh, T, hs) turned by their positions (T,), Hugging Face's convention:
    pair i is (dimension i, dimension i + hs/2) and turns by positions * theta ** (-2i / hs)."""
    cos, sin = rope_angles(positions, x.size(-1), theta, x.dtype)  # (T, hs) each
    return apply_rope(x, cos, sin)


def _rope_inputs() -> list[tuple]:
    g = torch.Generator().manual_seed(14)
    cases = []
    # (B, nh, T, hs, first position, theta): positions that do not start at 0 (as after a
    # cache), another theta, and head sizes of 4 to 16.
    for B, nh, T, hs, start, theta in [(2, 3, 5, 8, 0, 10000.0), (1, 2, 6, 16, 7, 10000.0), (2, 1, 4, 4, 3, 500.0)]:
        x = torch.randn(B, nh, T, hs, generator=g, dtype=torch.float64)
        cases.append((x, torch.arange(start, start + T), theta))
    return cases


def _turn(x, positions, theta, freqs=None, layout="halves", sign=1.0):
    """x turned with a given frequency table (hs/2,), angle layout and direction (for the mistakes)."""
    hs = x.size(-1)
    freqs = inverse_frequencies(hs, theta).double() if freqs is None else freqs
    angles = positions[:, None].double() * freqs  # (T, hs/2)
    if layout == "adjacent":  # Meta's convention: pair i is (2i, 2i + 1), turned as a complex number
        z = torch.view_as_complex(x.reshape(*x.shape[:-1], hs // 2, 2).contiguous())
        return torch.view_as_real(z * torch.polar(torch.ones_like(angles), sign * angles)).flatten(-2)
    if layout == "halves":
        angles = torch.cat((angles, angles), dim=-1)  # (T, hs)
    elif layout == "interleaved angles":  # angle i at dimensions 2i and 2i + 1, with rotate_half's pairs
        angles = angles.repeat_interleave(2, dim=-1)
    return x * angles.cos() + sign * rotate_half(x) * angles.sin()


def check_rope(fn) -> str:
    """Exercise: rotary positions, fn(x, positions, theta), Hugging Face's convention."""
    return check(
        "rope",
        fn,
        rope,
        cases=_rope_inputs(),
        mistakes=[
            Mistake(
                lambda x, p, th: _turn(x, p, th, layout="adjacent"),
                "you turned adjacent pairs (2i, 2i + 1), as complex numbers: that is Meta's original convention. "
                "gptlib and Hugging Face pair dimension i with dimension i + hs/2 (the two halves of the head): "
                "x * cos + rotate_half(x) * sin, with rotate_half(x) = cat(-x2, x1).",
            ),
            Mistake(
                lambda x, p, th: _turn(x, p, th, sign=-1.0),
                "you turned the wrong way (by minus the angle): the second term is + rotate_half(x) * sin, "
                "and rotate_half(x) puts minus the second half first: cat(-x2, x1).",
            ),
            Mistake(
                lambda x, p, th: _turn(x, p, th, layout="interleaved angles"),
                "dimensions i and i + hs/2 form one pair and turn by the same angle: repeat the hs/2 angles "
                "as two halves, torch.cat((angles, angles), -1). repeat_interleave puts angle i at dimensions "
                "2i and 2i + 1, Meta's layout, which does not go with rotate_half's pairs.",
            ),
            Mistake(
                lambda x, p, th: _turn(x, p, th, freqs=th ** (-torch.arange(x.size(-1) // 2).double() / x.size(-1))),
                "the frequency of pair i is theta ** (-2i / hs): i counts pairs, so the exponent steps by 2 / hs "
                "(torch.arange(0, hs, 2) / hs), not by 1 / hs.",
            ),
            Mistake(
                lambda x, p, th: _turn(x, torch.arange(x.size(-2)), th),
                "turn each query or key by the position you are given: positions need not start at 0 "
                "(after 7 cached tokens the new ones sit at 7, 8, ...).",
            ),
        ],
        atol=1e-5,
        rtol=1e-5,
    )


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last dimension: x / sqrt(mean(x ** 2) + eps) * weight. No mean, no bias."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def _rms_inputs() -> list[tuple]:
    g = torch.Generator().manual_seed(41)
    cases = []
    # (shape, scale of x, eps): every x has an offset (so subtracting the mean shows), a tiny
    # scale makes eps matter, and another eps checks that eps is used.
    for shape, scale, eps in [((2, 5, 8), 3.0, 1e-6), ((1, 4, 768), 1.0, 1e-5), ((2, 3, 16), 1e-3, 1e-6)]:
        x = scale * (torch.randn(*shape, generator=g, dtype=torch.float64) + 0.7)
        weight = 1.0 + 0.5 * torch.randn(shape[-1], generator=g, dtype=torch.float64)
        cases.append((x, weight, eps))
    return cases


def check_rms_norm(fn) -> str:
    """Exercise: RMSNorm from scratch, fn(x, weight, eps)."""
    return check(
        "rms_norm",
        fn,
        rms_norm,
        cases=_rms_inputs(),
        mistakes=[
            Mistake(
                lambda x, w, eps: rms_norm(x - x.mean(dim=-1, keepdim=True), w, eps),
                "RMSNorm does not subtract the mean: divide x itself by its root mean square, "
                "sqrt(mean(x ** 2) + eps). Centring first is LayerNorm (without its bias).",
            ),
            Mistake(
                lambda x, w, eps: x / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps) * w,
                "is your epsilon inside the square root? It is sqrt(mean(x ** 2) + eps), not sqrt(mean(x ** 2)) + eps.",
            ),
            Mistake(
                lambda x, w, eps: x * torch.rsqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps) * w,
                "take the mean of the squares, not their sum: dividing by sqrt(sum(x ** 2)), the vector's length, "
                "makes the result sqrt(C) times too small.",
            ),
            Mistake(
                lambda x, w, eps: rms_norm(x, 1.0, eps),
                "after dividing by the root mean square, multiply by the learned weight.",
            ),
            Mistake(
                lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(dim=-2, keepdim=True) + eps) * w,
                "take the mean over the last dimension (dim=-1, the C features of each position), not over the positions.",
            ),
        ],
    )


def repeat_kv(kv: torch.Tensor, n_head: int) -> torch.Tensor:
    """Keys or values (B, n_kv_head, T, hs) -> (B, n_head, T, hs): query head h reads key/value
    head h // (n_head // n_kv_head), Hugging Face's repeat_kv order."""
    return _repeat_kv(kv, n_head // kv.size(1))


def _kv_inputs() -> list[tuple]:
    g = torch.Generator().manual_seed(4)
    # (B, n_kv_head, T, hs, n_head): grouped-query with groups of 3 and 2, multi-query, and
    # multi-head (a group of 1).
    shapes = [(2, 2, 5, 4, 6), (1, 4, 3, 8, 8), (2, 1, 4, 4, 4), (1, 3, 2, 2, 3)]
    return [(torch.randn(B, nkv, T, hs, generator=g), nh) for B, nkv, T, hs, nh in shapes]


def check_repeat_kv(fn) -> str:
    """Exercise: the key/value head of every query head, fn(kv, n_head)."""
    return check(
        "repeat_kv",
        fn,
        repeat_kv,
        cases=_kv_inputs(),
        mistakes=[
            Mistake(
                lambda kv, nh: kv.repeat(1, nh // kv.size(1), 1, 1),
                "the order: query head h reads key/value head h // (n_head // n_kv_head), so neighbouring query "
                "heads share one (heads 0, 1, 2 read kv head 0 in groups of 3). Yours gives kv head h % n_kv_head, "
                "the order of .repeat, which tiles the kv heads; use repeat_interleave on dim 1, or expand a new "
                "axis after the kv heads and reshape.",
            ),
            Mistake(
                lambda kv, nh: kv.repeat_interleave(nh, dim=1),
                "repeat each key/value head n_head // n_kv_head times, the size of its group of query heads, "
                "not n_head times.",
            ),
            Mistake(
                lambda kv, nh: kv.repeat_interleave(nh // kv.size(1), dim=2),
                "repeat along the head dimension (dim=1), not along the positions (dim=2).",
            ),
        ],
        atol=0.0,
        rtol=0.0,
    )
