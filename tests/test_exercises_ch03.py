import doctest
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

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


def unscaled_einsum(q, k):
    return torch.einsum("...id,...jd->...ij", q, k)  # every query against every key, not scaled


def divided_by_head_size(q, k):
    hs = k.shape[-1]
    return torch.matmul(q, k.mT) / hs


def gpt2_head_size(q, k):
    return q @ k.transpose(-1, -2) / math.sqrt(64)  # GPT-2's head size, whatever the input's


def gpt2_head_size_as_a_factor(q, k):
    return (q @ k.mT) * 0.125


def transposed_result(q, k):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return scores.transpose(-2, -1)  # row i now holds key i against every query


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (unscaled_einsum, "the scores are not scaled"),
        (divided_by_head_size, "divide by its square root"),
        (gpt2_head_size, r"a fixed 8 = sqrt\(64\)"),
        (gpt2_head_size_as_a_factor, r"a fixed 8 = sqrt\(64\)"),
        (transposed_result, "your matrix is transposed"),
    ],
    ids=["no-scale", "divide-by-hs", "fixed-sqrt-64", "fixed-0.125", "transposed"],
)
def test_attention_scores_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch03.check_attention_scores(wrong)


def naive(s):
    e = s.exp()
    return e / e.sum(dim=-1, keepdim=True)


def global_maximum(s):
    e = torch.exp(s - s.max())  # one shift for all rows: a row far below the maximum underflows to 0
    return e / e.sum(dim=-1, keepdim=True)


def maximum_without_keepdim(s):
    e = torch.exp(s - s.amax(dim=-1))  # (..., T) lines up with the columns, not the rows
    return e / e.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("wrong", [naive, global_maximum, maximum_without_keepdim])
def test_an_unsafe_softmax_gets_the_row_maximum_hint(wrong):
    with pytest.raises(ExerciseError, match=r"inf or nan.*Subtract each row's own maximum before exp"):
        ch03.check_softmax_rows(wrong)


def test_softmax_over_columns_gets_its_hint():
    def columns(s):
        e = (s - s.max(dim=-2, keepdim=True).values).exp()
        return e / e.sum(dim=-2, keepdim=True)

    with pytest.raises(ExerciseError, match="your columns sum to 1, not your rows"):
        ch03.check_softmax_rows(columns)


def test_softmax_without_keepdim_gets_its_hint():
    def no_keepdim(s):
        e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
        total = torch.sum(e, dim=-1)  # (..., T): lines up with the columns
        return e / total

    with pytest.raises(ExerciseError, match="add keepdim=True"):
        ch03.check_softmax_rows(no_keepdim)


def unscaled_bmm(q, k, v):
    weights = torch.bmm(q, k.transpose(1, 2)).softmax(dim=-1)
    return torch.bmm(weights, v), weights


def divided_by_head_size_with_a_module(q, k, v):
    softmax = nn.Softmax(dim=-1)
    weights = softmax(q @ k.mT / k.shape[-1])
    return weights @ v, weights


def softmax_over_dim_1(q, k, v):
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[2])
    weights = F.softmax(scores, dim=1)  # (B, T, T): dim 1 runs over the queries
    return weights @ v, weights


def output_only(q, k, v):
    weights = torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


def weights_first(q, k, v):
    weights = torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), dim=-1)
    return weights, weights @ v


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (unscaled_bmm, "the scores are not scaled"),
        (divided_by_head_size_with_a_module, "you divided by the head size"),
        (softmax_over_dim_1, "wrong dimension"),
        (output_only, r"you returned only the output: return the tuple \(out, weights\)"),
        (weights_first, r"you returned \(weights, out\)"),
    ],
    ids=["no-scale", "divide-by-hs", "softmax-dim", "output-only", "weights-first"],
)
def test_attention_one_head_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch03.check_attention_one_head(wrong)


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
