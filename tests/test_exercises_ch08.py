"""Chapter 8's checkers accept right answers and name typical wrong ones. The wrong
answers are written here as a reader would write them, independently of the checkers'
own list of mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F

from gptlib import GPT, GPTConfig
from gptlib.exercises import ExerciseError, ch08

# ---------------------------------------------------------------------------
# Exercise 1: count_parameters


def test_count_parameters_reference_is_accepted():
    assert ch08.check_count_parameters(ch08.count_parameters).startswith("correct")
    assert ch08.count_parameters(GPTConfig.from_preset("gpt2-512")) == 124_046_592
    assert ch08.count_parameters(GPTConfig.from_preset("gpt2")) == 124_439_808


@pytest.mark.parametrize("name", ["gpt2-medium", "gpt2-large", "gpt2-xl", "shakespeare-char", "tiny"])
def test_count_parameters_formula_matches_the_model(name):
    config = GPTConfig.from_preset(name)
    with torch.device("meta"):
        model = GPT(config)
    assert ch08.count_parameters(config) == model.num_parameters()


def test_a_whole_float_answer_is_accepted():
    assert ch08.check_count_parameters(lambda c: float(_mine(c))).startswith("correct")


def _mine(c):
    """A parameter count written here, independently of the checker."""
    C, b = c.n_embd, 1 if c.bias else 0
    ln = C * (1 + b)
    attn = C * 3 * C + b * 3 * C + C * C + b * C
    mlp = C * 4 * C + b * 4 * C + 4 * C * C + b * C
    return c.vocab_size * C + c.block_size * C + c.n_layer * (2 * ln + attn + mlp) + ln


def test_the_independent_count_is_right():
    for name in ["gpt2-512", "gpt2", "shakespeare-char", "tiny"]:
        config = GPTConfig.from_preset(name)
        with torch.device("meta"):
            assert _mine(config) == GPT(config).num_parameters()
    assert ch08.check_count_parameters(_mine).startswith("correct")


def counts_lm_head_as_its_own_matrix(config):
    C, V, L = config.n_embd, config.vocab_size, config.n_layer
    ln = 2 * C if config.bias else C
    shapes = [(V, C), (config.block_size, C)]  # wte, wpe
    for _ in range(L):
        shapes += [(3 * C, C), (C, C), (4 * C, C), (C, 4 * C)]  # c_attn, c_proj, c_fc, c_proj
        if config.bias:
            shapes += [(3 * C,), (C,), (4 * C,), (C,)]
    shapes += [(V, C)]  # lm_head
    return sum(math.prod(shape) for shape in shapes) + (2 * L + 1) * ln


def counts_no_linear_biases(config):
    C = config.n_embd
    per_layernorm = C * (2 if config.bias else 1)
    per_block = 12 * C**2 + 2 * per_layernorm  # the four weight matrices, ln_1 and ln_2
    embeddings = (config.vocab_size + config.block_size) * C
    return embeddings + config.n_layer * per_block + per_layernorm


def counts_no_layernorms(config):
    C, b = config.n_embd, int(config.bias)
    attention = (C * 3 * C + b * 3 * C) + (C * C + b * C)
    mlp = (C * 4 * C + b * 4 * C) + (4 * C * C + b * C)
    return config.vocab_size * C + config.block_size * C + config.n_layer * (attention + mlp)


def counts_no_positions(config):
    C = config.n_embd
    block = 12 * C * C + (13 * C if config.bias else 2 * C)  # weights, then biases and LayerNorms
    return config.vocab_size * C + config.n_layer * block + (2 * C if config.bias else C)


def counts_one_block(config):
    C = config.n_embd
    block = 12 * C * C + (13 * C if config.bias else 2 * C)
    return (config.vocab_size + config.block_size) * C + block + (2 * C if config.bias else C)


def test_the_written_out_wrong_counts_differ_from_the_model_in_the_part_they_leave_out():
    config = GPTConfig.from_preset("gpt2-512")
    C, V, L = config.n_embd, config.vocab_size, config.n_layer
    with torch.device("meta"):
        right = GPT(config).num_parameters()
    assert counts_lm_head_as_its_own_matrix(config) == right + V * C
    assert counts_no_linear_biases(config) == right - L * 9 * C
    assert counts_no_layernorms(config) == right - (2 * L + 1) * 2 * C
    assert counts_no_positions(config) == right - config.block_size * C
    assert counts_one_block(config) == right - (L - 1) * (12 * C * C + 13 * C)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (counts_lm_head_as_its_own_matrix, "tied to wte: one tensor used twice"),
        (counts_no_linear_biases, "Linear layers' biases are missing"),
        (counts_no_layernorms, "the LayerNorms are missing"),
        (counts_no_positions, "position embeddings wpe"),
        (counts_one_block, "you counted one block"),
    ],
    ids=["lm_head", "linear-biases", "layernorms", "positions", "one-block"],
)
def test_count_parameters_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch08.check_count_parameters(wrong)


def test_count_parameters_unknown_mistake_fails_clearly():
    with pytest.raises(ExerciseError, match=r"expected 124046592, got 0; values differ \(input 1\)"):
        ch08.check_count_parameters(lambda c: 0)
    with pytest.raises(ExerciseError, match="not a whole number"):
        ch08.check_count_parameters(lambda c: _mine(c) + 0.5)


# ---------------------------------------------------------------------------
# Exercise 2: attention_memory_bytes


def test_attention_memory_reference_is_accepted():
    assert ch08.check_attention_memory_bytes(ch08.attention_memory_bytes).startswith("correct")
    assert ch08.attention_memory_bytes(GPTConfig.from_preset("gpt2-512"), 512, 4) == 150_994_944
    assert ch08.attention_memory_bytes(GPTConfig.from_preset("gpt2"), 1024, 4) == 603_979_776


def memory_of_one_row_per_head(config, T, bytes_per_float=4):
    weights = torch.empty(config.n_layer, config.n_head, T, device="meta")  # T numbers per head
    return weights.numel() * bytes_per_float


def memory_of_the_queries(config, T, bytes_per_float=4):
    per_layer = sum(T * config.head_size for _ in range(config.n_head))  # (T, head_size) per head
    return config.n_layer * per_layer * bytes_per_float


def memory_of_the_lower_triangle(config, T, bytes_per_float=4):
    unmasked = int(torch.ones(T, T).tril().sum())  # only the entries the mask lets through
    return config.n_layer * config.n_head * unmasked * bytes_per_float


def memory_of_one_layer(config, T, bytes_per_float=4):
    return math.prod((config.n_head, T, T)) * bytes_per_float


def memory_of_one_matrix_per_layer(config, T, bytes_per_float=4):
    return sum(T * T for _ in range(config.n_layer)) * bytes_per_float


def memory_in_numbers(config, T, bytes_per_float=4):
    return torch.empty(config.n_layer, config.n_head, T, T, device="meta").numel()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (memory_of_one_row_per_head, "grows with T \\* T"),
        (memory_of_the_queries, "size of one head's queries"),
        (memory_of_the_lower_triangle, "stored in full"),
        (memory_of_one_layer, "that is one layer"),
        (memory_of_one_matrix_per_layer, "multiply by n_head"),
        (memory_in_numbers, "counted numbers, not bytes"),
    ],
    ids=["T", "queries", "triangle", "one-layer", "one-head", "numbers"],
)
def test_attention_memory_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch08.check_attention_memory_bytes(wrong)


# ---------------------------------------------------------------------------
# Exercise 3: forward_by_hand


def test_forward_by_hand_reference_is_accepted():
    assert ch08.check_forward_by_hand(ch08.forward_by_hand).startswith("correct")


def _no_final_norm(model, idx):
    tr = model.transformer
    h = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
    for blk in tr.h:
        h = blk(h)
    return h @ model.lm_head.weight.T


def _no_positions(model, idx):
    h = model.transformer.wte.weight[idx]  # the token embeddings, and nothing added
    for i in range(len(model.transformer.h)):
        h = model.transformer.h[i](h)
    return F.linear(model.transformer.ln_f(h), model.transformer.wte.weight)


def _one_block(model, idx):
    tr = model.transformer
    h = tr.h[0](tr.wte(idx) + tr.wpe.weight[: idx.shape[1]])
    return model.lm_head(tr.ln_f(h))


def _last_only(model, idx):
    tr = model.transformer
    h = tr.wte(idx) + tr.wpe.weight[: idx.shape[1]]
    for blk in tr.h:
        h = blk(h)
    return model.lm_head(tr.ln_f(h))[:, -1]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_no_final_norm, "the final LayerNorm is missing"),
        (_no_positions, "the position embeddings are missing"),
        (_one_block, "only one block ran"),
        (_last_only, "logits of the last position only"),
    ],
)
def test_forward_by_hand_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch08.check_forward_by_hand(wrong)


def test_untouched_stubs_are_not_attempted_yet():
    def stub(*args):
        raise NotImplementedError("your code here")

    for checker in (ch08.check_count_parameters, ch08.check_attention_memory_bytes, ch08.check_forward_by_hand):
        result = checker(stub)
        assert result.startswith("not attempted yet") and "correct" not in result


def test_forward_by_hand_wrong_values_fail_clearly():
    with pytest.raises(ExerciseError, match="values differ"):
        ch08.check_forward_by_hand(lambda model, idx: 2 * model(idx)[0])
