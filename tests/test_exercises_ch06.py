import math

import pytest
import torch
import torch.nn.functional as F

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


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x: 0.5 * x * (1 + torch.tanh(K * (x + 0.044715 * x * x))), "cubic: 0.044715 \\* x\\*\\*3"),
        (lambda x: x * (1 + torch.tanh(K * (x + 0.044715 * x**3))), "missing the factor 0.5"),
        (lambda x: 0.5 * x * (1 + torch.tanh(2.5066282746 * (x + 0.044715 * x**3))), "sqrt\\(2 / pi\\)"),
        (lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), "exact GELU"),
        (lambda x: x.clamp(min=0), "that is ReLU"),
    ],
)
def test_gelu_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_gelu_tanh(wrong)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n: n * 4 * n + 4 * n * n, "weights only"),
        (lambda n: 8 * n * n + n + n, "c_fc's bias"),
        (lambda n: 8 * n * n + 4 * n + 4 * n, "c_proj's bias"),
        (lambda n: n * n + n + n * n + n, "4 times wider"),
    ],
)
def test_param_count_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_mlp_param_count(wrong)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, w1, b1, w2, b2: (x @ w1.T + b1) @ w2.T + b2, "GELU between the two layers is missing"),
        (
            lambda x, w1, b1, w2, b2: F.gelu(F.gelu(x @ w1.T + b1, approximate="tanh") @ w2.T + b2, approximate="tanh"),
            "not after c_proj",
        ),
        (lambda x, w1, b1, w2, b2: F.gelu(x @ w1.T, approximate="tanh") @ w2.T + b2, "c_fc has a bias too"),
        (lambda x, w1, b1, w2, b2: F.gelu(x @ w1.T + b1) @ w2.T + b2, "tanh form"),
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
