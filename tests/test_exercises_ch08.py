import pytest
import torch

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
    assert ch08.check_count_parameters(lambda c: float(ch08.count_parameters(c))).startswith("correct")


def test_counting_lm_head_separately_gets_its_hint():
    with pytest.raises(ExerciseError, match="tied to wte: one tensor used twice"):
        ch08.check_count_parameters(lambda c: ch08.count_parameters(c) + c.vocab_size * c.n_embd)


def test_forgetting_the_linear_biases_gets_its_hint():
    def no_biases(c):
        b = 9 * c.n_embd * c.n_layer if c.bias else 0
        return ch08.count_parameters(c) - b

    with pytest.raises(ExerciseError, match="Linear layers' biases are missing"):
        ch08.check_count_parameters(no_biases)


def test_forgetting_the_layernorms_gets_its_hint():
    def no_layernorms(c):
        per_norm = (2 if c.bias else 1) * c.n_embd
        return ch08.count_parameters(c) - (2 * c.n_layer + 1) * per_norm

    with pytest.raises(ExerciseError, match="the LayerNorms are missing"):
        ch08.check_count_parameters(no_layernorms)


def test_forgetting_positions_or_layers_gets_its_hint():
    with pytest.raises(ExerciseError, match="position embeddings wpe"):
        ch08.check_count_parameters(lambda c: ch08.count_parameters(c) - c.block_size * c.n_embd)
    with pytest.raises(ExerciseError, match="you counted one block"):
        ch08.check_count_parameters(lambda c: ch08.count_parameters(c.replace(n_layer=1)))


def test_count_parameters_unknown_mistake_fails_clearly():
    with pytest.raises(ExerciseError, match=r"expected 124046592, got 0; values differ \(input 1\)"):
        ch08.check_count_parameters(lambda c: 0)
    with pytest.raises(ExerciseError, match="not a whole number"):
        ch08.check_count_parameters(lambda c: ch08.count_parameters(c) + 0.5)


# ---------------------------------------------------------------------------
# Exercise 2: attention_memory_bytes


def test_attention_memory_reference_is_accepted():
    assert ch08.check_attention_memory_bytes(ch08.attention_memory_bytes).startswith("correct")
    assert ch08.attention_memory_bytes(GPTConfig.from_preset("gpt2-512"), 512, 4) == 150_994_944
    assert ch08.attention_memory_bytes(GPTConfig.from_preset("gpt2"), 1024, 4) == 603_979_776


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda c, T, n: c.n_layer * c.n_head * T * n, "grows with T \\* T"),
        (lambda c, T, n: c.n_layer * c.n_head * T * c.head_size * n, "size of one head's queries"),
        (lambda c, T, n: c.n_layer * c.n_head * T * (T + 1) // 2 * n, "stored in full"),
        (lambda c, T, n: c.n_head * T * T * n, "that is one layer"),
        (lambda c, T, n: c.n_layer * T * T * n, "multiply by n_head"),
        (lambda c, T, n: c.n_layer * c.n_head * T * T, "counted numbers, not bytes"),
    ],
)
def test_attention_memory_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch08.check_attention_memory_bytes(wrong)


# ---------------------------------------------------------------------------
# Exercise 3: forward_by_hand


def test_forward_by_hand_reference_is_accepted():
    assert ch08.check_forward_by_hand(ch08.forward_by_hand).startswith("correct")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (ch08._without_ln_f, "the final LayerNorm is missing"),
        (ch08._without_positions, "the position embeddings are missing"),
        (ch08._first_block_only, "only one block ran"),
        (ch08._last_position_only, "logits of the last position only"),
    ],
)
def test_forward_by_hand_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch08.check_forward_by_hand(wrong)


def test_forward_by_hand_a_stub_fails_clearly():
    with pytest.raises(ExerciseError, match="your function raised NotImplementedError"):
        ch08.check_forward_by_hand(lambda model, idx: (_ for _ in ()).throw(NotImplementedError("todo")))
    with pytest.raises(ExerciseError, match="values differ"):
        ch08.check_forward_by_hand(lambda model, idx: 2 * model(idx)[0])
