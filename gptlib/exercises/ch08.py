"""Chapter 8 exercises: the whole GPT, its parameters and its memory."""

from __future__ import annotations

import torch

from ..config import GPTConfig
from ..model import GPT
from . import Mistake, check, whole_number

# ---------------------------------------------------------------------------
# Exercise 1: count the parameters of a GPT from its configuration alone.


def count_parameters(config: GPTConfig) -> int:
    """The number of parameters of GPT(config), from the formula (lm_head is tied to wte)."""
    V, T, L, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    return V * C + T * C + L * _one_block(config) + _one_layernorm(config)  # wte, wpe, blocks, ln_f


def _one_layernorm(config: GPTConfig) -> int:
    return (2 if config.bias else 1) * config.n_embd  # weight, and bias when there is one


def _one_block(config: GPTConfig) -> int:
    C, b = config.n_embd, (1 if config.bias else 0)
    attention = C * 3 * C + b * 3 * C + C * C + b * C  # c_attn, c_proj
    mlp = C * 4 * C + b * 4 * C + 4 * C * C + b * C  # c_fc, c_proj
    return 2 * _one_layernorm(config) + attention + mlp  # ln_1, ln_2, attn, mlp


def _count_on_meta(config: GPTConfig) -> int:
    with torch.device("meta"):
        return GPT(config).num_parameters()


def _linear_biases(config: GPTConfig) -> int:
    return config.n_layer * 9 * config.n_embd if config.bias else 0  # 3C + C + 4C + C per block


def _layernorm_params(config: GPTConfig) -> int:
    return (2 * config.n_layer + 1) * _one_layernorm(config)  # ln_1 and ln_2 in every block, and ln_f


def _parameter_cases() -> list[tuple]:
    return [
        (GPTConfig.from_preset("gpt2-512"),),
        (GPTConfig.from_preset("gpt2"),),
        (GPTConfig.from_preset("tiny"),),
        (GPTConfig.from_preset("shakespeare-char"),),
        (GPTConfig(vocab_size=100, block_size=16, n_layer=3, n_head=2, n_embd=8),),
    ]


def check_count_parameters(fn) -> str:
    """Exercise: count_parameters(config) -> int, without building the model."""
    return check(
        "count_parameters",
        whole_number(fn),
        _count_on_meta,
        cases=_parameter_cases(),
        mistakes=[
            Mistake(
                lambda c: _count_on_meta(c) + c.vocab_size * c.n_embd,
                "you counted lm_head as a separate vocab_size x n_embd matrix. It is tied to wte: "
                "one tensor used twice, so it adds no parameters.",
            ),
            Mistake(
                lambda c: _count_on_meta(c) - _linear_biases(c),
                "the Linear layers' biases are missing: c_attn, c_proj, c_fc and the MLP's c_proj "
                "each have one bias per output feature (when config.bias is True).",
            ),
            Mistake(
                lambda c: _count_on_meta(c) - _layernorm_params(c),
                "the LayerNorms are missing: ln_1 and ln_2 in every block and ln_f at the end, each "
                "with a weight of n_embd (and a bias of n_embd when config.bias is True).",
            ),
            Mistake(
                lambda c: _count_on_meta(c) - c.block_size * c.n_embd,
                "the position embeddings wpe (block_size x n_embd) are missing.",
            ),
            Mistake(
                lambda c: _count_on_meta(c) - (c.n_layer - 1) * _one_block(c),
                "you counted one block; a GPT has n_layer of them, each with its own weights.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 2: the memory the attention matrices take.


def attention_memory_bytes(config: GPTConfig, T: int, bytes_per_float: int = 4) -> int:
    """Bytes of all attention-weight matrices of one sequence of T tokens: one T x T
    matrix per head, n_head heads per layer, n_layer layers."""
    return config.n_layer * config.n_head * T * T * bytes_per_float


def _memory_cases() -> list[tuple]:
    return [
        (GPTConfig.from_preset("gpt2-512"), 512, 4),
        (GPTConfig.from_preset("gpt2"), 1024, 4),
        (GPTConfig.from_preset("gpt2"), 1024, 2),
        (GPTConfig.from_preset("gpt2-medium"), 100, 2),
        (GPTConfig.from_preset("tiny"), 32, 4),
    ]


def check_attention_memory_bytes(fn) -> str:
    """Exercise: attention_memory_bytes(config, T, bytes_per_float) -> int."""
    return check(
        "attention_memory_bytes",
        whole_number(fn),
        attention_memory_bytes,
        cases=_memory_cases(),
        mistakes=[
            Mistake(
                lambda c, T, n: c.n_layer * c.n_head * T * n,
                "you counted T numbers per head. The attention weights are a T x T matrix: every "
                "position has a weight for every position, so the memory grows with T * T.",
            ),
            Mistake(
                lambda c, T, n: c.n_layer * c.n_head * T * c.head_size * n,
                "T x head_size is the size of one head's queries (or keys, or values). The attention "
                "weights are T x T: one weight for every pair of positions.",
            ),
            Mistake(
                lambda c, T, n: c.n_layer * c.n_head * (T * (T + 1) // 2) * n,
                "the mask hides the upper triangle, but the matrix is still stored in full: "
                "T x T numbers, the hidden ones as zeros.",
            ),
            Mistake(
                lambda c, T, n: c.n_head * T * T * n,
                "that is one layer. Every one of the n_layer blocks has its own attention matrices.",
            ),
            Mistake(
                lambda c, T, n: c.n_layer * T * T * n,
                "that is one matrix per layer. Every head computes its own T x T matrix: multiply by n_head.",
            ),
            Mistake(
                lambda c, T, n: c.n_layer * c.n_head * T * T,
                "you counted numbers, not bytes: multiply by bytes_per_float (4 for float32).",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 3: the forward pass by hand, from the model's own modules.


def forward_by_hand(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, vocab_size) for token ids idx (B, T), from model's modules."""
    tr = model.transformer
    pos = torch.arange(idx.size(1), device=idx.device)
    x = tr.drop(tr.wte(idx) + tr.wpe(pos))
    for block in tr.h:
        x = block(x)
    return model.lm_head(tr.ln_f(x))


def _reference_logits(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(idx)[0]


def _without_ln_f(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    for block in tr.h:
        x = block(x)
    return model.lm_head(x)


def _without_positions(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    tr = model.transformer
    x = tr.wte(idx)
    for block in tr.h:
        x = block(x)
    return model.lm_head(tr.ln_f(x))


def _first_block_only(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    tr = model.transformer
    x = tr.h[0](tr.wte(idx) + tr.wpe(torch.arange(idx.size(1))))
    return model.lm_head(tr.ln_f(x))


def _last_position_only(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    return _reference_logits(model, idx)[:, -1, :]


def _forward_cases() -> list[tuple]:
    cases = []
    for seed, config in (
        (0, GPTConfig.from_preset("tiny")),
        (1, GPTConfig(vocab_size=97, block_size=16, n_layer=3, n_head=2, n_embd=24, bias=False)),
    ):
        torch.manual_seed(seed)
        model = GPT(config).eval()
        with torch.no_grad():  # give the LayerNorms weights that are not 1 and 0
            for name, p in model.named_parameters():
                if ".ln_" in name or "ln_f" in name:
                    p.add_(0.3 * torch.randn_like(p))
        g = torch.Generator().manual_seed(seed)
        for B, T in ((2, config.block_size), (1, 5), (3, 1)):
            cases.append((model, torch.randint(0, config.vocab_size, (B, T), generator=g)))
    return cases


def check_forward_by_hand(fn) -> str:
    """Exercise: forward_by_hand(model, idx) -> logits (B, T, vocab_size)."""

    def learner(model, idx):
        with torch.no_grad():
            return fn(model, idx)

    def wrong(f):
        def run(model, idx):
            with torch.no_grad():
                return f(model, idx)

        return run

    return check(
        "forward_by_hand",
        learner,
        _reference_logits,
        cases=_forward_cases(),
        mistakes=[
            Mistake(
                wrong(_without_ln_f),
                "the final LayerNorm is missing: apply model.transformer.ln_f after the last block, before lm_head.",
            ),
            Mistake(
                wrong(_without_positions),
                "the position embeddings are missing: add model.transformer.wpe(pos) for "
                "pos = 0, 1, ..., T-1 to the token embeddings.",
            ),
            Mistake(
                wrong(_first_block_only),
                "only one block ran: loop over every block in model.transformer.h, feeding each "
                "block's output to the next.",
            ),
            Mistake(
                wrong(_last_position_only),
                "you returned the logits of the last position only. The forward pass gives logits "
                "for every position: shape (B, T, vocab_size).",
            ),
        ],
    )
