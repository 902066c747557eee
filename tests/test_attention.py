import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptlib import GPT, GPTConfig
from gptlib.attention import CausalSelfAttention, causal_mask, merge_heads, scaled_dot_product_attention, split_heads

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_causal_mask_is_lower_triangular_with_131328_pairs():
    mask = causal_mask(512)
    assert mask.shape == (512, 512) and mask.dtype == torch.bool
    assert int(mask.sum()) == 512 * 513 // 2 == 131_328
    assert mask[10, 10] and mask[10, 0] and not mask[10, 11]


def test_split_and_merge_heads_are_inverses_with_book_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 512, 768)
    heads = split_heads(x, 12)
    assert heads.shape == (2, 12, 512, 64)  # every head keeps all 512 tokens
    torch.testing.assert_close(heads[:, 3], x[:, :, 3 * 64 : 4 * 64])  # head 3 = dims 192..255
    assert torch.equal(merge_heads(heads), x)
    h = torch.randn(2, 12, 7, 64)
    assert torch.equal(split_heads(merge_heads(h), 12), h)


def test_split_heads_rejects_a_width_it_cannot_split():
    with pytest.raises(ValueError, match=r"cannot split 10 dimensions into 3 heads"):
        split_heads(torch.zeros(1, 2, 10), 3)


def test_written_out_attention_rows_sum_to_one_and_match_torch():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 12, 50, 64) for _ in range(3))
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(50))
    assert out.shape == (2, 12, 50, 64) and weights.shape == (2, 12, 50, 50)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 12, 50))
    assert torch.all(weights.triu(1) == 0)  # nothing from the future
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # the first row can only look at itself
    torch.testing.assert_close(out[:, :, 0], v[:, :, 0])


@pytest.mark.parametrize("head_size", [4, 16, 64])
def test_scale_is_one_over_sqrt_head_size(head_size):
    """Raw scores of sqrt(head_size) * ln 3 and 0: divided by sqrt(head_size) they differ by ln 3,
    so the weights are 3/4 and 1/4 at every head size. No scale, or a scale fixed for one head
    size (1/8 is GPT-2 small's), gives other weights at the other sizes."""
    q = torch.zeros(1, 1, 1, head_size)
    q[..., 0] = math.sqrt(head_size) * math.log(3.0)
    k = torch.zeros(1, 1, 2, head_size)
    k[0, 0, 0, 0] = 1.0  # the first key scores sqrt(head_size) * ln 3, the second 0
    v = torch.stack([torch.full((head_size,), 1.0), torch.full((head_size,), 3.0)])[None, None]  # (1, 1, 2, hs)
    out, w = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(w[0, 0, 0], torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(out[0, 0, 0], torch.full((head_size,), 0.75 * 1.0 + 0.25 * 3.0))


@pytest.mark.parametrize("T", [1, 5, 64])
def test_fast_and_written_out_paths_agree(T):
    torch.manual_seed(T)
    attn = CausalSelfAttention(96, 12).eval()
    x = torch.randn(3, T, 96)
    fast = attn(x)
    attn.fast = False
    slow = attn(x)
    assert fast.shape == slow.shape == (3, T, 96)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    w = attn.attention_weights(x)
    assert w.shape == (3, 12, T, T)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 12, T))


def test_model_paths_agree_on_a_gpt2_shaped_layer():
    torch.manual_seed(0)
    attn = CausalSelfAttention(768, 12).eval()
    x = torch.randn(1, 512, 768)
    q, k, v = attn.qkv(x)
    assert q.shape == k.shape == v.shape == (1, 12, 512, 64)
    assert attn.c_attn.weight.shape == (2304, 768)
    fast = attn(x)
    attn.fast = False
    torch.testing.assert_close(fast, attn(x), atol=1e-5, rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    n_head=st.integers(1, 4),
    head_size=st.integers(1, 8),
    n_layer=st.integers(1, 3),
    vocab_size=st.integers(2, 40),
    T=st.integers(2, 24),
    data=st.data(),
)
def test_future_tokens_never_change_past_logits(n_head, head_size, n_layer, vocab_size, T, data):
    config = GPTConfig(vocab_size=vocab_size, block_size=24, n_layer=n_layer, n_head=n_head, n_embd=n_head * head_size)
    seed = data.draw(st.integers(0, 2**16))
    t = data.draw(st.integers(0, T - 2))
    torch.manual_seed(seed)
    model = GPT(config).eval()
    idx = torch.randint(0, vocab_size, (2, T))
    changed = idx.clone()
    changed[:, t + 1 :] = torch.randint(0, vocab_size, (2, T - t - 1))
    for fast in (True, False):
        for block in model.transformer.h:
            block.attn.fast = fast
        before, _ = model(idx)
        after, _ = model(changed)
        torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1], atol=1e-6, rtol=0)
