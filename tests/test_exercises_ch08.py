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
    assert ch08.check_count_parameters(lambda c: float(_mine(c))).startswith("correct")


def _mine(c, lm_head=False, linear_biases=True, layernorms=True, positions=True, layers=None):
    """A parameter count written here, independently of the checker; each flag leaves one part out."""
    C, b = c.n_embd, 1 if c.bias else 0
    ln = C * (1 + b) if layernorms else 0
    lb = b if linear_biases else 0
    attn = C * 3 * C + lb * 3 * C + C * C + lb * C
    mlp = C * 4 * C + lb * 4 * C + 4 * C * C + lb * C
    n = c.vocab_size * C + (c.block_size * C if positions else 0)
    n += (c.n_layer if layers is None else layers) * (2 * ln + attn + mlp) + ln
    return n + (c.vocab_size * C if lm_head else 0)


def test_the_independent_count_is_right():
    for name in ["gpt2-512", "gpt2", "shakespeare-char", "tiny"]:
        config = GPTConfig.from_preset(name)
        with torch.device("meta"):
            assert _mine(config) == GPT(config).num_parameters()
    assert ch08.check_count_parameters(_mine).startswith("correct")


def test_counting_lm_head_separately_gets_its_hint():
    with pytest.raises(ExerciseError, match="tied to wte: one tensor used twice"):
        ch08.check_count_parameters(lambda c: _mine(c, lm_head=True))


def test_forgetting_the_linear_biases_gets_its_hint():
    with pytest.raises(ExerciseError, match="Linear layers' biases are missing"):
        ch08.check_count_parameters(lambda c: _mine(c, linear_biases=False))


def test_forgetting_the_layernorms_gets_its_hint():
    with pytest.raises(ExerciseError, match="the LayerNorms are missing"):
        ch08.check_count_parameters(lambda c: _mine(c, layernorms=False))


def test_forgetting_positions_or_layers_gets_its_hint():
    with pytest.raises(ExerciseError, match="position embeddings wpe"):
        ch08.check_count_parameters(lambda c: _mine(c, positions=False))
    with pytest.raises(ExerciseError, match="you counted one block"):
        ch08.check_count_parameters(lambda c: _mine(c, layers=1))


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


def _no_final_norm(model, idx):
    tr = model.transformer
    h = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
    for blk in tr.h:
        h = blk(h)
    return h @ model.lm_head.weight.T


def _no_positions(model, idx):
    h = model.transformer.wte(idx)
    for blk in model.transformer.h:
        h = blk(h)
    return model.lm_head(model.transformer.ln_f(h))


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
