import math

import pytest
import torch
import torch.nn.functional as F

from gptlib.exercises import ExerciseError, ch04


def test_reference_solution_is_accepted():
    assert ch04.check_allowed_pairs(ch04.allowed_pairs).startswith("correct")
    assert ch04.allowed_pairs(512) == 131_328


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda T: math.comb(T, 2), "look at itself: count the diagonal"),  # pairs of two different positions
        (lambda T: sum(range(T)), "look at itself: count the diagonal"),  # row i allows i keys
        (lambda T: torch.ones(T, T).sum(), "that is every pair"),  # a tensor, made whole by the checker
        (lambda T: int(0.5 * T**2), "misses the diagonal's half"),
        (lambda T: T**2 / 2, "misses the diagonal's half"),  # 0.5 at T = 1
    ],
    ids=["comb", "sum-range", "all-ones", "half-int", "half-float"],
)
def test_allowed_pairs_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_allowed_pairs(wrong)


def test_an_unknown_wrong_answer_still_fails_clearly():
    with pytest.raises(ExerciseError, match=r"expected 1, got 0; values differ \(input 1\)"):
        ch04.check_allowed_pairs(lambda T: 0)


def test_a_crashing_answer_is_reported():
    with pytest.raises(ExerciseError, match="your function raised ZeroDivisionError"):
        ch04.check_allowed_pairs(lambda T: 1 // 0)


def test_build_causal_mask_reference_is_accepted():
    assert ch04.check_build_causal_mask(ch04.build_causal_mask).startswith("correct")
    assert int(ch04.build_causal_mask(512).sum()) == 131_328


def keys_after_the_query(T):
    i = torch.arange(T).unsqueeze(1)  # query, down the rows
    j = torch.arange(T).unsqueeze(0)  # key, across the columns
    return j >= i


def strictly_earlier_keys(T):
    mask = torch.zeros(T, T, dtype=torch.bool)
    for i in range(T):
        mask[i, :i] = True  # keys 0 .. i - 1
    return mask


def the_hidden_pairs(T):
    return ~torch.ones(T, T).tril().bool()  # True where the pair is hidden


def tril_not_in_place(T):
    mask = torch.ones(T, T, dtype=torch.bool)
    mask.tril()  # returns a new tensor; mask itself is unchanged
    return mask


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (keys_after_the_query, "that is the upper triangle"),
        (strictly_earlier_keys, "keep the diagonal"),
        (the_hidden_pairs, "you marked the pairs to hide"),
        (tril_not_in_place, "that allows every pair"),
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
    assert ch04.check_masked_softmax(lambda s, m: torch.softmax(s.masked_fill(~m, -1e9), dim=-1)).startswith("correct")


def multiplied_by_the_mask(scores, mask):
    return torch.softmax(scores * mask, dim=-1)  # hidden scores become 0, not -inf


def zeroed_after_the_softmax(scores, mask):
    weights = F.softmax(scores, dim=-1)
    return weights * mask


def softmax_over_the_queries(scores, mask):
    hidden = torch.where(mask, scores, float("-inf"))
    return hidden.softmax(dim=-2)


def minus_infinity_where_allowed(scores, mask):
    return torch.softmax(torch.where(mask, float("-inf"), scores), dim=-1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (multiplied_by_the_mask, r"fill with float\('-inf'\)"),
        (zeroed_after_the_softmax, "mask the scores before the softmax"),
        (softmax_over_the_queries, "wrong dimension"),
        (minus_infinity_where_allowed, r"the -inf must go where the pair is NOT allowed.*masked_fill\(~mask, \.\.\.\)"),
    ],
    ids=["fill-zero", "softmax-first", "softmax-dim", "inverted-mask"],
)
def test_masked_softmax_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_masked_softmax(wrong)


def test_allowed_pairs_goes_through_whole_number():
    assert ch04.check_allowed_pairs(lambda T: T * (T + 1) / 2).startswith("correct")
    with pytest.raises(ExerciseError, match="not a whole number"):
        ch04.check_allowed_pairs(lambda T: T * T / 2 + 0.25)


def test_untouched_stubs_are_not_attempted_yet():
    def stub(*args):
        raise NotImplementedError("your code here")

    for checker in (
        ch04.check_allowed_pairs,
        ch04.check_build_causal_mask,
        ch04.check_masked_softmax,
        ch04.check_first_leak,
    ):
        result = checker(stub)
        assert result.startswith("not attempted yet") and "correct" not in result


# ---------------------------------------------------------------------------
# Exercise 4 (an experiment): first_leak


def test_first_leak_reference_finds_each_planted_leak():
    found = [ch04.first_leak(*case) for case in ch04._leak_layers()]
    assert found == [None, 0, 0, 5, 3, None, None, None]
    assert ch04.check_first_leak(ch04.first_leak).startswith("correct")


def test_a_different_probe_that_is_right_is_accepted():
    def probe(layer, T, C):
        x = torch.rand(1, T, C) * 4 - 2  # another input, another way of changing the future
        with torch.no_grad():
            base = layer(x)
            for t in range(T - 1):
                future = x.clone()
                future[:, t + 1 :] *= -3.0
                if (layer(future)[0, t] - base[0, t]).abs().max() > 1e-5:
                    return t
        return None

    torch.manual_seed(123)
    assert ch04.check_first_leak(probe).startswith("correct")


def test_changing_position_t_too_gets_its_hint():
    def includes_t(layer, T, C):
        x = torch.randn(1, T, C)
        with torch.no_grad():
            base = layer(x)
            for t in range(T - 1):
                other = x.clone()
                other[:, t:] = torch.randn(1, T - t, C)
                if not torch.allclose(layer(other)[:, t], base[:, t], atol=1e-6):
                    return t
        return None

    with pytest.raises(ExerciseError, match="change only the inputs after it"):
        ch04.check_first_leak(includes_t)


def test_comparing_the_whole_output_gets_its_hint():
    def whole_output(layer, T, C):
        x = torch.randn(1, T, C)
        with torch.no_grad():
            base = layer(x)
            for t in range(T - 1):
                other = x.clone()
                other[:, t + 1 :] = torch.randn(1, T - t - 1, C)
                if not torch.allclose(layer(other), base, atol=1e-6):
                    return t
        return None

    with pytest.raises(ExerciseError, match="compare only the output at position t"):
        ch04.check_first_leak(whole_output)


def test_returning_the_changed_position_gets_its_hint():
    def one_late(layer, T, C):
        x = torch.randn(1, T, C)
        with torch.no_grad():
            base = layer(x)
            for t in range(T - 1):
                other = x.clone()
                other[:, t + 1 :] = 5.0
                if (layer(other)[:, t] - base[:, t]).abs().max() > 1e-6:
                    return t + 1
        return None

    with pytest.raises(ExerciseError, match="off by one"):
        ch04.check_first_leak(one_late)


def test_a_probe_that_never_finds_anything_fails_clearly():
    with pytest.raises(ExerciseError, match=r"expected 0, got None; values differ \(input 2\)"):
        ch04.check_first_leak(lambda layer, T, C: None)
