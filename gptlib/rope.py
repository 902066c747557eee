"""Rotary position embeddings (RoPE; Su et al. 2021, "RoFormer"), as Llama uses them.

GPT-2 tells a token where it is by adding a learned vector, a row of ``wpe``, to its
embedding. RoPE adds nothing: inside attention it turns each head's query and key at
position ``pos`` by angles proportional to ``pos``. A head's ``hs`` dimensions form hs / 2
pairs; pair i turns by ``pos * theta ** (-2i / hs)`` (theta = ``rope_theta``, 10,000 in
Llama 1 and 2), fast for the first pairs and slowly for the last. Turning a query by
angle a and a key by angle b leaves their dot product depending on b - a only, so the
score of query position i and key position j depends on the positions through i - j.

Whose convention: Hugging Face's Llama (``rotate_half`` in transformers'
``modeling_llama.py``). Pair i is (dimension i, dimension i + hs/2): the first half of
the head with the second half. Meta's original Llama code pairs adjacent dimensions,
(2i, 2i + 1), as the real and imaginary parts of a complex number. The two give the same
scores once the rows of each head's query and key weights are put in another order:
Hugging Face's dimension j is Meta's dimension ``meta_to_hf_order(hs)[j]``,

    [0, 2, 4, ..., hs - 2, 1, 3, 5, ..., hs - 1],

Meta's even dimensions first, then the odd ones. That is the permutation Hugging Face's
``convert_llama_weights_to_hf.py`` applies to q_proj and k_proj (``meta_to_hf_rows``).
Checkpoints from the Hugging Face hub are already in this order.

Shapes: B (batch), nh (heads), T (positions), hs (head_size).
"""

from __future__ import annotations

import torch


def inverse_frequencies(head_size: int, theta: float = 10000.0) -> torch.Tensor:
    """theta ** (-2i / hs) for the hs / 2 pairs i = 0, 1, ...: the angle each pair turns per position.

    Computed as Hugging Face's ``LlamaRotaryEmbedding`` does, in float32."""
    return 1.0 / (theta ** (torch.arange(0, head_size, 2, dtype=torch.float) / head_size))  # (hs/2,)


def rope_angles(positions: torch.Tensor, head_size: int, theta: float = 10000.0, dtype=torch.float32):
    """(cos, sin), each (T, hs), of the angles at the given positions (T,).

    Column i and column i + hs/2 hold the same angle, that of pair i (Hugging Face's layout).
    The angles are computed in float32 and the result cast to dtype, as Hugging Face does."""
    freqs = positions[:, None].float() * inverse_frequencies(head_size, theta).to(positions.device)  # (T, hs/2)
    angles = torch.cat((freqs, freqs), dim=-1)  # (T, hs): pair i's angle at columns i and i + hs/2
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) for the two halves of the last dimension: each pair (i, i + hs/2)
    turned by 90 degrees."""
    half = x.size(-1) // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn queries or keys x (B, nh, T, hs) by the angles of their positions: cos and sin
    (T, hs) from ``rope_angles``. Shape kept: (B, nh, T, hs)."""
    return (x * cos) + (rotate_half(x) * sin)


def meta_to_hf_order(head_size: int) -> torch.Tensor:
    """The order of a head's dimensions that turns Meta's RoPE convention into Hugging Face's:
    [0, 2, ..., hs - 2, 1, 3, ..., hs - 1] (see the module's docstring)."""
    return torch.cat((torch.arange(0, head_size, 2), torch.arange(1, head_size, 2)))  # (hs,)


def meta_to_hf_rows(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """A query or key weight of Meta's layout (n_head * hs, C) with each head's rows put in
    Hugging Face's order; the same (n_head * hs, C) shape."""
    rows, C = weight.shape
    hs = rows // n_head
    return weight.view(n_head, hs, C)[:, meta_to_hf_order(hs)].reshape(rows, C)
