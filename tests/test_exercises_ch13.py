"""Chapter 13's checkers accept right answers and name typical wrong ones. The wrong
answers are written here, independently of the checkers' own list of mistakes."""

import pytest
import torch

from gptlib.exercises import ExerciseError, ch13


def prev_by_loop(patterns):
    L, H, T, _ = patterns.shape
    out = torch.zeros(L, H, dtype=patterns.dtype)
    for t in range(1, T):
        out += patterns[:, :, t, t - 1]
    return out / (T - 1)


def induction_by_loop(patterns, period):
    L, H, T, _ = patterns.shape
    out = torch.zeros(L, H, dtype=patterns.dtype)
    for t in range(period, T):
        out += patterns[:, :, t, t - period + 1]
    return out / (T - period)


def test_previous_token_scores_right_answers():
    assert ch13.check_previous_token_scores(prev_by_loop).startswith("correct")


def test_previous_token_scores_divided_by_T():
    def wrong(patterns):
        T = patterns.shape[-1]
        return sum(patterns[:, :, t, t - 1] for t in range(1, T)) / T

    with pytest.raises(ExerciseError, match="divide by T - 1"):
        ch13.check_previous_token_scores(wrong)


def test_previous_token_scores_next_token_instead():
    def wrong(patterns):
        T = patterns.shape[-1]
        return torch.stack([patterns[:, :, t, t + 1] for t in range(T - 1)], -1).mean(-1)

    with pytest.raises(ExerciseError, match="offset=1 is the diagonal above"):
        ch13.check_previous_token_scores(wrong)


def test_previous_token_scores_self_attention_instead():
    with pytest.raises(ExerciseError, match="main diagonal"):
        ch13.check_previous_token_scores(lambda p: torch.einsum("lhtt->lht", p).mean(-1))


def test_induction_scores_right_answer():
    assert ch13.check_induction_scores(induction_by_loop).startswith("correct")


def test_induction_scores_duplicate_token_instead():
    def wrong(patterns, period):
        T = patterns.shape[-1]
        return torch.stack([patterns[:, :, t, t - period] for t in range(period, T)], -1).mean(-1)

    with pytest.raises(ExerciseError, match="duplicate-token"):
        ch13.check_induction_scores(wrong)


def test_induction_scores_one_row_too_early():
    def wrong(patterns, period):
        T = patterns.shape[-1]
        return torch.stack([patterns[:, :, t, t - period + 1] for t in range(period - 1, T)], -1).mean(-1)

    with pytest.raises(ExerciseError, match="start at t = period"):
        ch13.check_induction_scores(wrong)


def test_untouched_stub_is_not_attempted():
    def my_previous_token_scores(patterns):
        raise NotImplementedError("average below the diagonal")

    assert ch13.check_previous_token_scores(my_previous_token_scores).startswith("not attempted yet")


def test_most_needed_head():
    losses = ch13._head_rises()
    assert len(losses) == 8
    most = max(losses, key=losses.get)
    assert ch13.check_most_needed_head(lambda: list(most)).startswith("correct")
    least = min(losses, key=losses.get)
    with pytest.raises(ExerciseError, match="smallest"):
        ch13.check_most_needed_head(lambda: least)
    other = next(k for k in losses if k != most and k != least)
    with pytest.raises(ExerciseError):
        ch13.check_most_needed_head(lambda: other)
