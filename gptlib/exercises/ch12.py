"""Chapter 12 exercises: what a GPT costs in FLOPs and in memory.

The conventions are the chapter's. A multiply-add counts as 2 FLOPs, so a Linear layer
from ``in`` to ``out`` features costs ``2 * in * out`` FLOPs per token. Only matrix
multiplications are counted. The weights that take part in them are

    N = 12 * n_layer * n_embd**2 + n_embd * vocab_size

(four matrices per block, and lm_head; wte and wpe are looked up, not multiplied).
Attention multiplies activations by activations: per layer and per token, the query
meets T keys and the weights mix T values, 2 * 2 * T * n_embd FLOPs, counting the
full T x T matrix even where the causal mask hides it.
"""

from __future__ import annotations

from ..config import GPTConfig
from . import Mistake, check, whole_number


def matmul_params(config: GPTConfig) -> int:
    """N: the weights used in matrix multiplications, lm_head included (once, although
    it is the same tensor as wte); no biases, no LayerNorms, no wpe."""
    L, C, V = config.n_layer, config.n_embd, config.vocab_size
    return 12 * L * C * C + C * V  # c_attn 3C^2, attn.c_proj C^2, c_fc 4C^2, mlp.c_proj 4C^2; lm_head


def _attention_per_token(config: GPTConfig, T: int) -> int:
    return 4 * config.n_layer * T * config.n_embd  # Q K^T and weights @ V, forward


# ---------------------------------------------------------------------------
# Exercise 1: training FLOPs per token.


def training_flops_per_token(config: GPTConfig, T: int) -> int:
    """FLOPs of one training step (forward and backward), per token, at context T:
    6N + 12 * n_layer * T * n_embd."""
    return 3 * (2 * matmul_params(config) + _attention_per_token(config, T))


def _training_cases() -> list[tuple]:
    return [
        (GPTConfig.from_preset("gpt2-512"), 512),
        (GPTConfig.from_preset("gpt2"), 1024),
        (GPTConfig.from_preset("shakespeare-char"), 256),
        (GPTConfig.from_preset("tiny"), 32),
        (GPTConfig.from_preset("gpt2-medium"), 100),
    ]


def check_training_flops_per_token(fn) -> str:
    """Exercise: training_flops_per_token(config, T) -> int."""
    N = matmul_params
    att = _attention_per_token

    def L_T_C(c, T):
        return c.n_layer * T * c.n_embd

    causal_half = (
        "you counted only the part of the attention matrix that the causal mask allows. "
        "The chapter's convention counts the full T x T matrix, as the written-out code "
        "computes it: 12 * n_layer * T * n_embd."
    )

    return check(
        "training_flops_per_token",
        whole_number(fn),
        training_flops_per_token,
        cases=_training_cases(),
        mistakes=[
            Mistake(
                lambda c, T: 2 * N(c) + att(c, T),
                "that is the forward pass alone. The backward pass computes two products for every "
                "product of the forward pass (the gradients of its two operands: a Linear layer's input "
                "and weight, or attention's two activations), so a training step costs three forward "
                "passes: 6N + 12 * n_layer * T * n_embd.",
            ),
            Mistake(
                lambda c, T: 2 * N(c),
                "that is the forward pass alone, and without attention. Training costs three forward "
                "passes, and attention adds 12 * n_layer * T * n_embd per token: 6N + 12 * n_layer * T * n_embd.",
            ),
            Mistake(
                lambda c, T: 6 * N(c),
                "you left out attention. Q K^T and weights @ V multiply activations, not weights, so "
                "they are not in N; together they add 12 * n_layer * T * n_embd FLOPs per token in training.",
            ),
            Mistake(
                lambda c, T: 6 * N(c) + att(c, T),
                "the attention products have a backward pass too: count them three times, like the "
                "rest, 12 * n_layer * T * n_embd.",
            ),
            Mistake(lambda c, T: 6 * N(c) + 6 * L_T_C(c, T), causal_half),
            # the exact count of the pairs the mask allows: T (T + 1) / 2 per sequence, (T + 1) / 2 per token
            Mistake(lambda c, T: 6 * N(c) + 6 * c.n_layer * (T + 1) * c.n_embd, causal_half),
            Mistake(
                lambda c, T: 6 * N(c) + 12 * L_T_C(c, T) * T,
                "your attention term is for the whole sequence of T tokens. Per token, one query "
                "meets T keys: 12 * n_layer * T * n_embd, linear in T.",
            ),
            Mistake(
                lambda c, T: 6 * (N(c) - c.n_embd * c.vocab_size) + 12 * L_T_C(c, T),
                "lm_head is missing. It multiplies every token's vector by an n_embd x vocab_size "
                "matrix; its weight is wte's, but used as lm_head it is multiplied, not looked up.",
            ),
            Mistake(
                lambda c, T: 6 * (N(c) + c.n_embd * c.vocab_size) + 12 * L_T_C(c, T),
                "you counted the token matrix twice, as wte and as lm_head. wte is a lookup (a copy "
                "of one row), which costs no FLOPs: count the matrix once, as lm_head.",
            ),
            Mistake(
                lambda c, T: 6 * (N(c) + c.block_size * c.n_embd) + 12 * L_T_C(c, T),
                "wpe is a lookup table: adding a position's row costs no multiplications, so it is not part of N.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 2: the size of the KV cache.


def kv_cache_bytes(config: GPTConfig, T: int, bytes_per_float: int = 4) -> int:
    """Bytes of the KV cache of one sequence of T tokens: a key and a value vector of
    n_embd numbers (all heads) for every position in every layer."""
    return 2 * config.n_layer * T * config.n_embd * bytes_per_float


def _cache_cases() -> list[tuple]:
    return [
        (GPTConfig.from_preset("gpt2-512"), 512, 4),
        (GPTConfig.from_preset("gpt2"), 1024, 2),
        (GPTConfig.from_preset("shakespeare-char"), 256, 4),
        (GPTConfig.from_preset("gpt2-xl"), 1000, 2),
        (GPTConfig.from_preset("tiny"), 3, 4),
    ]


def check_kv_cache_bytes(fn) -> str:
    """Exercise: kv_cache_bytes(config, T, bytes_per_float) -> int."""
    return check(
        "kv_cache_bytes",
        whole_number(fn),
        kv_cache_bytes,
        cases=_cache_cases(),
        mistakes=[
            Mistake(
                lambda c, T, b: c.n_layer * T * c.n_embd * b,
                "the cache keeps keys AND values: two vectors per position and layer, a factor of 2.",
            ),
            Mistake(
                lambda c, T, b: 2 * T * c.n_embd * b,
                "that is one layer. Every block has its own attention, with its own keys and values: "
                "multiply by n_layer.",
            ),
            Mistake(
                lambda c, T, b: 2 * c.n_layer * T * c.head_size * b,
                "that is one head. The cache keeps the keys and values of all n_head heads, "
                "n_head * head_size = n_embd numbers per position.",
            ),
            Mistake(
                lambda c, T, b: 2 * c.n_layer * T * T * c.n_embd * b,
                "the cache grows linearly with T: one key and one value per position. It is the "
                "attention matrix, which the cache does not keep, that grows with T * T.",
            ),
            Mistake(
                lambda c, T, b: c.n_layer * c.n_head * T * T * b,
                "that is the size of the attention matrices. The cache keeps keys and values: "
                "2 * n_layer * T * n_embd numbers.",
            ),
            Mistake(
                lambda c, T, b: 2 * c.n_layer * T * c.n_embd,
                "you counted numbers, not bytes: multiply by bytes_per_float (4 for float32).",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 3: the FLOPs of generating n_new tokens, with and without the KV cache.


def generation_flops(config: GPTConfig, prompt_len: int, n_new: int, kv_cache: bool) -> int:
    """Forward FLOPs of generating n_new tokens after a prompt of prompt_len tokens
    (prompt_len + n_new - 1 <= block_size, so the window never slides), as gptlib's
    ``generate`` computes them.

    Step s (0, 1, ..., n_new - 1) works with a context of T = prompt_len + s tokens.
    Without the cache it runs the model on all T of them; with it, the first step runs
    on the prompt (filling the cache) and every later step on the newest token only,
    whose query meets the T cached keys. Either way the blocks process every position
    fed, and lm_head only the last one (``last_only=True``): that is the only row of
    logits a step samples from, as in nanoGPT's ``generate``.
    """
    N, L, C, V = matmul_params(config), config.n_layer, config.n_embd, config.vocab_size
    total = 0
    for s in range(n_new):
        T = prompt_len + s
        fed = 1 if (kv_cache and s > 0) else T  # positions run through the model at this step
        total += fed * (2 * (N - C * V) + 4 * L * T * C) + 2 * C * V  # the blocks for each, lm_head for the last
    return total


def _generation_variant(
    config, prompt_len, n_new, kv_cache, *, shift=0, first_full=True, attention=True, cache_works=True, last_only=True
):
    N, L, C, V = matmul_params(config), config.n_layer, config.n_embd, config.vocab_size
    total = 0
    for s in range(n_new):
        T = prompt_len + s + shift
        per_token = 2 * N + (4 * L * T * C if attention else 0)
        fed = 1 if (kv_cache and cache_works and (s > 0 or not first_full)) else T
        total += fed * per_token - ((fed - 1) * 2 * C * V if last_only else 0)
    return total


def _generation_cases() -> list[tuple]:
    small = GPTConfig(vocab_size=78, block_size=512, n_layer=6, n_head=6, n_embd=384)
    cases = []
    for config, prompt_len, n_new in (
        (small, 8, 200),
        (GPTConfig.from_preset("gpt2-512"), 1, 512),
        (GPTConfig.from_preset("tiny"), 4, 10),
        (GPTConfig.from_preset("shakespeare-char"), 10, 1),
    ):
        for kv_cache in (False, True):
            cases.append((config, prompt_len, n_new, kv_cache))
    return cases


def check_generation_flops(fn) -> str:
    """Exercise: generation_flops(config, prompt_len, n_new, kv_cache) -> int."""
    v = _generation_variant
    return check(
        "generation_flops",
        whole_number(fn),
        generation_flops,
        cases=_generation_cases(),
        mistakes=[
            Mistake(
                lambda c, p, n, kv: v(c, p, n, kv, last_only=False),
                "lm_head is counted at every position. generate samples from the last position's "
                "logits only, so it runs the model with last_only=True: a step that feeds T positions "
                "costs the blocks T times but lm_head (2 * n_embd * vocab_size) once.",
            ),
            Mistake(
                lambda c, p, n, kv: v(c, p, n, kv, shift=1),
                "one token too many in every context. The first step sees only the prompt, "
                "prompt_len tokens; step s sees the prompt and the s tokens generated before it. "
                "The last new token is never fed back.",
            ),
            Mistake(
                lambda c, p, n, kv: v(c, p, n, kv, first_full=False),
                "with the cache, the first step still runs on the whole prompt: that is what fills "
                "the cache. Only the later steps feed one token.",
            ),
            Mistake(
                lambda c, p, n, kv: v(c, p, n, kv, cache_works=False),
                "with the cache, every step after the first feeds only the newest token: "
                "2N + 4 * n_layer * T * n_embd FLOPs, not T times that.",
            ),
            Mistake(
                lambda c, p, n, kv: v(c, p, n, kv, attention=False),
                "attention is missing. A token that meets T keys costs 4 * n_layer * T * n_embd "
                "FLOPs on top of the 2N of the weights, so it grows as the context grows.",
            ),
            Mistake(
                lambda c, p, n, kv: v(c, p, n, kv, attention=False, first_full=False),
                "attention is missing, and with the cache the first step still runs on the whole prompt. "
                "A token that meets T keys costs 2N + 4 * n_layer * T * n_embd FLOPs.",
            ),
        ],
    )
