"""Chapters 3 to 5: one attention head, the causal mask, many heads.

Shapes in the comments use B (batch), T (sequence length), C (n_embd, 768),
nh (n_head, 12), hs (head_size, 64) and nkv (key/value heads: n_head in GPT-2, fewer with
grouped-query attention).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .rope import apply_rope, rope_angles


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


def repeat_kv(x: torch.Tensor, group: int) -> torch.Tensor:
    """(B, nkv, T, hs) -> (B, nkv * group, T, hs): each key/value head repeated for the group of
    query heads that reads it. Query head h reads key/value head h // group, Hugging Face's
    ``repeat_kv`` order (the same as ``torch.repeat_interleave(x, group, dim=1)``)."""
    if group == 1:
        return x  # GPT-2: one key/value head per query head
    B, nkv, T, hs = x.shape
    return x[:, :, None].expand(B, nkv, group, T, hs).reshape(B, nkv * group, T, hs)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, GPT-2's ``attn`` inside each block.

    ``c_attn`` makes Q, K and V in one matrix multiply (768 -> 3 * 768 = 2304);
    ``c_proj`` mixes the joined heads (768 -> 768). Two paths give the same result:
    the fast one, ``torch.nn.functional.scaled_dot_product_attention`` (the default),
    and the written-out one (``fast=False``), which is the book's code.

    Two options of later models, both off by default (GPT-2):

    - ``n_kv_head`` (grouped-query attention, Llama 2's larger models): fewer key and value
      heads than query heads. c_attn makes n_head * hs query numbers and n_kv_head * hs key
      and value numbers ((n_head + 2 * n_kv_head) * hs in all, in this order), and each key/value
      head serves n_head // n_kv_head query heads (``repeat_kv``). n_kv_head=1 is multi-query.
    - ``rope_theta`` (rotary positions, ``gptlib.rope``): queries and keys are turned by their
      positions before the scores; None (GPT-2) turns nothing.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        bias: bool = True,
        dropout: float = 0.0,
        fast: bool = True,
        n_kv_head: int | None = None,
        rope_theta: float | None = None,
    ):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        if n_head % n_kv_head != 0:
            raise ValueError(f"n_head={n_head} is not divisible by n_kv_head={n_kv_head}")
        self.n_embd = n_embd
        self.n_head = n_head
        self.n_kv_head = n_kv_head
        self.head_size = n_embd // n_head
        if rope_theta is not None and self.head_size % 2:
            raise ValueError(f"rotary positions need an even head_size, got {self.head_size}")
        self.rope_theta = rope_theta
        self.dropout = dropout
        self.fast = fast
        self.kv_size = n_kv_head * self.head_size  # key (and value) numbers per token: C in GPT-2
        self.c_attn = nn.Linear(n_embd, n_embd + 2 * self.kv_size, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def qkv(self, x: torch.Tensor, past: int = 0):
        """Queries (B, nh, T, hs), keys and values (B, nkv, T, hs) from x (B, T, C).

        With rotary positions, queries and keys come out turned by their positions
        past, past + 1, ..., past + T - 1."""
        sizes = [self.n_embd, self.kv_size, self.kv_size]  # queries, keys, values: 3 x C in GPT-2
        q, k, v = self.c_attn(x).split(sizes, dim=2)  # (B, T, C), 2 x (B, T, nkv * hs)
        q, k, v = split_heads(q, self.n_head), split_heads(k, self.n_kv_head), split_heads(v, self.n_kv_head)
        if self.rope_theta is not None:
            positions = torch.arange(past, past + x.size(1), device=x.device)  # (T,)
            cos, sin = rope_angles(positions, self.head_size, self.rope_theta, q.dtype)  # (T, hs) each
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). With a cache, x holds only the new positions: their
        keys and values are appended to the cache, and they attend to all cached ones.
        With rotary positions the cache holds keys already turned at their own positions."""
        T = x.size(1)
        past = 0 if cache is None else cache.length
        q, k, v = self.qkv(x, past)  # (B, nh, T, hs), 2 x (B, nkv, T, hs)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, nkv, past + T, hs)
        group = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, group), repeat_kv(v, group)  # (B, nh, past + T, hs)
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
        group = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, group), repeat_kv(v, group)  # (B, nh, T, hs)
        _, weights = scaled_dot_product_attention(q, k, v, causal_mask(x.size(1), x.device))
        return weights  # (B, nh, T, T)


class LayerCache:
    """One layer's keys and values for the positions seen so far (the KV cache).

    In generation, each new token needs the keys and values of every earlier token.
    They do not change, so they are kept instead of being computed again.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None  # (B, nkv, T_past, hs)
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    @property
    def nbytes(self) -> int:
        """Bytes the cached keys and values take."""
        return 0 if self.k is None else self.k.nbytes + self.v.nbytes

    def append(self, k: torch.Tensor, v: torch.Tensor):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)  # (B, nkv, T_past + T, hs)
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

    @property
    def nbytes(self) -> int:
        """Bytes of memory the cache holds, all layers: 2 (k, v) x n_layer x B x nkv x T x hs x
        the bytes of one number. Grouped-query attention caches n_kv_head heads, not n_head."""
        return sum(layer.nbytes for layer in self.layers)


class StaticLayerCache:
    """A LayerCache that does not grow: room for ``capacity`` positions, allocated at the
    first append, filled in place. ``generate`` uses it so that no step copies the cache."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.length = 0
        self.k_buffer: torch.Tensor | None = None  # (B, nkv, capacity, hs)
        self.v_buffer: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        """Bytes the two buffers take (allocated for all ``capacity`` positions)."""
        return 0 if self.k_buffer is None else self.k_buffer.nbytes + self.v_buffer.nbytes

    @property
    def k(self) -> torch.Tensor | None:
        return None if self.k_buffer is None else self.k_buffer[:, :, : self.length]  # (B, nkv, T_past, hs)

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
            B, nkv, _, hs = k.shape
            self.k_buffer = k.new_empty(B, nkv, self.capacity, hs)
            self.v_buffer = v.new_empty(B, nkv, self.capacity, hs)
        self.k_buffer[:, :, self.length : end] = k  # written in place: no torch.cat
        self.v_buffer[:, :, self.length : end] = v
        self.length = end
        return self.k_buffer[:, :, :end], self.v_buffer[:, :, :end]  # (B, nkv, T_past + T, hs)


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

    @property
    def nbytes(self) -> int:
        """Bytes of memory the cache holds, all layers: 2 (k, v) x n_layer x B x nkv x T x hs x
        the bytes of one number. Grouped-query attention caches n_kv_head heads, not n_head."""
        return sum(layer.nbytes for layer in self.layers)
