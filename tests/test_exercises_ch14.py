"""Chapter 14's checkers accept right answers and name typical wrong ones. The wrong
answers are written here, independently of the checkers' own list of mistakes."""

import math

import pytest
import torch

from gptlib.exercises import ExerciseError, ch14
from gptlib.layers import RMSNorm


# -- rotary positions ------------------------------------------------------------------------------
def rope_by_pairs(x, positions, theta):
    """Each pair (i, i + hs/2) turned as a 2-d vector by positions * theta ** (-2i / hs), one pair at a time."""
    hs = x.size(-1)
    half = hs // 2
    out = torch.empty_like(x)
    for i in range(half):
        angle = positions.double() * theta ** (-2 * i / hs)  # (T,)
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        a, b = x[..., i], x[..., i + half]  # (B, nh, T)
        out[..., i] = a * cos - b * sin
        out[..., i + half] = a * sin + b * cos
    return out


def test_rope_right_answers():
    assert ch14.check_rope(ch14.rope).startswith("correct")
    assert ch14.check_rope(rope_by_pairs).startswith("correct")


def test_rope_metas_adjacent_pairs():
    def wrong(x, positions, theta):
        hs = x.size(-1)
        freqs = 1.0 / theta ** (torch.arange(0, hs, 2).double() / hs)
        turn = torch.polar(
            torch.ones(len(positions), hs // 2, dtype=torch.float64), torch.outer(positions.double(), freqs)
        )
        z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], hs // 2, 2).contiguous()) * turn
        return torch.view_as_real(z).flatten(-2)

    with pytest.raises(ExerciseError, match="adjacent pairs .* Meta's original convention"):
        ch14.check_rope(wrong)


def test_rope_turned_the_wrong_way():
    with pytest.raises(ExerciseError, match="the wrong way"):
        ch14.check_rope(lambda x, positions, theta: rope_by_pairs(x, -positions, theta))


def test_rope_angles_interleaved_with_rotate_half():
    def wrong(x, positions, theta):
        hs = x.size(-1)
        freqs = theta ** (-torch.arange(0, hs, 2).double() / hs)
        angles = torch.stack([torch.outer(positions.double(), freqs)] * 2, dim=-1).flatten(-2)  # f0 f0 f1 f1 ...
        rotated = torch.cat((-x[..., hs // 2 :], x[..., : hs // 2]), dim=-1)
        return x * angles.cos() + rotated * angles.sin()

    with pytest.raises(ExerciseError, match=r"torch.cat\(\(angles, angles\), -1\)"):
        ch14.check_rope(wrong)


def test_rope_exponent_without_the_two():
    def wrong(x, positions, theta):
        hs = x.size(-1)
        out = x.clone()
        for i in range(hs // 2):
            angle = positions.double() * theta ** (-i / hs)
            a, b = x[..., i], x[..., i + hs // 2]
            out[..., i], out[..., i + hs // 2] = a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()
        return out

    with pytest.raises(ExerciseError, match=r"theta \*\* \(-2i / hs\)"):
        ch14.check_rope(wrong)


def test_rope_positions_from_zero_whatever_was_given():
    with pytest.raises(ExerciseError, match="positions need not start at 0"):
        ch14.check_rope(lambda x, positions, theta: rope_by_pairs(x, torch.arange(x.size(-2)), theta))


# -- RMSNorm ------------------------------------------------------------------------------------------
def rms_by_hand(x, weight, eps):
    mean_square = (x * x).sum(dim=-1, keepdim=True) / x.size(-1)
    return weight * x / torch.sqrt(mean_square + eps)


def test_rms_norm_right_answers_and_gptlibs_rmsnorm():
    assert ch14.check_rms_norm(ch14.rms_norm).startswith("correct")
    assert ch14.check_rms_norm(rms_by_hand).startswith("correct")

    def with_gptlib(x, weight, eps):
        norm = RMSNorm(x.size(-1), eps=eps).double()
        norm.weight.data.copy_(weight)
        return norm(x).detach()

    assert ch14.check_rms_norm(with_gptlib).startswith("correct")


def test_rms_norm_with_the_mean_subtracted():
    def wrong(x, weight, eps):
        centred = x - x.mean(-1, keepdim=True)
        return weight * centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + eps)

    with pytest.raises(ExerciseError, match="RMSNorm does not subtract the mean"):
        ch14.check_rms_norm(wrong)


def test_rms_norm_eps_outside_the_root():
    with pytest.raises(ExerciseError, match="epsilon inside the square root"):
        ch14.check_rms_norm(lambda x, w, eps: w * x / (x.pow(2).mean(-1, keepdim=True) ** 0.5 + eps))


def test_rms_norm_by_the_length_of_the_vector():
    with pytest.raises(ExerciseError, match="the mean of the squares, not their sum"):
        ch14.check_rms_norm(lambda x, w, eps: w * x / torch.sqrt(x.norm(dim=-1, keepdim=True) ** 2 + eps))


def test_rms_norm_without_the_weight():
    with pytest.raises(ExerciseError, match="multiply by the learned weight"):
        ch14.check_rms_norm(lambda x, w, eps: rms_by_hand(x, torch.ones_like(w), eps))


def test_rms_norm_over_the_positions():
    def wrong(x, weight, eps):
        return weight * x / torch.sqrt(x.pow(2).mean(1, keepdim=True) + eps)

    with pytest.raises(ExerciseError, match="not over the positions"):
        ch14.check_rms_norm(wrong)


# -- grouped-query attention ----------------------------------------------------------------------------
def repeat_by_loop(kv, n_head):
    group = n_head // kv.size(1)
    return torch.stack([kv[:, h // group] for h in range(n_head)], dim=1)


def test_repeat_kv_right_answers():
    assert ch14.check_repeat_kv(ch14.repeat_kv).startswith("correct")
    assert ch14.check_repeat_kv(repeat_by_loop).startswith("correct")
    assert ch14.check_repeat_kv(lambda kv, n_head: kv.repeat_interleave(n_head // kv.size(1), 1)).startswith("correct")


def test_repeat_kv_tiled_order():
    def wrong(kv, n_head):
        return torch.stack([kv[:, h % kv.size(1)] for h in range(n_head)], dim=1)

    with pytest.raises(ExerciseError, match=r"kv head h % n_kv_head, the order of .repeat"):
        ch14.check_repeat_kv(wrong)


def test_repeat_kv_n_head_copies_of_each():
    def wrong(kv, n_head):
        return torch.cat([kv[:, j : j + 1].expand(-1, n_head, -1, -1) for j in range(kv.size(1))], dim=1)

    with pytest.raises(ExerciseError, match="not n_head times"):
        ch14.check_repeat_kv(wrong)


def test_repeat_kv_along_the_positions():
    def wrong(kv, n_head):
        group = n_head // kv.size(1)
        return torch.stack([kv] * group, dim=3).flatten(2, 3)  # each position repeated group times

    with pytest.raises(ExerciseError, match=r"not along the positions \(dim=2\)"):
        ch14.check_repeat_kv(wrong)


# -- stubs and crashes -------------------------------------------------------------------------------------
def test_untouched_stubs_are_not_attempted():
    def my_rope(x, positions, theta):
        raise NotImplementedError("turn each pair (i, i + hs/2)")

    def my_rms_norm(x, weight, eps):
        raise NotImplementedError

    def my_repeat_kv(kv, n_head):
        raise NotImplementedError

    assert ch14.check_rope(my_rope).startswith("not attempted yet: rope")
    assert ch14.check_rms_norm(my_rms_norm).startswith("not attempted yet")
    assert ch14.check_repeat_kv(my_repeat_kv).startswith("not attempted yet")


def test_a_crash_is_reported_as_the_answer():
    with pytest.raises(ExerciseError, match=r"repeat_kv: your function raised RuntimeError: .*\(on input 1\)"):
        ch14.check_repeat_kv(lambda kv, n_head: kv.view(kv.size(0), n_head, -1, math.prod(kv.shape)))
