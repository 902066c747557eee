"""Chapter 8: what each piece buys. A GPT with one piece removed or changed.

``ablated_gpt(config, change)`` builds ``GPT(config)`` and then changes one thing, so a
model trained with the change differs from the full one in that piece only (with the same
seed, every weight they share starts equal):

    "none"                    GPT-2's pre-LN block, as the book builds it
    "no attention"            every block's attention branch adds nothing
    "no MLP"                  every block's MLP branch adds nothing
    "no residual"             x = attn(ln_1(x)); x = mlp(ln_2(x)): no additions
    "no LayerNorm"            ln_1, ln_2 and ln_f are the identity
    "post-LN"                 x = ln_1(x + attn(x)); x = ln_2(x + mlp(x)) (ln_f kept)
    "no position embedding"   wpe is gone: the input is the token embedding alone
    "GELU -> identity"        the MLP is linear: c_proj(c_fc(x))

A removed branch takes its parameters with it: "no MLP" has about a third of the
parameters of "none" in its blocks. The experiment in the book compares equal training
(same steps, same batches, same learning rates), not equal parameter counts.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from .config import GPTConfig
from .layers import Block
from .model import GPT
from .pretrained import data_path

CHANGES = (
    "none",
    "no attention",
    "no MLP",
    "no residual",
    "no LayerNorm",
    "post-LN",
    "no position embedding",
    "GELU -> identity",
)


class Nothing(nn.Module):
    """A branch that adds nothing: zeros of its input's shape."""

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        if cache is not None:
            raise ValueError("a model without attention has no keys or values to cache; generate with kv_cache=False")
        return torch.zeros_like(x)  # (B, T, C)


class NoPosition(nn.Module):
    """In place of wpe: a zero vector for every position (T, C)."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.n_embd = n_embd

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(pos), self.n_embd, device=pos.device)  # (T, C)


class NoResidualBlock(Block):
    """Each sublayer replaces the stream instead of adding to it."""

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        x = self.attn(self.ln_1(x), cache)  # (B, T, C)
        return self.mlp(self.ln_2(x))  # (B, T, C)


class PostLNBlock(Block):
    """The original Transformer's order: add, then normalise."""

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        x = self.ln_1(x + self.attn(x, cache))  # (B, T, C)
        return self.ln_2(x + self.mlp(x))  # (B, T, C)


def ablated_gpt(config: GPTConfig, change: str) -> GPT:
    """GPT(config) with one piece removed or changed (``CHANGES``, described above)."""
    if change not in CHANGES:
        raise ValueError(f"unknown change {change!r}; choose one of {', '.join(map(repr, CHANGES))}")
    model = GPT(config)
    blocks = model.transformer.h
    for i, block in enumerate(blocks):
        if change == "no attention":
            block.attn = Nothing()
        elif change == "no MLP":
            block.mlp = Nothing()
        elif change == "no LayerNorm":
            block.ln_1, block.ln_2 = nn.Identity(), nn.Identity()
        elif change == "GELU -> identity":
            block.mlp.gelu = nn.Identity()
        elif change in ("no residual", "post-LN"):
            new = (NoResidualBlock if change == "no residual" else PostLNBlock)(config)
            new.load_state_dict(block.state_dict())  # the same initial weights, another wiring
            blocks[i] = new
    if change == "no LayerNorm":
        model.transformer.ln_f = nn.Identity()
    if change == "no position embedding":
        model.transformer.wpe = NoPosition(config.n_embd)
    return model


def load_log() -> list[dict]:
    """The runs of ``scripts/ablate_pieces.py`` that ship in gptlib/data/ablation/log.jsonl:
    one dict per (change, seed), with the held-out loss and the evaluations along the way."""
    with open(data_path("ablation", "log.jsonl")) as f:
        return [json.loads(line) for line in f]
