"""Chapter 0: the configuration of a GPT, and the named presets the book uses.

The running example is ``gpt2-512``: GPT-2 small (768 dims, 12 heads, 12 layers,
50,257 tokens) with a context of 512 positions. GPT-2 itself used 1,024 positions
(preset ``gpt2``); everything else is the same.

Beyond GPT-2's seven fields, ``GPTConfig`` has the options that turn GPT-2 into a Llama
(rotary positions, RMSNorm, a SwiGLU MLP, grouped-query attention, an untied lm_head).
Every option is off by default: ``GPTConfig()`` is GPT-2, with the same shapes, the same
parameters and the same results as before the options existed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

GPT2_VOCAB_SIZE = 50257  # 50,000 BPE merges + 256 byte tokens + <|endoftext|>


POSITIONS = ("learned", "rope")  # GPT-2's wpe table; rotary positions (gptlib.rope)
NORMS = ("layernorm", "rmsnorm")  # GPT-2's LayerNorm; Llama's RMSNorm
MLPS = ("gelu", "swiglu")  # GPT-2's c_fc, GELU, c_proj; Llama's gated MLP
# The options after GPT-2's seven fields; each default is GPT-2's choice.
OPTIONS = ("position", "rope_theta", "norm", "norm_eps", "mlp", "mlp_hidden", "n_kv_head", "tie_embeddings")


def swiglu_hidden(n_embd: int, multiple_of: int = 256) -> int:
    """The hidden width of a SwiGLU MLP by Meta's Llama rule: two thirds of GPT-2's 4 * n_embd
    (so that three matrices hold about as many weights as GPT-2's two), rounded up to a multiple
    of ``multiple_of`` (256 in Llama 1 and Llama 2 7B and 13B; Meta's larger and later models
    also multiply by an ffn_dim_multiplier, so a checkpoint's own intermediate_size is what
    counts). n_embd 4096 gives Llama-7B's 11,008; 768 gives 2,048, and then the MLP has
    exactly GPT-2's 3 x 768 x 2048 = 2 x 768 x 3072 weights."""
    hidden = int(2 * (4 * n_embd) / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


@dataclass(frozen=True)
class GPTConfig:
    """The seven numbers that fix a GPT's shapes, and the options of later models.

    ``head_size`` is derived: ``n_embd // n_head`` (768 // 12 = 64). The heads split
    the embedding dimension, not the tokens: every head sees all ``block_size``
    positions.

    The options (``OPTIONS``) default to GPT-2's choices. A Llama sets them:
    ``position="rope"``, ``norm="rmsnorm"`` (with its ``rms_norm_eps`` as ``norm_eps``),
    ``mlp="swiglu"``, ``n_kv_head`` below ``n_head`` (from Llama 2's larger models and
    Llama 3 on), ``bias=False`` and
    ``tie_embeddings=False`` (``gptlib.llama.config_from_llama`` reads them from a
    Hugging Face config.json).
    """

    vocab_size: int = GPT2_VOCAB_SIZE
    block_size: int = 512
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    # "learned": GPT-2's position table wpe (block_size x n_embd), added to the token embeddings.
    # "rope": no wpe; attention rotates each head's queries and keys by their position (gptlib.rope).
    position: str = "learned"
    rope_theta: float = 10000.0  # rope's base: pair i of a head turns at pos * rope_theta ** (-2i / head_size)
    # "layernorm": GPT-2's (x - mean) / std * weight + bias; "rmsnorm": Llama's x / rms * weight.
    # Used for ln_1, ln_2 and ln_f alike. norm_eps is inside the square root (GPT-2: 1e-5;
    # Llama: its config's rms_norm_eps, 1e-6 or 1e-5).
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    # "gelu": GPT-2's MLP, c_proj(gelu(c_fc(x))); "swiglu": Llama's, c_proj(silu(c_gate(x)) * c_fc(x)).
    mlp: str = "gelu"
    # The MLP's hidden width; None: GPT-2's 4 * n_embd (gelu), Meta's Llama rule (swiglu: swiglu_hidden).
    mlp_hidden: int | None = None
    # Key and value heads; None: n_head (GPT-2: every query head has its own). Query head h
    # reads key/value head h // (n_head // n_kv_head), as Hugging Face's repeat_kv; 1 = multi-query.
    n_kv_head: int | None = None
    tie_embeddings: bool = True  # lm_head shares wte's matrix (GPT-2); False: lm_head has its own (Llama)

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
        self.check_options()

    def check_options(self) -> None:
        """Raise a clear ValueError or TypeError for an option that means nothing."""
        for name, choices in (("position", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"GPTConfig.{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"GPTConfig.{name} must be a number > 0, got {value!r}")
        if self.position == "rope" and self.head_size % 2:
            raise ValueError(
                f"position='rope' turns the dimensions of each head in pairs, so head_size must be even; "
                f"n_embd={self.n_embd} // n_head={self.n_head} = {self.head_size} is odd"
            )
        for name in ("mlp_hidden", "n_kv_head"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"GPTConfig.{name} must be None or an int >= 1, got {value!r}")
        if self.n_kv_head is not None and self.n_head % self.n_kv_head:
            divisors = [d for d in range(1, self.n_head + 1) if self.n_head % d == 0]
            raise ValueError(
                f"GPTConfig.n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}: each key/value "
                f"head serves a group of n_head // n_kv_head query heads; choose n_kv_head among "
                f"{', '.join(map(str, divisors))}"
            )
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"GPTConfig.tie_embeddings must be True or False, got {self.tie_embeddings!r}")

    def __repr__(self) -> str:
        """GPT-2's seven fields always; an option only when it differs from GPT-2's default, so
        that a GPT-2 configuration prints as it did before the options existed."""
        fields = [f for f in dataclasses.fields(self) if f.name not in OPTIONS or f.name in self.non_gpt2_options()]
        return f"GPTConfig({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in fields)})"

    def non_gpt2_options(self) -> dict:
        """The options set to something else than GPT-2's default, by name (empty for GPT-2)."""
        defaults = {f.name: f.default for f in dataclasses.fields(GPTConfig)}
        return {name: getattr(self, name) for name in OPTIONS if getattr(self, name) != defaults[name]}

    @property
    def kv_heads(self) -> int:
        """Key and value heads: n_kv_head, or n_head when it is None (GPT-2)."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def mlp_width(self) -> int:
        """The MLP's hidden width: mlp_hidden, else 4 * n_embd (gelu, GPT-2's 3,072) or
        ``swiglu_hidden(n_embd)`` (swiglu, Meta's Llama rule)."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        return 4 * self.n_embd if self.mlp == "gelu" else swiglu_hidden(self.n_embd)

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
