"""Chapters 3 to 5: one attention head, the causal mask, many heads.

Shapes in the comments use B (batch), T (sequence length), C (n_embd, 768),
nh (n_head, 12) and hs (head_size, 64).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(T: int, device=None) -> torch.Tensor:
    """The T x T causal mask: entry [i, j] is True when position i may look at j (j <= i).

    It is lower-triangular; it allows T * (T + 1) / 2 pairs (131,328 for T = 512).
    """
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise ValueError(f"causal_mask needs a positive int T, got {T!r}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T)


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0):
    """Attention written out: softmax(Q K^T / sqrt(hs)) V, with the weights returned.

    q: (..., T_q, hs), k and v: (..., T_k, hs); mask: bool, broadcastable to
    (..., T_q, T_k), True where attending is allowed. Returns (out, weights) with
    out (..., T_q, hs) and weights (..., T_q, T_k); each row of weights sums to 1.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., T_q, T_k)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., T_q, hs), (..., T_q, T_k)


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, nh, T, hs): cut the queries, keys or values into n_head pieces.

    It is applied to q, k and v after c_attn, which made each of them from all C numbers
    of every token: each head gets hs of their C dimensions, never a piece of the input x.
    The tokens are not split either: every head keeps all T positions.
    """
    B, T, C = x.shape
    if C % n_head != 0:
        raise ValueError(f"cannot split {C} dimensions into {n_head} heads: {C} % {n_head} != 0")
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, nh, T, hs) -> (B, T, C): join the heads' outputs again, C = nh * hs, for c_proj."""
    B, nh, T, hs = x.shape
    return x.transpose(1, 2).contiguous().view(B, T, nh * hs)  # (B, T, C)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, GPT-2's ``attn`` inside each block.

    ``c_attn`` makes Q, K and V in one matrix multiply (768 -> 3 * 768 = 2304);
    ``c_proj`` mixes the joined heads (768 -> 768). Two paths give the same result:
    the fast one, ``torch.nn.functional.scaled_dot_product_attention`` (the default),
    and the written-out one (``fast=False``), which is the book's code.
    """

    def __init__(self, n_embd: int, n_head: int, bias: bool = True, dropout: float = 0.0, fast: bool = True):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_embd = n_embd
        self.n_head = n_head
        self.dropout = dropout
        self.fast = fast
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def qkv(self, x: torch.Tensor):
        """Queries, keys and values, each (B, nh, T, hs), from x (B, T, C)."""
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        return split_heads(q, self.n_head), split_heads(k, self.n_head), split_heads(v, self.n_head)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). With a cache, x holds only the new positions: their
        keys and values are appended to the cache, and they attend to all cached ones."""
        T = x.size(1)
        q, k, v = self.qkv(x)  # 3 x (B, nh, T, hs)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)  # (B, nh, past + T, hs)
        dropout_p = self.dropout if self.training else 0.0
        if self.fast:
            # Without a past, is_causal builds the mask; one new token may see everything cached.
            mask = None if past == 0 or T == 1 else causal_mask(past + T, x.device)[past:]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=past == 0)
        else:
            mask = causal_mask(past + T, x.device)[past:]  # rows of the new queries: (T, past + T)
            y, _ = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        y = merge_heads(y)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, nh, T, T) attention weights this layer computes for x, for plotting."""
        q, k, v = self.qkv(x)
        _, weights = scaled_dot_product_attention(q, k, v, causal_mask(x.size(1), x.device))
        return weights  # (B, nh, T, T)


class LayerCache:
    """One layer's keys and values for the positions seen so far (the KV cache).

    In generation, each new token needs the keys and values of every earlier token.
    They do not change, so they are kept instead of being computed again.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None  # (B, nh, T_past, hs)
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    def append(self, k: torch.Tensor, v: torch.Tensor):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)  # (B, nh, T_past + T, hs)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


class KVCache:
    """The KV cache of a whole model: one LayerCache per block."""

    def __init__(self, n_layer: int) -> None:
        self.layers = [LayerCache() for _ in range(n_layer)]

    @property
    def length(self) -> int:
        """How many positions are cached."""
        return self.layers[0].length


class StaticLayerCache:
    """A LayerCache that does not grow: room for ``capacity`` positions, allocated at the
    first append, filled in place. ``generate`` uses it so that no step copies the cache."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.length = 0
        self.k_buffer: torch.Tensor | None = None  # (B, nh, capacity, hs)
        self.v_buffer: torch.Tensor | None = None

    @property
    def k(self) -> torch.Tensor | None:
        return None if self.k_buffer is None else self.k_buffer[:, :, : self.length]  # (B, nh, T_past, hs)

    @property
    def v(self) -> torch.Tensor | None:
        return None if self.v_buffer is None else self.v_buffer[:, :, : self.length]

    def append(self, k: torch.Tensor, v: torch.Tensor):
        end = self.length + k.size(2)
        if end > self.capacity:
            raise ValueError(
                f"the cache holds {self.capacity} positions; {self.length} cached + {k.size(2)} new = {end}"
            )
        if self.k_buffer is None:
            B, nh, _, hs = k.shape
            self.k_buffer = k.new_empty(B, nh, self.capacity, hs)
            self.v_buffer = v.new_empty(B, nh, self.capacity, hs)
        self.k_buffer[:, :, self.length : end] = k  # written in place: no torch.cat
        self.v_buffer[:, :, self.length : end] = v
        self.length = end
        return self.k_buffer[:, :, :end], self.v_buffer[:, :, :end]  # (B, nh, T_past + T, hs)


class StaticKVCache:
    """The KV cache of a whole model, one StaticLayerCache per block, each with room for
    ``capacity`` (normally block_size) positions."""

    def __init__(self, n_layer: int, capacity: int) -> None:
        self.layers = [StaticLayerCache(capacity) for _ in range(n_layer)]

    @classmethod
    def for_model(cls, model) -> StaticKVCache:
        """A cache with room for the model's whole context (block_size positions)."""
        return cls(model.config.n_layer, model.config.block_size)

    @property
    def length(self) -> int:
        """How many positions are cached."""
        return self.layers[0].length
