"""Chapter 6 exercises: the MLP and its GELU."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import Mistake, check, whole_number

_C = math.sqrt(2.0 / math.pi)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU in its tanh form, GPT-2's activation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(_C * (x + 0.044715 * x**3)))


def _gelu_inputs() -> list[tuple]:
    g = torch.Generator().manual_seed(6)
    return [
        (torch.linspace(-4.0, 4.0, 801, dtype=torch.float64),),
        (3.0 * torch.randn(2, 16, 64, generator=g, dtype=torch.float64),),
        (torch.tensor([0.0, 1.0, -1.0, 2.7, -2.7], dtype=torch.float64),),
    ]


def check_gelu_tanh(fn) -> str:
    """Exercise: write GELU's tanh form elementwise, with torch.tanh."""
    return check(
        "gelu_tanh",
        fn,
        gelu_tanh,
        cases=_gelu_inputs(),
        mistakes=[
            Mistake(
                lambda x: 0.5 * x * (1.0 + torch.tanh(_C * (x + 0.044715 * x**2))),
                "the correction term is cubic: 0.044715 * x**3, not x**2.",
            ),
            Mistake(
                lambda x: x * (1.0 + torch.tanh(_C * (x + 0.044715 * x**3))),
                "you are missing the factor 0.5 in front: (1 + tanh(...)) goes from 0 to 2, "
                "so 0.5 (1 + tanh(...)) is the soft switch between 0 and 1.",
            ),
            Mistake(
                lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 * math.pi) * (x + 0.044715 * x**3))),
                "the constant is sqrt(2 / pi), about 0.798, not sqrt(2 * pi).",
            ),
            Mistake(
                lambda x: F.gelu(x),
                "that is the exact GELU, x * Phi(x) with erf. GPT-2 uses the tanh approximation; "
                "the two differ by up to about 0.00047.",
            ),
            Mistake(lambda x: torch.relu(x), "that is ReLU; GELU is smooth and lets small negative values through."),
        ],
    )


def mlp_param_count(n_embd: int) -> int:
    """Parameters of one MLP: c_fc (n_embd -> 4 n_embd) and c_proj (4 n_embd -> n_embd), with biases."""
    hidden = 4 * n_embd
    return n_embd * hidden + hidden + hidden * n_embd + n_embd


_SIZES = [(768,), (1024,), (1280,), (1600,), (384,), (64,)]


def check_mlp_param_count(fn) -> str:
    """Exercise: count an MLP's parameters from n_embd alone."""
    return check(
        "mlp_param_count",
        whole_number(fn),
        mlp_param_count,
        cases=_SIZES,
        mistakes=[
            Mistake(
                lambda n: 8 * n * n, "you counted the weights only: each nn.Linear also has a bias, one per output."
            ),
            Mistake(
                lambda n: 8 * n * n + 2 * n,
                "c_fc's bias has one entry per output, and c_fc has 4 * n_embd outputs.",
            ),
            Mistake(
                lambda n: 8 * n * n + 8 * n,
                "c_proj's bias has one entry per output, and c_proj has n_embd outputs, not 4 * n_embd.",
            ),
            Mistake(
                lambda n: 2 * n * n + 2 * n,
                "the hidden layer is 4 times wider: n_embd -> 4 * n_embd -> n_embd.",
            ),
        ],
    )


def mlp_forward(x, w_fc, b_fc, w_proj, b_proj) -> torch.Tensor:
    """The MLP with plain tensors, nn.Linear's layout (weight is [out, in]): (..., C) -> (..., C)."""
    h = x @ w_fc.T + b_fc  # (..., C) -> (..., 4C)
    return gelu_tanh(h) @ w_proj.T + b_proj  # (..., 4C) -> (..., C)


def _mlp_inputs() -> list[tuple]:
    g = torch.Generator().manual_seed(66)
    cases = []
    for shape, C in [((2, 5), 16), ((1, 7), 32), ((3,), 8)]:
        x = torch.randn(*shape, C, generator=g, dtype=torch.float64)
        w_fc = 0.5 * torch.randn(4 * C, C, generator=g, dtype=torch.float64)
        b_fc = 0.5 * torch.randn(4 * C, generator=g, dtype=torch.float64)
        w_proj = 0.5 * torch.randn(C, 4 * C, generator=g, dtype=torch.float64)
        b_proj = 0.5 * torch.randn(C, generator=g, dtype=torch.float64)
        cases.append((x, w_fc, b_fc, w_proj, b_proj))
    return cases


def check_mlp_forward(fn) -> str:
    """Exercise: the MLP's forward pass from its four tensors."""
    return check(
        "mlp_forward",
        fn,
        mlp_forward,
        cases=_mlp_inputs(),
        mistakes=[
            Mistake(
                lambda x, w1, b1, w2, b2: (x @ w1.T + b1) @ w2.T + b2,
                "the GELU between the two layers is missing. Without it the two linear layers "
                "collapse into one n_embd x n_embd linear map.",
            ),
            Mistake(
                lambda x, w1, b1, w2, b2: gelu_tanh(gelu_tanh(x @ w1.T + b1) @ w2.T + b2),
                "GELU goes only between the two layers, not after c_proj: "
                "the MLP's output is added to the residual stream as it is.",
            ),
            Mistake(
                lambda x, w1, b1, w2, b2: gelu_tanh(x @ w1.T) @ w2.T + b2,
                "c_fc has a bias too: add b_fc before the GELU.",
            ),
            Mistake(
                lambda x, w1, b1, w2, b2: F.gelu(x @ w1.T + b1) @ w2.T + b2,
                "GPT-2's GELU is the tanh form (nn.GELU(approximate='tanh')), not the exact erf one.",
            ),
        ],
    )
