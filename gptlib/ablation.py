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

The same question for the changes that lead from GPT-2 to today's open models (Meta's
Llama): ``modern_config(config, change)`` sets GPTConfig's options for one of
``MODERN_CHANGES``, each alone and then all four together:

    "gpt2"      GPT-2's choices: learned positions, LayerNorm, GELU MLP, a key/value per head
    "rope"      rotary positions, no wpe (position="rope")
    "rmsnorm"   RMSNorm for ln_1, ln_2 and ln_f (norm="rmsnorm")
    "swiglu"    the gated MLP, with about GPT-2's MLP parameters (mlp="swiglu", mlp_hidden)
    "gqa"       grouped-query attention: half as many key/value heads (n_kv_head)
    "all"       the four together, as in Llama (embeddings stay tied: not one of the four)

scripts/ablate_modern.py trains each for the same CPU time (a faster change gets more
steps); its log ships in gptlib/data/modern/. ``load_log("modern")`` reads it.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from .config import GPTConfig, swiglu_hidden
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


MODERN_CHANGES = ("gpt2", "rope", "rmsnorm", "swiglu", "gqa", "all")


def modern_options(config: GPTConfig, change: str) -> dict:
    """The GPTConfig options that one of ``MODERN_CHANGES`` sets, for a model of config's shape.

    SwiGLU's hidden width is Meta's rule, 2/3 of GPT-2's 4 * n_embd, rounded up to a multiple
    of 8 rather than Llama's 256 (at n_embd 128 that would be 512 and 1.5x the MLP's weights):
    344 for n_embd 128, so its three matrices (3 x 128 x 344 = 132,096 weights) hold about
    GPT-2's two (2 x 128 x 512 = 131,072). Grouped-query attention keeps n_head // 2 key/value
    heads: each serves two query heads."""
    if change not in MODERN_CHANGES:
        raise ValueError(f"unknown change {change!r}; choose one of {', '.join(map(repr, MODERN_CHANGES))}")
    if config.non_gpt2_options():
        raise ValueError(f"start from GPT-2's choices; this config already sets {config.non_gpt2_options()}")
    if change in ("gqa", "all") and config.n_head % 2:
        raise ValueError(f"grouped-query attention here halves the key/value heads: n_head={config.n_head} is odd")
    each = {
        "rope": dict(position="rope"),
        "rmsnorm": dict(norm="rmsnorm"),
        "swiglu": dict(mlp="swiglu", mlp_hidden=swiglu_hidden(config.n_embd, multiple_of=8)),
        "gqa": dict(n_kv_head=config.n_head // 2),
    }
    if change == "all":
        return {k: v for options in each.values() for k, v in options.items()}
    return dict(each.get(change, {}))


def modern_config(config: GPTConfig, change: str) -> GPTConfig:
    """config (GPT-2's choices) with one of ``MODERN_CHANGES`` made (see ``modern_options``)."""
    return config.replace(**modern_options(config, change))


LOGS = {"ablation": "scripts/ablate_pieces.py", "modern": "scripts/ablate_modern.py"}


def load_log(experiment: str = "ablation") -> list[dict]:
    """The runs that ship in gptlib/data/EXPERIMENT/log.jsonl, one dict per run:

    "ablation"  ``scripts/ablate_pieces.py``, one run per (change, seed) of ``CHANGES``, each
                the same number of steps
    "modern"    ``scripts/ablate_modern.py``, one run per (config, seed) of
                ``MODERN_CHANGES``, each the same CPU time

    Each has the held-out loss (``val_loss``) and the trainer's evaluations along the way."""
    if experiment not in LOGS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(map(repr, LOGS))}")
    with open(data_path(experiment, "log.jsonl")) as f:
        return [json.loads(line) for line in f]
