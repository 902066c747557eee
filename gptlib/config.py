"""Chapter 0: the configuration of a GPT, and the named presets the book uses.

The running example is ``gpt2-512``: GPT-2 small (768 dims, 12 heads, 12 layers,
50,257 tokens) with a context of 512 positions. GPT-2 itself used 1,024 positions
(preset ``gpt2``); everything else is the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

GPT2_VOCAB_SIZE = 50257  # 50,000 BPE merges + 256 byte tokens + <|endoftext|>


@dataclass(frozen=True)
class GPTConfig:
    """The seven numbers that fix a GPT's shapes.

    ``head_size`` is derived: ``n_embd // n_head`` (768 // 12 = 64). The heads split
    the embedding dimension, not the tokens: every head sees all ``block_size``
    positions.
    """

    vocab_size: int = GPT2_VOCAB_SIZE
    block_size: int = 512
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"GPTConfig.{name} must be an int, got {value!r} ({type(value).__name__})")
            if value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive int (>= 1), got {value}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
                f"each head gets n_embd // n_head dimensions, so n_embd must be a multiple of n_head "
                f"(for example n_embd={self.n_head * max(1, self.n_embd // self.n_head)})"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise TypeError(f"GPTConfig.dropout must be a float, got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.bias, bool):
            raise TypeError(f"GPTConfig.bias must be True or False, got {self.bias!r}")

    @property
    def head_size(self) -> int:
        """Dimensions per head: n_embd // n_head (768 // 12 = 64)."""
        return self.n_embd // self.n_head

    def replace(self, **changes) -> GPTConfig:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_preset(cls, name: str, **changes) -> GPTConfig:
        """One of the named presets in ``PRESETS``, optionally with fields changed."""
        if name not in PRESETS:
            known = ", ".join(PRESETS)
            raise ValueError(f"unknown preset {name!r}; known presets: {known}")
        return PRESETS[name].replace(**changes) if changes else PRESETS[name]


PRESETS: dict[str, GPTConfig] = {
    # GPT-2 as OpenAI released it: 124M parameters, 1,024 positions.
    "gpt2": GPTConfig(block_size=1024),
    # The book's running example: GPT-2 small with 512 positions.
    "gpt2-512": GPTConfig(block_size=512),
    "gpt2-medium": GPTConfig(block_size=1024, n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": GPTConfig(block_size=1024, n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": GPTConfig(block_size=1024, n_layer=48, n_head=25, n_embd=1600),
    # nanoGPT's character-level Shakespeare model. vocab_size is the size of the
    # character vocabulary of the text it is trained on; 65 is tiny-shakespeare's.
    "shakespeare-char": GPTConfig(
        vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, bias=False
    ),
    # Small enough for tests and quick demos.
    "tiny": GPTConfig(vocab_size=512, block_size=32, n_layer=2, n_head=4, n_embd=64),
}


def check_token_ids(idx, config: GPTConfig, name: str = "idx", past: int = 0, check_length: bool = True) -> None:
    """Raise a clear TypeError/ValueError unless idx is a (B, T) integer tensor that fits config:
    ids in [0, vocab_size), and (with check_length) past + T <= block_size."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(idx).__name__}")
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids (torch.long), got dtype {idx.dtype}")
    if idx.dim() != 2:
        raise ValueError(
            f"{name} must have shape (B, T), got shape {tuple(idx.shape)}"
            + ("; add a batch dimension with idx[None]" if idx.dim() == 1 else "")
        )
    B, T = idx.shape
    if B == 0 or T == 0:
        raise ValueError(f"{name} is empty (shape {tuple(idx.shape)}); it needs at least one token")
    if check_length and past + T > config.block_size:
        length = f"{past} cached + {T} new = {past + T}" if past else str(T)
        raise ValueError(
            f"sequence length {length} is longer than block_size {config.block_size}; "
            f"crop the input to its last {config.block_size} tokens"
        )
    if idx.device.type != "meta":
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= config.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} in {name} is outside [0, {config.vocab_size}) (vocab_size)")
