"""Chapter 2 exercises: token and position embeddings."""

from __future__ import annotations

import torch

from ..config import GPTConfig
from . import Mistake, check

# ---------------------------------------------------------------------------
# Exercise 1: the first stage of GPT, x = wte[idx] + wpe[pos].


def embed(idx: torch.Tensor, wte: torch.Tensor, wpe: torch.Tensor) -> torch.Tensor:
    """Token plus position embeddings (B, T, C) for token ids idx (B, T).

    wte is the token table (vocab_size, C), wpe the position table (block_size, C).
    """
    T = idx.shape[1]
    pos = torch.arange(T, device=idx.device)  # 0, 1, ..., T-1
    return wte[idx] + wpe[pos]


def _embed_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(2)

    def case(B, T, vocab, block, C):
        idx = torch.randint(0, vocab, (B, T), generator=g)
        return idx, torch.randn(vocab, C, generator=g), torch.randn(block, C, generator=g)

    # Token ids stay below block_size and T below block_size, so that the typical
    # mistakes run without an index error and can be recognised for their hint.
    return [case(2, 5, 11, 16, 6), case(1, 15, 13, 16, 6), case(3, 1, 7, 8, 4), case(2, 12, 20, 32, 8)]


def check_embed(fn) -> str:
    """Exercise: embed(idx, wte, wpe) -> x of shape (B, T, C)."""
    return check(
        "embed",
        fn,
        embed,
        cases=_embed_cases(),
        mistakes=[
            Mistake(
                lambda idx, wte, wpe: wte[idx],
                "you returned the token embeddings only. Add the position embeddings "
                "wpe[pos] for pos = 0, 1, ..., T-1, or the model cannot tell where a token is.",
            ),
            Mistake(
                lambda idx, wte, wpe: wte[idx] + wpe[idx],
                "you looked up the positions with the token ids. The position of the token "
                "at index t is t itself: pos = torch.arange(T).",
            ),
            Mistake(
                lambda idx, wte, wpe: wte[idx] + wpe[1 : idx.shape[1] + 1],
                "positions start at 0: the first token uses row 0 of wpe, so pos = torch.arange(T).",
            ),
            Mistake(
                lambda idx, wte, wpe: torch.cat([wte[idx], wpe[: idx.shape[1]].expand(idx.shape[0], -1, -1)], dim=-1),
                "the two embeddings are added, not concatenated: x keeps C dimensions.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 2: how many parameters the two embedding tables hold.


def embedding_params(config: GPTConfig) -> int:
    """Parameters of wte and wpe, counted once each (lm_head shares wte's matrix)."""
    return config.vocab_size * config.n_embd + config.block_size * config.n_embd


PRESET_CASES = [(GPTConfig.from_preset(name),) for name in ("gpt2-512", "gpt2", "shakespeare-char", "tiny", "gpt2-xl")]


def check_embedding_params(fn) -> str:
    """Exercise: embedding_params(config) -> int."""
    return check(
        "embedding_params",
        fn,
        embedding_params,
        cases=PRESET_CASES,
        mistakes=[
            Mistake(
                lambda c: 2 * c.vocab_size * c.n_embd + c.block_size * c.n_embd,
                "lm_head is the same matrix as wte (weight tying): count it once.",
            ),
            Mistake(
                lambda c: c.vocab_size * c.n_embd,
                "that is wte alone: add the position table wpe, block_size x n_embd.",
            ),
            Mistake(
                lambda c: c.vocab_size * c.n_embd + 1024 * c.n_embd,
                "the position table has config.block_size rows (512 in gpt2-512), not always 1024.",
            ),
        ],
    )
