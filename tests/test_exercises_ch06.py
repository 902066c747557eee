import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gptlib.exercises import ExerciseError, ch06
from gptlib.layers import MLP

K = math.sqrt(2 / math.pi)


def test_reference_solutions_are_accepted():
    assert ch06.check_gelu_tanh(ch06.gelu_tanh).startswith("correct")
    assert ch06.check_mlp_param_count(ch06.mlp_param_count).startswith("correct")
    assert ch06.check_mlp_forward(ch06.mlp_forward).startswith("correct")


def test_torch_and_gptlib_agree_with_the_references():
    assert ch06.check_gelu_tanh(lambda x: F.gelu(x, approximate="tanh")).startswith("correct")
    assert ch06.mlp_param_count(768) == 4_722_432 == sum(p.numel() for p in MLP(768).parameters())
    torch.manual_seed(0)
    mlp, x = MLP(16), torch.randn(2, 3, 16)
    w = [mlp.c_fc.weight, mlp.c_fc.bias, mlp.c_proj.weight, mlp.c_proj.bias]
    torch.testing.assert_close(ch06.mlp_forward(x, *w), mlp(x))


def squared_correction(x):
    c = (2 / math.pi) ** 0.5
    return x / 2 * (1 + (c * (x + 0.044715 * x.pow(2))).tanh())


def without_the_half(x):
    return x + x * torch.tanh(K * (x + 0.044715 * x**3))  # x (1 + tanh(...)), multiplied out


def sqrt_two_pi(x):
    inner = (2 * math.pi) ** 0.5 * (x + 0.044715 * torch.pow(x, 3))
    return 0.5 * x * (1 + inner.tanh())


def exact_gelu_module(x):
    return nn.GELU()(x)  # approximate="none" by default: the erf form


def exact_gelu_from_the_normal_cdf(x):
    return x * torch.distributions.Normal(0.0, 1.0).cdf(x)  # x * Phi(x)


def relu_by_hand(x):
    return torch.where(x > 0, x, torch.zeros_like(x))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (squared_correction, r"cubic: 0\.044715 \* x\*\*3"),
        (without_the_half, "missing the factor 0.5"),
        (sqrt_two_pi, r"sqrt\(2 / pi\)"),
        (exact_gelu_module, "exact GELU"),
        (exact_gelu_from_the_normal_cdf, "exact GELU"),
        (relu_by_hand, "that is ReLU"),
        (nn.ReLU(), "that is ReLU"),
    ],
    ids=["squared", "no-half", "sqrt-2pi", "nn-GELU", "normal-cdf", "where", "nn-ReLU"],
)
def test_gelu_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_gelu_tanh(wrong)


def weights_only(n_embd):
    with torch.device("meta"):
        layers = [nn.Linear(n_embd, 4 * n_embd, bias=False), nn.Linear(4 * n_embd, n_embd, bias=False)]
    return sum(p.numel() for layer in layers for p in layer.parameters())


def c_fc_bias_per_input(n_embd):
    c_fc = n_embd * 4 * n_embd + n_embd  # one bias per input (wrong)
    c_proj = 4 * n_embd * n_embd + n_embd
    return c_fc + c_proj


def c_proj_bias_per_input(n_embd):
    hidden = 4 * n_embd
    c_fc = n_embd * hidden + hidden
    c_proj = hidden * n_embd + hidden  # one bias per input (wrong)
    return c_fc + c_proj


def hidden_as_wide_as_the_input(n_embd):
    with torch.device("meta"):
        mlp = nn.Sequential(nn.Linear(n_embd, n_embd), nn.GELU(), nn.Linear(n_embd, n_embd))
    return sum(p.numel() for p in mlp.parameters())


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (weights_only, "weights only"),
        (c_fc_bias_per_input, "c_fc's bias"),
        (c_proj_bias_per_input, "c_proj's bias"),
        (hidden_as_wide_as_the_input, "4 times wider"),
    ],
)
def test_param_count_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_mlp_param_count(wrong)


def two_linears_without_gelu(x, w_fc, b_fc, w_proj, b_proj):
    return F.linear(F.linear(x, w_fc, b_fc), w_proj, b_proj)


def gelu_after_both_layers(x, w_fc, b_fc, w_proj, b_proj):
    act = nn.GELU(approximate="tanh")
    h = act(F.linear(x, w_fc, b_fc))
    return act(F.linear(h, w_proj, b_proj))


def no_c_fc_bias(x, w_fc, b_fc, w_proj, b_proj):
    h = torch.matmul(x, w_fc.t())
    return torch.matmul(F.gelu(h, approximate="tanh"), w_proj.t()) + b_proj


def exact_gelu_in_a_sequential(x, w_fc, b_fc, w_proj, b_proj):
    C = x.shape[-1]
    mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C)).to(x.dtype)
    with torch.no_grad():
        for param, value in zip(mlp.parameters(), (w_fc, b_fc, w_proj, b_proj)):
            param.copy_(value)
        return mlp(x)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (two_linears_without_gelu, "GELU between the two layers is missing"),
        (gelu_after_both_layers, "not after c_proj"),
        (no_c_fc_bias, "c_fc has a bias too"),
        (exact_gelu_in_a_sequential, "tanh form"),
    ],
)
def test_mlp_forward_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_mlp_forward(wrong)


def test_unknown_wrong_answers_fail_clearly():
    with pytest.raises(ExerciseError, match="values differ"):
        ch06.check_gelu_tanh(lambda x: 0 * x)
    with pytest.raises(ExerciseError, match="expected 4722432, got 0"):
        ch06.check_mlp_param_count(lambda n: 0)
    with pytest.raises(ExerciseError, match="your function raised"):
        ch06.check_mlp_forward(lambda x, w1, b1, w2, b2: x @ w1 + b1)  # missing transpose: shapes clash


def test_param_count_goes_through_whole_number():
    assert ch06.check_mlp_param_count(lambda n: float(8 * n * n + 5 * n)).startswith("correct")
    with pytest.raises(ExerciseError, match="not a whole number"):
        ch06.check_mlp_param_count(lambda n: 8 * n * n + 5 * n + 0.5)


def test_untouched_stubs_are_not_attempted_yet():
    def stub(*args):
        raise NotImplementedError("your code here")

    for checker in (ch06.check_gelu_tanh, ch06.check_mlp_param_count, ch06.check_mlp_forward):
        result = checker(stub)
        assert result.startswith("not attempted yet") and "correct" not in result
