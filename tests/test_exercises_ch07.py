import math

import pytest
import torch
import torch.nn.functional as F

from gptlib import GPTConfig
from gptlib.exercises import ExerciseError, ch07
from gptlib.layers import Block


def test_reference_solutions_are_accepted():
    assert ch07.check_layer_norm(ch07.layer_norm).startswith("correct")
    assert ch07.check_pre_ln_block(ch07.pre_ln_block).startswith("correct")
    assert ch07.check_residual_init_std(ch07.residual_init_std).startswith("correct")
    assert round(ch07.residual_init_std(12), 5) == 0.00408


def test_torch_and_gptlib_agree_with_the_references():
    ln = lambda x, w, b, eps: F.layer_norm(x, w.shape, w, b, eps)  # noqa: E731
    assert ch07.check_layer_norm(ln).startswith("correct")
    torch.manual_seed(0)
    block = Block(GPTConfig.from_preset("tiny")).eval()
    x = torch.randn(2, 5, 64)
    torch.testing.assert_close(ch07.pre_ln_block(x, block.ln_1, block.attn, block.ln_2, block.mlp), block(x))


def test_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ch07.check_pre_ln_block(ch07.pre_ln_block)
    torch.testing.assert_close(torch.rand(3), expected)


def _ln(x, w, b, eps, dim=-1, correction=0, inside=True):
    mu = x.mean(dim, keepdim=True)
    var = ((x - mu) ** 2).sum(dim, keepdim=True) / (x.shape[dim] - correction)
    return (x - mu) / (torch.sqrt(var + eps) if inside else var.sqrt() + eps) * w + b


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, w, b, eps: _ln(x, w, b, eps, inside=False), "is your epsilon inside the square root"),
        (lambda x, w, b, eps: _ln(x, w, b, eps, correction=1), "biased variance"),
        (lambda x, w, b, eps: _ln(x, w, b, eps, dim=-2), "not over the positions"),
        (lambda x, w, b, eps: _ln(x, w, b, eps, dim=0), "not over the batch"),
        (lambda x, w, b, eps: _ln(x, 1, 0, eps), "learnable weight"),
        (lambda x, w, b, eps: _ln(x, w, b, 0.0), "use eps"),
    ],
)
def test_layer_norm_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch07.check_layer_norm(wrong)


def _post_ln(x, ln_1, attn, ln_2, mlp):
    x = ln_1(x + attn(x))
    return ln_2(x + mlp(x))


def _no_residual(x, ln_1, attn, ln_2, mlp):
    x = attn(ln_1(x))
    return mlp(ln_2(x))


def _parallel(x, ln_1, attn, ln_2, mlp):
    return x + attn(ln_1(x)) + mlp(ln_2(x))


def _no_layernorm(x, ln_1, attn, ln_2, mlp):
    x = x + attn(x)
    return x + mlp(x)


def _swapped_layernorms(x, ln_1, attn, ln_2, mlp):
    x = x + attn(ln_2(x))
    return x + mlp(ln_1(x))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_post_ln, "post-LN order"),
        (_no_residual, "forgot the residual connections"),
        (_parallel, "after attention has added to it"),
        (_no_layernorm, "LayerNorms are missing"),
        (_swapped_layernorms, "ln_1 goes with attention"),
    ],
)
def test_block_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch07.check_pre_ln_block(wrong)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n: 0.02 * n**-0.5, "two contributions"),
        (lambda n: 0.01 / n, "one over the square root"),
        (lambda n: 0.02, "std of the other weights"),
    ],
)
def test_init_std_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch07.check_residual_init_std(wrong)


def test_unknown_wrong_answers_fail_clearly():
    with pytest.raises(ExerciseError, match="values differ"):
        ch07.check_layer_norm(lambda x, w, b, eps: x)
    with pytest.raises(ExerciseError, match="your function raised"):
        ch07.check_pre_ln_block(lambda x, ln_1, attn, ln_2, mlp: mlp(attn))
    with pytest.raises(ExerciseError, match=r"expected 0.00408.*, got 0.204.*; values differ \(input 1\)"):
        ch07.check_residual_init_std(lambda n: 1 / math.sqrt(2 * n))


def test_untouched_stubs_are_not_attempted_yet():
    def stub(*args):
        raise NotImplementedError("your code here")

    for checker in (ch07.check_layer_norm, ch07.check_pre_ln_block, ch07.check_residual_init_std):
        result = checker(stub)
        assert result.startswith("not attempted yet") and "correct" not in result
