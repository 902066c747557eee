import pytest
import torch

from gptlib.exercises import ExerciseError, ch04


def test_reference_solution_is_accepted():
    assert ch04.check_allowed_pairs(ch04.allowed_pairs).startswith("correct")
    assert ch04.allowed_pairs(512) == 131_328


def test_forgetting_the_diagonal_gets_its_hint():
    with pytest.raises(ExerciseError, match="look at itself: count the diagonal"):
        ch04.check_allowed_pairs(lambda T: T * (T - 1) // 2)


def test_an_unknown_wrong_answer_still_fails_clearly():
    with pytest.raises(ExerciseError, match=r"expected 1, got 0; values differ \(input 1\)"):
        ch04.check_allowed_pairs(lambda T: 0)


def test_a_crashing_answer_is_reported():
    with pytest.raises(ExerciseError, match="your function raised ZeroDivisionError"):
        ch04.check_allowed_pairs(lambda T: 1 // 0)


def test_build_causal_mask_reference_is_accepted():
    assert ch04.check_build_causal_mask(ch04.build_causal_mask).startswith("correct")
    assert int(ch04.build_causal_mask(512).sum()) == 131_328


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "that is the upper triangle"),
        (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "keep the diagonal"),
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), "you marked the pairs to hide"),
        (lambda T: torch.ones(T, T, dtype=torch.bool), "that allows every pair"),
    ],
    ids=["upper", "strict-lower", "inverted", "all-ones"],
)
def test_build_causal_mask_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_build_causal_mask(wrong)


def test_a_float_mask_with_the_right_values_is_told_to_be_bool():
    with pytest.raises(ExerciseError, match=r"the values are right, but the dtype is torch.float32"):
        ch04.check_build_causal_mask(lambda T: torch.ones(T, T).tril())


def test_masked_softmax_reference_is_accepted():
    assert ch04.check_masked_softmax(ch04.masked_softmax).startswith("correct")
    assert ch04.check_masked_softmax(
        lambda s, m: torch.softmax(s.masked_fill(~m, -1e9), dim=-1)
    ).startswith("correct")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda s, m: torch.softmax(s.masked_fill(~m, 0.0), dim=-1), r"fill with float\('-inf'\)"),
        (lambda s, m: torch.softmax(s, dim=-1).masked_fill(~m, 0.0), "mask the scores before the softmax"),
        (lambda s, m: torch.softmax(s.masked_fill(~m, float("-inf")), dim=-2), "wrong dimension"),
        (lambda s, m: torch.softmax(s.masked_fill(m, float("-inf")), dim=-1), r"masked_fill\(~mask, \.\.\.\)"),
    ],
    ids=["fill-zero", "softmax-first", "softmax-dim", "inverted-mask"],
)
def test_masked_softmax_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_masked_softmax(wrong)
