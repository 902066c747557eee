import doctest

import pytest
import torch

from gptlib import GPT, GPTConfig
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


def tokens_per_head(config):
    return int(config.block_size / config.n_head)


def tokens_per_head_read_off_the_shape(config):
    x_shape = (1, config.block_size, config.n_embd)  # (B, T, C)
    return x_shape[1] / config.n_head  # the token axis, not the embedding


def dims_per_block(config):
    with torch.device("meta"):
        blocks = GPT(config).transformer.h  # h holds the blocks, not the heads
    return config.n_embd // len(blocks)


def dims_per_block_as_a_float(config):
    n_blocks = config.n_layer  # 12 in GPT-2 small, like n_head
    return config.n_embd / n_blocks


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (tokens_per_head, "Heads split the width of the queries, keys and values, not the tokens"),
        (tokens_per_head_read_off_the_shape, "Heads split the width of the queries, keys and values, not the tokens"),
        (dims_per_block, "n_layer is the number of blocks"),
        (dims_per_block_as_a_float, "n_layer is the number of blocks"),
    ],
    ids=["tokens", "tokens-float", "layers", "layers-float"],
)
def test_head_size_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch05.check_head_size(wrong)


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
        return x.reshape(B, n_head, T, -1)  # the shape of the right answer

    assert wrong(torch.zeros(2, 512, 768), 12).shape == split_heads(torch.zeros(2, 512, 768), 12).shape
    with pytest.raises(ExerciseError, match=r"shape is right but the numbers are not.*then transpose\(1, 2\)"):
        ch05.check_split_heads(wrong)


def test_split_heads_missing_transpose_gets_its_hint():
    def heads_last(x, n_head):
        head_size = x.shape[-1] // n_head
        return torch.stack(x.split(head_size, dim=-1), dim=2)  # (B, T, n_head, head_size)

    with pytest.raises(ExerciseError, match=r"heads are dimension 2\. transpose\(1, 2\)"):
        ch05.check_split_heads(heads_last)


def test_split_heads_splitting_tokens_gets_its_hint():
    def token_groups(x, n_head):
        return torch.stack(x.chunk(n_head, dim=1), dim=1)  # n_head groups of T // n_head tokens

    with pytest.raises(ExerciseError, match="that splits the tokens into n_head groups"):
        ch05.check_split_heads(token_groups)


def test_split_heads_interleaved_dims_gets_its_hint():
    def every_n_head_th_dim(x, n_head):
        return torch.stack([x[:, :, h::n_head] for h in range(n_head)], dim=1)

    with pytest.raises(ExerciseError, match=r"every n_head-th number"):
        ch05.check_split_heads(every_n_head_th_dim)


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
        return y.contiguous().view(B, T, -1)  # runs, but mixes tokens

    with pytest.raises(ExerciseError, match=r"shape is right but the numbers are not: without transpose\(1, 2\)"):
        ch05.check_merge_heads(wrong)


def test_merge_heads_view_without_contiguous_gets_its_hint():
    def wrong(y):
        B, nh, T, hs = y.shape
        return y.transpose(1, 2).view(B, T, nh * hs)  # RuntimeError: not contiguous

    with pytest.raises(ExerciseError, match=r"not contiguous in memory.*call \.contiguous\(\) before \.view"):
        ch05.check_merge_heads(wrong)


def test_merge_heads_wrong_order_gets_its_hint():
    def heads_stacked_last(y):
        n_head = y.shape[1]
        return torch.stack([y[:, h] for h in range(n_head)], dim=-1).flatten(2)  # (B, T, hs, nh) -> (B, T, C)

    with pytest.raises(ExerciseError, match="joined in the wrong order"):
        ch05.check_merge_heads(heads_stacked_last)


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
        C = W.shape[1]
        per_head = W.view(n_head, 3, C // n_head, C)  # as if each head's q, k, v rows came together
        return tuple(per_head[h].unbind(0))

    with pytest.raises(ExerciseError, match="c_attn is not grouped head by head"):
        ch05.check_head_weights(wrong)


def test_head_weights_without_offset_gets_its_hint():
    def wrong(W, h, n_head):
        hs = W.shape[1] // n_head
        wq = W.narrow(0, h * hs, hs)
        wk = W.narrow(0, h * hs, hs)  # copied from the line above, without the C offset
        wv = W.narrow(0, h * hs, hs)
        return wq, wk, wv

    with pytest.raises(ExerciseError, match="those are the query rows three times"):
        ch05.check_head_weights(wrong)


def test_head_weights_slicing_columns_gets_its_hint():
    def wrong(W, h, n_head):
        C = W.shape[1]
        hs = C // n_head
        q, k, v = W[:, :C], W[:, C : 2 * C], W[:, 2 * C :]  # as if W were (C, 3C)
        return tuple(part[:, h * hs : (h + 1) * hs] for part in (q, k, v))

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


def _bare_stub(*args):
    raise NotImplementedError  # the chapter's stubs: no hint in the message


@pytest.mark.parametrize(
    "checker, name",
    [
        (ch05.check_head_size, "head_size"),
        (ch05.check_split_heads, "split_heads"),
        (ch05.check_merge_heads, "merge_heads"),
        (ch05.check_head_weights, "head_weights"),
    ],
    ids=["head_size", "split_heads", "merge_heads", "head_weights"],
)
def test_the_chapters_stubs_print_only_not_attempted_yet(checker, name):
    assert checker(_bare_stub) == f"not attempted yet: {name}"
