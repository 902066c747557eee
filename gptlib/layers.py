"""Chapters 6 and 7: the MLP, LayerNorm, and the residual block.

Also Llama's versions of two of them, chosen by ``GPTConfig``: ``RMSNorm`` (norm="rmsnorm")
and the gated ``SwiGLU`` MLP (mlp="swiglu").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CausalSelfAttention
from .config import GPTConfig


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension, with an optional bias (GPT-2 has one).

    y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance and
    eps = 1e-5 inside the square root, as GPT-2 and ``torch.nn.LayerNorm`` do.
    """

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, bias={self.bias is not None}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019), Llama's norm: y = x / sqrt(mean(x^2) + eps) * weight.

    Unlike LayerNorm it subtracts no mean and has no bias: it only rescales each position's
    vector to a root mean square of 1, then by the learned weight. Computed as Hugging Face's
    ``LlamaRMSNorm``: in float32, cast back to the input's dtype, then multiplied by the weight.
    """

    def __init__(self, ndim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.to(torch.float32)
        mean_square = x32.pow(2).mean(-1, keepdim=True)  # (B, T, 1)
        x32 = x32 * torch.rsqrt(mean_square + self.eps)  # (B, T, C), root mean square 1
        return self.weight * x32.to(x.dtype)


def norm_layer(config: GPTConfig) -> nn.Module:
    """The norm a config asks for (ln_1, ln_2 and ln_f): GPT-2's LayerNorm or Llama's RMSNorm."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return LayerNorm(config.n_embd, bias=config.bias, eps=config.norm_eps)


class MLP(nn.Module):
    """The feed-forward network of a block: 768 -> 3072 -> 768, GELU (tanh form) between.

    It acts on each position on its own; positions only meet in attention. ``hidden``
    is GPT-2's 4 * n_embd unless given.
    """

    def __init__(self, n_embd: int, bias: bool = True, dropout: float = 0.0, hidden: int | None = None):
        super().__init__()
        hidden = 4 * n_embd if hidden is None else hidden
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gelu(self.c_fc(x))  # (B, T, C) -> (B, T, 4C)
        return self.dropout(self.c_proj(h))  # (B, T, 4C) -> (B, T, C)


class SwiGLU(nn.Module):
    """Llama's MLP, SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"): a gated MLP.

    c_proj(silu(c_gate(x)) * c_fc(x)): two matrices go up to the hidden width, one of them
    through SiLU, and their product (the gate times the value) comes back down. Names map to
    Hugging Face's ``LlamaMLP``: c_gate = gate_proj, c_fc = up_proj, c_proj = down_proj, so
    c_fc and c_proj keep their GPT-2 roles (up, down). The hidden width is ``GPTConfig.mlp_width``.
    """

    def __init__(self, n_embd: int, hidden: int, bias: bool = False, dropout: float = 0.0):
        super().__init__()
        self.c_gate = nn.Linear(n_embd, hidden, bias=bias)
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.c_gate(x)) * self.c_fc(x)  # (B, T, C) -> (B, T, hidden)
        return self.dropout(self.c_proj(h))  # (B, T, hidden) -> (B, T, C)


class Block(nn.Module):
    """One transformer block, pre-LayerNorm, shape kept at (B, T, C):

    x = x + attn(ln_1(x))
    x = x + mlp(ln_2(x))
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = norm_layer(config)
        self.attn = CausalSelfAttention(
            config.n_embd,
            config.n_head,
            bias=config.bias,
            dropout=config.dropout,
            n_kv_head=config.n_kv_head,
            rope_theta=config.rope_theta if config.position == "rope" else None,
        )
        self.ln_2 = norm_layer(config)
        if config.mlp == "swiglu":
            self.mlp = SwiGLU(config.n_embd, config.mlp_width, bias=config.bias, dropout=config.dropout)
        else:
            self.mlp = MLP(config.n_embd, bias=config.bias, dropout=config.dropout, hidden=config.mlp_width)

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache)  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return x
