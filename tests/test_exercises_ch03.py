import doctest
import math

import pytest
import torch

from gptlib.exercises import ExerciseError, ch03


def test_reference_solutions_are_accepted():
    assert ch03.check_attention_scores(ch03.attention_scores).startswith("correct")
    assert ch03.check_softmax_rows(ch03.softmax_rows).startswith("correct")
    assert ch03.check_attention_one_head(ch03.attention_one_head).startswith("correct")


def test_torch_softmax_is_an_accepted_answer():
    assert ch03.check_softmax_rows(lambda s: torch.softmax(s, dim=-1)).startswith("correct")


def test_the_module_docstring_example_runs():
    result = doctest.testmod(ch03)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda q, k: q @ k.transpose(-2, -1), "the scores are not scaled"),
        (lambda q, k: q @ k.transpose(-2, -1) / q.size(-1), "divide by its square root"),
        (lambda q, k: q @ k.transpose(-2, -1) / 8, r"a fixed 8 = sqrt\(64\)"),
        (lambda q, k: k @ q.transpose(-2, -1) / math.sqrt(q.size(-1)), "your matrix is transposed"),
    ],
    ids=["no-scale", "divide-by-hs", "fixed-8", "transposed"],
)
def test_attention_scores_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch03.check_attention_scores(wrong)


def test_naive_softmax_overflows_and_gets_its_hint():
    def naive(s):
        e = s.exp()
        return e / e.sum(dim=-1, keepdim=True)

    with pytest.raises(ExerciseError, match="Subtract each row's maximum before exp"):
        ch03.check_softmax_rows(naive)


def test_softmax_over_columns_gets_its_hint():
    with pytest.raises(ExerciseError, match="your columns sum to 1, not your rows"):
        ch03.check_softmax_rows(lambda s: torch.softmax(s, dim=-2))


def test_softmax_without_keepdim_gets_its_hint():
    def no_keepdim(s):
        e = (s - s.amax(dim=-1, keepdim=True)).exp()
        return e / e.sum(dim=-1)

    with pytest.raises(ExerciseError, match="add keepdim=True"):
        ch03.check_softmax_rows(no_keepdim)


def head(scores, v, dim=-1):
    w = torch.softmax(scores, dim=dim)
    return w @ v, w


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda q, k, v: head(q @ k.transpose(-2, -1), v), "the scores are not scaled"),
        (lambda q, k, v: head(q @ k.transpose(-2, -1) / q.size(-1), v), "you divided by the head size"),
        (lambda q, k, v: head(ch03.attention_scores(q, k), v, dim=-2), "wrong dimension"),
    ],
    ids=["no-scale", "divide-by-hs", "softmax-dim"],
)
def test_attention_one_head_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch03.check_attention_one_head(wrong)


def test_returning_only_the_output_fails_clearly():
    with pytest.raises(ExerciseError, match="expected a tuple of 2"):
        ch03.check_attention_one_head(lambda q, k, v: ch03.attention_one_head(q, k, v)[0])


def test_a_crashing_answer_is_reported():
    with pytest.raises(ExerciseError, match="your function raised"):
        ch03.check_softmax_rows(lambda s: s.nonexistent())


def _stub(*args):
    raise NotImplementedError("fill me in")


@pytest.mark.parametrize(
    "checker",
    [ch03.check_attention_scores, ch03.check_softmax_rows, ch03.check_attention_one_head],
    ids=["scores", "softmax", "one-head"],
)
def test_an_untouched_stub_is_not_attempted_yet(checker):
    assert checker(_stub) == f"not attempted yet: {checker.__name__.removeprefix('check_')} (fill me in)"
