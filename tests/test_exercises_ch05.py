import doctest

import pytest
import torch

from gptlib import GPTConfig
from gptlib.attention import merge_heads, split_heads
from gptlib.exercises import ExerciseError, ch05


def test_module_docstring_example_runs():
    result = doctest.testmod(ch05)
    assert result.attempted > 0 and result.failed == 0


# -- head_size -----------------------------------------------------------------------


def test_head_size_reference_is_accepted():
    assert ch05.check_head_size(ch05.head_size).startswith("correct")
    assert ch05.head_size(GPTConfig.from_preset("gpt2-512")) == 64
    assert ch05.head_size(GPTConfig(n_head=8)) == 96


def test_head_size_tokens_per_head_gets_its_hint():
    with pytest.raises(ExerciseError, match="Heads split the embedding dimension, not the tokens"):
        ch05.check_head_size(lambda c: c.block_size // c.n_head)


def test_head_size_dividing_by_layers_gets_its_hint():
    with pytest.raises(ExerciseError, match="n_layer is the number of blocks"):
        ch05.check_head_size(lambda c: c.n_embd // c.n_layer)


def test_head_size_float_division_gets_its_hint():
    with pytest.raises(ExerciseError, match=r"return an int \(got float 64.0\): use integer division //"):
        ch05.check_head_size(lambda c: c.n_embd / c.n_head)


def test_head_size_unknown_wrong_answer_fails_clearly():
    with pytest.raises(ExerciseError, match=r"head_size: expected 64, got 12; values differ \(input 1\)"):
        ch05.check_head_size(lambda c: c.n_head)


# -- split_heads ---------------------------------------------------------------------


def test_split_heads_reference_and_a_reshape_version_are_accepted():
    assert ch05.check_split_heads(split_heads).startswith("correct")

    def with_reshape(x, n_head):
        B, T, C = x.shape
        return x.reshape(B, T, n_head, C // n_head).permute(0, 2, 1, 3)

    assert ch05.check_split_heads(with_reshape) == "correct: split_heads agrees with the reference on 5 inputs"


def test_split_heads_view_without_transpose_gets_its_hint():
    def wrong(x, n_head):
        B, T, C = x.shape
        return x.view(B, n_head, T, C // n_head)  # same shape as the right answer

    assert wrong(torch.zeros(2, 512, 768), 12).shape == split_heads(torch.zeros(2, 512, 768), 12).shape
    with pytest.raises(ExerciseError, match=r"shape is right but the numbers are not.*then transpose\(1, 2\)"):
        ch05.check_split_heads(wrong)


def test_split_heads_missing_transpose_gets_its_hint():
    with pytest.raises(ExerciseError, match=r"heads are dimension 2\. transpose\(1, 2\)"):
        ch05.check_split_heads(lambda x, n: x.view(x.shape[0], x.shape[1], n, x.shape[2] // n))


def test_split_heads_splitting_tokens_gets_its_hint():
    with pytest.raises(ExerciseError, match="that splits the tokens into n_head groups"):
        ch05.check_split_heads(lambda x, n: x.view(x.shape[0], n, x.shape[1] // n, x.shape[2]))


def test_split_heads_interleaved_dims_gets_its_hint():
    def wrong(x, n_head):
        B, T, C = x.shape
        return x.view(B, T, C // n_head, n_head).permute(0, 3, 1, 2)

    with pytest.raises(ExerciseError, match=r"every n_head-th dim"):
        ch05.check_split_heads(wrong)


def test_split_heads_crash_is_reported():
    with pytest.raises(ExerciseError, match="split_heads: your function raised ZeroDivisionError"):
        ch05.check_split_heads(lambda x, n: x.view(1 // 0))


# -- merge_heads ---------------------------------------------------------------------


def test_merge_heads_reference_and_a_reshape_version_are_accepted():
    assert ch05.check_merge_heads(merge_heads).startswith("correct")

    def with_reshape(y):
        B, nh, T, hs = y.shape
        return y.transpose(1, 2).reshape(B, T, nh * hs)

    assert ch05.check_merge_heads(with_reshape) == "correct: merge_heads agrees with the reference on 4 inputs"


def test_merge_heads_view_without_transpose_gets_its_hint():
    def wrong(y):
        B, nh, T, hs = y.shape
        return y.view(B, T, nh * hs)  # works (y is contiguous) but mixes tokens

    with pytest.raises(ExerciseError, match=r"shape is right but the numbers are not: without transpose\(1, 2\)"):
        ch05.check_merge_heads(wrong)


def test_merge_heads_view_without_contiguous_gets_its_hint():
    def wrong(y):
        B, nh, T, hs = y.shape
        return y.transpose(1, 2).view(B, T, nh * hs)  # RuntimeError: not contiguous

    with pytest.raises(ExerciseError, match=r"not contiguous in memory.*call \.contiguous\(\) before \.view"):
        ch05.check_merge_heads(wrong)


def test_merge_heads_wrong_order_gets_its_hint():
    def wrong(y):
        B, nh, T, hs = y.shape
        return y.permute(0, 2, 3, 1).reshape(B, T, nh * hs)

    with pytest.raises(ExerciseError, match="joined in the wrong order"):
        ch05.check_merge_heads(wrong)


def test_merge_heads_forgetting_to_flatten_reports_the_shape():
    with pytest.raises(ExerciseError, match=r"expected shape \[2, 24, 48\], got \[2, 24, 12, 4\]"):
        ch05.check_merge_heads(lambda y: y.transpose(1, 2))


# -- head_weights --------------------------------------------------------------------


def test_head_weights_reference_is_accepted_and_builds_a_head():
    assert ch05.check_head_weights(ch05.head_weights).startswith("correct")
    torch.manual_seed(0)
    W = torch.randn(2304, 768)
    wq, wk, wv = ch05.head_weights(W, 3, 12)
    assert wq.shape == wk.shape == wv.shape == (64, 768)
    assert torch.equal(wk, W[768 + 192 : 768 + 256])
    x = torch.randn(1, 5, 768)
    q, k, v = (split_heads(t, 12) for t in (x @ W.T).split(768, dim=-1))
    torch.testing.assert_close(x @ wq.T, q[:, 3])
    torch.testing.assert_close(x @ wv.T, v[:, 3])


def test_head_weights_grouped_by_head_gets_its_hint():
    def wrong(W, h, n_head):
        hs = W.shape[1] // n_head
        return tuple(W[3 * h * hs : 3 * (h + 1) * hs].split(hs))

    with pytest.raises(ExerciseError, match="c_attn is not grouped head by head"):
        ch05.check_head_weights(wrong)


def test_head_weights_without_offset_gets_its_hint():
    def wrong(W, h, n_head):
        hs = W.shape[1] // n_head
        return (W[h * hs : (h + 1) * hs],) * 3

    with pytest.raises(ExerciseError, match="those are the query rows three times"):
        ch05.check_head_weights(wrong)


def test_head_weights_slicing_columns_gets_its_hint():
    def wrong(W, h, n_head):
        C = W.shape[1]
        hs = C // n_head
        return tuple(W[:, p * C + h * hs : p * C + (h + 1) * hs] for p in range(3))

    with pytest.raises(ExerciseError, match=r"stores its weight as \(out, in\) = \(3C, C\)"):
        ch05.check_head_weights(wrong)


# -- untouched stubs -----------------------------------------------------------------


def _stub(*args):
    raise NotImplementedError("fill me in")


@pytest.mark.parametrize(
    "checker",
    [ch05.check_head_size, ch05.check_split_heads, ch05.check_merge_heads, ch05.check_head_weights],
    ids=["head_size", "split_heads", "merge_heads", "head_weights"],
)
def test_an_untouched_stub_is_not_attempted_yet(checker):
    assert checker(_stub).startswith("not attempted yet")
