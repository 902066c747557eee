"""Chapter 5 exercises: many heads.

Every head reads all n_embd numbers of every token; what is cut into n_head pieces of
head_size is the output of c_attn (q, k and v, each (B, T, C)) and the heads' outputs.

>>> from gptlib.exercises import ch05
>>> ch05.check_head_size(lambda config: config.n_embd // config.n_head)
'correct: head_size agrees with the reference on 7 inputs'
"""

from __future__ import annotations

import torch

from ..attention import merge_heads, split_heads
from ..config import GPTConfig
from . import ExerciseError, Mistake, check

# -- Exercise 1: the head size -------------------------------------------------------


def head_size(config: GPTConfig) -> int:
    """The width of each head's queries, keys and values: q, k and v (n_embd wide each)
    are cut into n_head equal pieces."""
    return config.n_embd // config.n_head


def head_size_cases() -> list[tuple[GPTConfig]]:
    names = ("gpt2-512", "gpt2", "gpt2-medium", "gpt2-xl", "shakespeare-char", "tiny")
    return [(GPTConfig.from_preset(name),) for name in names] + [(GPTConfig(n_head=8),)]


_TOKENS_HINT = (
    "that divides the tokens among the heads. Heads split the width of the queries, keys and "
    "values, not the tokens: every head reads all n_embd numbers of all block_size positions and "
    "makes its own queries, keys and values, n_embd // n_head numbers each per token."
)
_LAYERS_HINT = (
    "n_layer is the number of blocks; in GPT-2 small it happens to equal n_head (12). "
    "The queries, keys and values (n_embd numbers each per token) are cut into n_head pieces."
)


def check_head_size(fn) -> str:
    """Exercise: the head size of a GPTConfig, an int."""
    cases = head_size_cases()
    result = check(
        "head_size",
        fn,
        head_size,
        cases=cases,
        mistakes=[  # each with // and with /, which gives a float such as 42.666... that no int matches
            Mistake(lambda c: c.block_size // c.n_head, _TOKENS_HINT),
            Mistake(lambda c: c.block_size / c.n_head, _TOKENS_HINT),
            Mistake(lambda c: c.n_embd // c.n_layer, _LAYERS_HINT),
            Mistake(lambda c: c.n_embd / c.n_layer, _LAYERS_HINT),
        ],
    )
    if not result.startswith("correct"):  # an untouched stub: nothing more to check
        return result
    for (config,) in cases:
        value = fn(config)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExerciseError(
                f"head_size: not yet. Hint: return an int (got {type(value).__name__} {value!r}): "
                f"use integer division //. Shapes such as view(B, T, n_head, head_size) need whole numbers."
            )
    return result


# -- Exercise 2: split the heads -----------------------------------------------------


def split_cases() -> list[tuple[torch.Tensor, int]]:
    g = torch.Generator().manual_seed(5)
    # Each x stands for q, k or v (B, T, C), after c_attn and the split into three.
    # T is a multiple of n_head in every case, so that the token-splitting mistake runs and gets its hint.
    shapes = [((2, 24, 48), 12), ((1, 16, 32), 4), ((3, 8, 24), 8), ((1, 96, 768), 12), ((1, 512, 768), 8)]
    return [(torch.randn(*shape, generator=g), n_head) for shape, n_head in shapes]


def _split_without_transpose(x, n_head):
    B, T, C = x.shape
    return x.view(B, n_head, T, C // n_head)


def _split_no_head_first(x, n_head):
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head)


def _split_tokens(x, n_head):
    B, T, C = x.shape
    return x.view(B, n_head, T // n_head, C)


def _split_interleaved(x, n_head):
    B, T, C = x.shape
    return x.view(B, T, C // n_head, n_head).permute(0, 3, 1, 2)


def check_split_heads(fn) -> str:
    """Exercise: fn(t, n_head) turns t, one of q, k or v (B, T, C), into (B, n_head, T, C // n_head)."""
    return check(
        "split_heads",
        fn,
        split_heads,
        cases=split_cases(),
        mistakes=[
            Mistake(
                _split_without_transpose,
                "the shape is right but the numbers are not. view(B, n_head, T, head_size) straight away "
                "cuts the memory of the whole sequence into n_head blocks, so a 'head' gets whole tokens "
                "instead of head_size numbers of every token's query (or key, or value). View as "
                "(B, T, n_head, head_size) first, then transpose(1, 2).",
            ),
            Mistake(
                _split_no_head_first,
                "almost: after view(B, T, n_head, head_size) the heads are dimension 2. "
                "transpose(1, 2) so that each head holds a (T, head_size) matrix.",
            ),
            Mistake(
                _split_tokens,
                "that splits the tokens into n_head groups. split_heads cuts the last dimension, the C "
                "numbers of each token's query (or key, or value): every head keeps all T tokens and "
                "C // n_head numbers of each.",
            ),
            Mistake(
                _split_interleaved,
                "that gives head h every n_head-th number (h, h + n_head, ...). Head h gets one block, "
                "numbers h * head_size to (h + 1) * head_size - 1 of each token's query (or key, or value): "
                "view as (B, T, n_head, head_size).",
            ),
        ],
    )


# -- Exercise 3: merge the heads -----------------------------------------------------


def merge_cases() -> list[tuple[torch.Tensor]]:
    g = torch.Generator().manual_seed(6)
    shapes = [(2, 12, 24, 4), (1, 4, 16, 8), (3, 8, 8, 3), (1, 12, 512, 64)]
    return [(torch.randn(*shape, generator=g),) for shape in shapes]


def _merge_without_transpose(y):
    B, nh, T, hs = y.shape
    return y.reshape(B, T, nh * hs)


def _merge_dims_first(y):
    B, nh, T, hs = y.shape
    return y.permute(0, 2, 3, 1).reshape(B, T, nh * hs)


NOT_CONTIGUOUS_HINT = (
    "after transpose(1, 2) the tensor is not contiguous in memory, so .view cannot reshape it: "
    "call .contiguous() before .view(B, T, C), or use .reshape(B, T, C)."
)


def check_merge_heads(fn) -> str:
    """Exercise: fn(y) turns the heads' outputs y (B, n_head, T, head_size) into
    (B, T, n_head * head_size), the input of c_proj."""
    cases = merge_cases()
    try:
        fn(*cases[0])
    except RuntimeError as e:
        if "view size is not compatible" in str(e):
            raise ExerciseError(f"merge_heads: not yet. Hint: {NOT_CONTIGUOUS_HINT}") from e
    except Exception:  # check() reports any other error with the input it failed on
        pass
    return check(
        "merge_heads",
        fn,
        merge_heads,
        cases=cases,
        mistakes=[
            Mistake(
                _merge_without_transpose,
                "the shape is right but the numbers are not: without transpose(1, 2) the memory is "
                "still ordered head by head, so a 'token' gets pieces of several tokens. Transpose to "
                "(B, T, n_head, head_size) first, then .contiguous().view(B, T, C).",
            ),
            Mistake(
                _merge_dims_first,
                "the heads are joined in the wrong order: dims h * head_size to (h + 1) * head_size - 1 "
                "must come from head h, so go to (B, T, n_head, head_size) with transpose(1, 2), "
                "not to (B, T, head_size, n_head).",
            ),
        ],
    )


# -- Exercise 4: one head's share of c_attn ------------------------------------------


def head_weights(W: torch.Tensor, h: int, n_head: int):
    """Head h's query, key and value weights, each (head_size, C), from c_attn.weight (3C, C).

    nn.Linear stores (out, in); the 3C output rows are the queries of all heads, then
    the keys of all heads, then the values.
    """
    C = W.shape[1]
    hs = C // n_head
    return tuple(W[part * C + h * hs : part * C + (h + 1) * hs] for part in range(3))


def head_weights_cases() -> list[tuple[torch.Tensor, int, int]]:
    g = torch.Generator().manual_seed(7)
    specs = [(48, 5, 12), (32, 0, 4), (32, 3, 4), (768, 3, 12), (768, 11, 12)]
    return [(torch.randn(3 * C, C, generator=g), h, n_head) for C, h, n_head in specs]


def _weights_grouped_by_head(W, h, n_head):
    C = W.shape[1]
    hs = C // n_head
    return tuple(W[3 * h * hs : 3 * (h + 1) * hs].split(hs))


def _weights_without_offset(W, h, n_head):
    C = W.shape[1]
    hs = C // n_head
    return tuple(W[h * hs : (h + 1) * hs] for _ in range(3))


def _weights_from_columns(W, h, n_head):
    C = W.shape[1]
    hs = C // n_head
    return tuple(W[:, part * C + h * hs : part * C + (h + 1) * hs] for part in range(3))


def check_head_weights(fn) -> str:
    """Exercise: fn(W, h, n_head) returns head h's (Wq, Wk, Wv) rows of c_attn.weight."""
    return check(
        "head_weights",
        fn,
        head_weights,
        cases=head_weights_cases(),
        mistakes=[
            Mistake(
                _weights_grouped_by_head,
                "c_attn is not grouped head by head. Its rows are the queries of all heads "
                "(rows 0 to C - 1), then all keys (C to 2C - 1), then all values: head h's query "
                "rows are h * head_size to (h + 1) * head_size - 1, its key rows start at C + h * head_size.",
            ),
            Mistake(
                _weights_without_offset,
                "those are the query rows three times. The keys start n_embd rows further down "
                "(C + h * head_size), the values 2 * n_embd rows further down.",
            ),
            Mistake(
                _weights_from_columns,
                "nn.Linear stores its weight as (out, in) = (3C, C): the 3C query, key and value "
                "features are the rows, so slice rows, not columns. (OpenAI's GPT-2 checkpoint stores "
                "the transpose as [1, in, out], Hugging Face's Conv1D as (in, out); chapter 11 deals with that.)",
            ),
        ],
    )
