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


def eps_outside_the_root(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    std = x.std(-1, unbiased=False, keepdim=True)
    return (x - mean) / (std + eps) * weight + bias


def unbiased_variance(x, weight, bias, eps):
    var, mean = torch.var_mean(x, dim=-1, keepdim=True)  # correction=1 by default: divides by C - 1
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def over_the_positions(x, weight, bias, eps):
    mean = x.mean(dim=-2, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-2, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps) * weight + bias


def over_the_batch(x, weight, bias, eps):
    mean, var = x.mean(0), x.var(0, unbiased=False)  # no keepdim: broadcasting puts them back
    return weight * (x - mean) / (var + eps) ** 0.5 + bias


def without_weight_and_bias(x, weight, bias, eps):
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def without_eps(x, weight, bias, eps):
    centred = x - x.mean(-1, keepdim=True)
    return centred / centred.pow(2).mean(-1, keepdim=True).sqrt() * weight + bias


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (eps_outside_the_root, "is your epsilon inside the square root"),
        (unbiased_variance, "biased variance"),
        (over_the_positions, "not over the positions"),
        (over_the_batch, "not over the batch"),
        (without_weight_and_bias, "learnable weight"),
        (without_eps, "use eps"),
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
    for sublayer in (attn, mlp):
        x = x + sublayer(x)
    return x


def _swapped_layernorms(x, ln_1, attn, ln_2, mlp):
    for norm, sublayer in ((ln_2, attn), (ln_1, mlp)):
        x = x + sublayer(norm(x))
    return x


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


def std_left_unscaled(n_layer, std=0.02):
    return std  # forgot to scale it


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n_layer: 0.02 * n_layer**-0.5, "two contributions"),
        (lambda n_layer: 0.02 / (n_layer + n_layer), "one over the square root"),
        (std_left_unscaled, "std of the other weights"),
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
