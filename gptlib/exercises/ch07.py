"""Chapter 7 exercises: LayerNorm, the pre-LN block, and the residual init scale."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..attention import CausalSelfAttention
from ..layers import MLP, LayerNorm
from . import Mistake, check


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last dimension: biased variance, eps inside the square root."""
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _ln_inputs() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    cases = []
    # (shape, scale of x, eps): a small last dim makes the biased/unbiased difference large,
    # a tiny scale makes eps matter, and a different eps checks that eps is used.
    for shape, scale, eps in [
        ((2, 5, 8), 3.0, 1e-5),
        ((1, 4, 768), 1.0, 1e-5),
        ((2, 3, 16), 1e-3, 1e-5),
        ((3, 2, 12), 0.1, 1e-2),
    ]:
        C = shape[-1]
        x = scale * torch.randn(*shape, generator=g, dtype=torch.float64) + 0.5
        weight = 1.0 + 0.5 * torch.randn(C, generator=g, dtype=torch.float64)
        bias = 0.5 * torch.randn(C, generator=g, dtype=torch.float64)
        cases.append((x, weight, bias, eps))
    return cases


def _normalize(x, weight, bias, eps, dim=-1, unbiased=False, eps_inside=True):
    mean = x.mean(dim=dim, keepdim=True)
    var = x.var(dim=dim, keepdim=True, unbiased=unbiased)
    std = torch.sqrt(var + eps) if eps_inside else torch.sqrt(var) + eps
    return (x - mean) / std * weight + bias


def check_layer_norm(fn) -> str:
    """Exercise: LayerNorm from scratch, fn(x, weight, bias, eps)."""
    return check(
        "layer_norm",
        fn,
        layer_norm,
        cases=_ln_inputs(),
        mistakes=[
            Mistake(
                lambda x, w, b, eps: _normalize(x, w, b, eps, eps_inside=False),
                "is your epsilon inside the square root? It is sqrt(var + eps), not sqrt(var) + eps.",
            ),
            Mistake(
                lambda x, w, b, eps: _normalize(x, w, b, eps, unbiased=True),
                "LayerNorm uses the biased variance (divide by C, not C - 1): "
                "x.var(dim=-1, unbiased=False), or ((x - mean) ** 2).mean(dim=-1).",
            ),
            Mistake(
                lambda x, w, b, eps: _normalize(x, w, b, eps, dim=1),
                "normalize over the last dimension (dim=-1, the C features of each position), not over the positions.",
            ),
            Mistake(
                lambda x, w, b, eps: _normalize(x, w, b, eps, dim=0),
                "normalize over the last dimension (dim=-1), not over the batch: "
                "LayerNorm treats every position of every sequence on its own.",
            ),
            Mistake(
                lambda x, w, b, eps: _normalize(x, 1.0, 0.0, eps),
                "after normalizing, scale by the learnable weight and shift by the learnable bias.",
            ),
            Mistake(
                lambda x, w, b, eps: _normalize(x, w, b, 0.0),
                "use eps: sqrt(var + eps) keeps the division safe when a vector's variance is tiny.",
            ),
        ],
    )


def pre_ln_block(x, ln_1, attn, ln_2, mlp) -> torch.Tensor:
    """GPT-2's block: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x))."""
    x = x + attn(ln_1(x))  # (B, T, C)
    x = x + mlp(ln_2(x))  # (B, T, C)
    return x


def _block_inputs() -> list[tuple]:
    cases = []
    with torch.random.fork_rng(devices=[]):  # module init uses the global generator: leave the reader's alone
        for seed, (B, T, C, nh) in enumerate([(2, 6, 32, 4), (1, 9, 16, 2)]):
            cases.append(_block_case(700 + seed, B, T, C, nh))
    return cases


def _block_case(seed: int, B: int, T: int, C: int, nh: int) -> tuple:
    torch.manual_seed(seed)
    ln_1, ln_2 = LayerNorm(C), LayerNorm(C)
    for ln in (ln_1, ln_2):  # move the LayerNorms away from the identity so they matter
        nn.init.normal_(ln.weight, 1.0, 0.3)
        nn.init.normal_(ln.bias, 0.0, 0.3)
    attn, mlp = CausalSelfAttention(C, nh), MLP(C)
    modules = [m.eval().requires_grad_(False) for m in (ln_1, attn, ln_2, mlp)]
    x = 2.0 * torch.randn(B, T, C) + 1.0
    return (x, *modules)


def check_pre_ln_block(fn) -> str:
    """Exercise: one pre-LN transformer block, fn(x, ln_1, attn, ln_2, mlp)."""
    return check(
        "pre_ln_block",
        fn,
        pre_ln_block,
        cases=_block_inputs(),
        mistakes=[
            Mistake(
                lambda x, l1, a, l2, m: l2((y := l1(x + a(x))) + m(y)),
                "that is the post-LN order of the original Transformer, ln(x + sublayer(x)). "
                "GPT-2 normalizes the input of each sublayer: x + attn(ln_1(x)).",
            ),
            Mistake(
                lambda x, l1, a, l2, m: m(l2(a(l1(x)))),
                "you forgot the residual connections: each sublayer adds its output to x "
                "(x = x + attn(ln_1(x))) instead of replacing x.",
            ),
            Mistake(
                lambda x, l1, a, l2, m: x + a(l1(x)) + m(l2(x)),
                "the MLP reads the stream after attention has added to it: "
                "update x first, then compute mlp(ln_2(x)) from the new x.",
            ),
            Mistake(
                lambda x, l1, a, l2, m: (y := x + a(x)) + m(y),
                "the LayerNorms are missing: each sublayer reads ln_1(x) or ln_2(x), not x itself.",
            ),
            Mistake(
                lambda x, l1, a, l2, m: (y := x + a(l2(x))) + m(l1(y)),
                "ln_1 goes with attention and ln_2 with the MLP.",
            ),
        ],
        atol=1e-4,
    )


def residual_init_std(n_layer: int, std: float = 0.02) -> float:
    """The initial std of the c_proj weights in GPT-2: std / sqrt(2 * n_layer)."""
    return std / math.sqrt(2 * n_layer)


def check_residual_init_std(fn) -> str:
    """Exercise: the std GPT-2 gives the c_proj weights, fn(n_layer) (base std 0.02)."""
    return check(
        "residual_init_std",
        fn,
        residual_init_std,
        cases=[(12,), (24,), (36,), (48,), (6,), (1,)],
        mistakes=[
            Mistake(
                lambda n: 0.02 / math.sqrt(n),
                "each block adds two contributions to the residual stream (attention's c_proj "
                "and the MLP's c_proj), so there are 2 * n_layer additions.",
            ),
            Mistake(
                lambda n: 0.02 / (2 * n),
                "the scale is one over the square root: variances of independent additions add up, "
                "so the std grows with sqrt(2 * n_layer).",
            ),
            Mistake(lambda n: 0.02, "that is the std of the other weights; c_proj weights get a smaller one."),
        ],
        atol=1e-9,
        rtol=1e-6,
    )
