"""gptlib.interpret against independent computations: the forward pass written out by
hand, heads ablated by zeroing c_proj columns, and patterns built by hand."""

import copy
import math

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.interpret import (
    ablate_heads,
    attention_patterns,
    batch_attention,
    first_position_scores,
    head_ablation_losses,
    in_context_score,
    induction_scores,
    logit_lens,
    loss_by_context,
    previous_token_scores,
    repeated_distinct_tokens,
    repeated_random_tokens,
    residual_stream,
    run_with_cache,
    spread_windows,
    stream_into,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=50, block_size=24, n_layer=3, n_head=4, n_embd=32)
    m = GPT(config).eval()
    with torch.no_grad():  # larger weights than at init, so that heads differ from uniform
        for p in m.parameters():
            p.mul_(4.0)
    return m


@pytest.fixture
def idx():
    return torch.randint(50, (20,), generator=torch.Generator().manual_seed(1))


def by_hand(model, idx):
    """The forward pass written out: (attention [L, H, T, T], resid [L + 1, T, C])."""
    cfg = model.config
    T, hs = idx.numel(), cfg.head_size
    x = model.transformer.wte.weight[idx] + model.transformer.wpe.weight[:T]  # (T, C)
    allowed = torch.ones(T, T).tril().bool()
    patterns, resid = [], [x]
    for block in model.transformer.h:
        a = torch.nn.functional.layer_norm(x, (cfg.n_embd,), block.ln_1.weight, block.ln_1.bias, 1e-5)
        qkv = a @ block.attn.c_attn.weight.T + block.attn.c_attn.bias  # (T, 3C)
        q, k, _ = qkv.split(cfg.n_embd, dim=-1)
        layer = []
        for h in range(cfg.n_head):
            qh, kh = q[:, h * hs : (h + 1) * hs], k[:, h * hs : (h + 1) * hs]
            scores = (qh @ kh.T / math.sqrt(hs)).masked_fill(~allowed, float("-inf"))
            layer.append(torch.softmax(scores, dim=-1))
        patterns.append(torch.stack(layer))
        x = block(x[None])[0]
        resid.append(x)
    return torch.stack(patterns), torch.stack(resid)


def test_patterns_and_stream_equal_the_forward_pass_written_out(model, idx):
    with torch.no_grad():
        want_patterns, want_resid = by_hand(model, idx)
    rec = run_with_cache(model, idx)
    assert rec.attention.shape == (3, 4, 20, 20)
    assert rec.resid.shape == (4, 20, 32)
    torch.testing.assert_close(rec.attention, want_patterns, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(rec.resid, want_resid, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attention_patterns(model, idx[None]), want_patterns, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(residual_stream(model, idx), want_resid, atol=1e-5, rtol=1e-4)
    # the heads are not all alike (the check would be weak if they were uniform)
    assert (rec.attention[0, 0] - rec.attention[0, 1]).abs().max() > 0.05


def test_logit_lens_of_the_last_layer_is_the_model_output(model, idx):
    rec = run_with_cache(model, idx)
    lens = logit_lens(model, rec.resid)
    assert lens.shape == (4, 20, 50)
    with torch.no_grad():
        logits, _ = model(idx[None])
    torch.testing.assert_close(lens[-1], logits[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(rec.logits, logits[0], atol=1e-5, rtol=1e-4)
    # earlier layers read out differently
    assert (lens[0] - lens[-1]).abs().max() > 0.1


def test_recording_leaves_the_model_as_it_was(model, idx):
    model.train()
    run_with_cache(model, idx)
    assert model.training
    assert all(not block._forward_hooks for block in model.transformer.h)
    assert not model.transformer.drop._forward_hooks


def test_head_scores_on_patterns_built_by_hand():
    T = 8
    prev = torch.zeros(T, T)
    prev[0, 0] = 1.0
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1.0  # every t attends to t - 1
    uniform = torch.ones(T, T).tril()
    uniform = uniform / uniform.sum(-1, keepdim=True)
    first = torch.zeros(T, T)
    first[:, 0] = 1.0
    patterns = torch.stack([prev, uniform, first])[None]  # [1, 3, T, T]
    torch.testing.assert_close(
        previous_token_scores(patterns),
        torch.tensor([[1.0, sum(1 / (t + 1) for t in range(1, T)) / (T - 1), 1 / (T - 1)]]),
    )
    torch.testing.assert_close(first_position_scores(patterns)[0, 2], torch.tensor(1.0))
    torch.testing.assert_close(first_position_scores(patterns)[0, 0], torch.tensor(1 / (T - 1)))

    period = 4  # an induction head on a sequence repeating every 4: t attends to t - 3
    ind = torch.zeros(T, T)
    ind[:, 0] = 1.0
    for t in range(period, T):
        ind[t] = 0.0
        ind[t, t - period + 1] = 1.0
    scores = induction_scores(torch.stack([ind, prev])[None], period)
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.0]]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"period 9 needs 2 <= period < T = 8"):
        induction_scores(torch.zeros(1, 1, 8, 8), 9)
    with pytest.raises(ValueError, match=r"\[L, H, T, T\]"):
        previous_token_scores(torch.zeros(8, 8))


def test_repeated_random_tokens_repeat():
    seq = repeated_random_tokens(50, period=10, repeats=3, generator=torch.Generator().manual_seed(0))
    assert seq.shape == (30,)
    assert torch.equal(seq[:10], seq[10:20]) and torch.equal(seq[:10], seq[20:])
    assert int(seq.max()) < 50


def test_repeated_distinct_tokens_have_no_repeat_inside_a_copy():
    g = torch.Generator().manual_seed(0)
    seq = repeated_distinct_tokens(83, period=50, repeats=2, generator=g)
    assert seq.shape == (100,) and torch.equal(seq[:50], seq[50:])
    assert len(set(seq[:50].tolist())) == 50 and int(seq.max()) < 83
    assert sorted(repeated_distinct_tokens(20, 20, 1, generator=g).tolist()) == list(range(20))  # all of them
    with pytest.raises(ValueError, match=r"1 <= period <= vocab_size = 83 \(different ids\)"):
        repeated_distinct_tokens(83, 84)


def zeroed_copy(model, heads):
    """A copy of the model whose c_proj ignores those heads: their columns set to 0."""
    m = copy.deepcopy(model)
    hs = m.config.head_size
    with torch.no_grad():
        for layer, head in heads:
            m.transformer.h[layer].attn.c_proj.weight[:, head * hs : (head + 1) * hs] = 0.0
    return m


def test_ablating_a_head_equals_zeroing_its_c_proj_columns(model, idx):
    heads = [(1, 2), (2, 0), (2, 3)]
    with torch.no_grad():
        want, _ = zeroed_copy(model, heads)(idx[None])
        clean, _ = model(idx[None])
        with ablate_heads(model, heads):
            got, _ = model(idx[None])
        after, _ = model(idx[None])
    torch.testing.assert_close(got, want)
    assert (got - clean).abs().max() > 1e-3  # ablation changed something
    torch.testing.assert_close(after, clean)  # and the hooks are gone afterwards


def test_head_ablation_losses(model, idx):
    x, y = idx[:-1][None], idx[1:][None]
    deltas = head_ablation_losses(model, x, y)
    assert deltas.shape == (3, 4)
    with torch.no_grad():
        _, clean = model(x, y)
        for layer, head in [(0, 0), (1, 3), (2, 1)]:
            _, loss = zeroed_copy(model, [(layer, head)])(x, y)
            assert deltas[layer, head].item() == pytest.approx(loss.item() - clean.item(), abs=1e-5)


def test_a_head_that_does_not_exist(model):
    with pytest.raises(ValueError, match=r"head \(3, 0\) does not exist: layers 0..2, heads 0..3"):
        with ablate_heads(model, [(3, 0)]):
            pass


def test_a_batch_records_what_each_sequence_records_alone(model):
    batch = torch.randint(50, (3, 12), generator=torch.Generator().manual_seed(2))
    att = batch_attention(model, batch)
    assert att.shape == (3, 3, 4, 12, 12)  # [B, L, H, T, T]
    for b in range(3):
        rec = run_with_cache(model, batch[b])
        torch.testing.assert_close(att[b], rec.attention, atol=1e-5, rtol=1e-4)
        for layer in range(4):  # stream_into(layer) is what block `layer` reads: resid[layer]
            torch.testing.assert_close(stream_into(model, batch, layer)[b], rec.resid[layer], atol=1e-5, rtol=1e-4)
    assert torch.equal(batch_attention(model, batch[0]), batch_attention(model, batch[:1]))
    with pytest.raises(ValueError, match=r"layer 4 needs 0 <= layer <= n_layer = 3"):
        stream_into(model, batch, 4)


def test_spread_windows_start_evenly_from_first_to_last():
    ids = torch.arange(100)
    w = spread_windows(ids, 10, 4)  # starts 0, 30, 60, 90
    assert w.shape == (4, 10)
    assert w[:, 0].tolist() == [0, 30, 60, 90] and torch.equal(w[0], torch.arange(10))
    with pytest.raises(ValueError, match=r"1 <= length <= 100"):
        spread_windows(ids, 101, 2)


def test_loss_by_context_is_the_loss_at_each_position(model):
    windows = torch.randint(50, (3, 11), generator=torch.Generator().manual_seed(3))
    losses = loss_by_context(model, windows)
    assert losses.shape == (3, 10)
    for k in (0, 4, 9):  # column k: predicting windows[:, k + 1] from the first k + 1 ids alone
        with torch.no_grad():
            logits, _ = model(windows[:, : k + 1])
        want = torch.nn.functional.cross_entropy(logits[:, -1], windows[:, k + 1], reduction="none")
        torch.testing.assert_close(losses[:, k], want, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"2 to block_size \+ 1 = 25 ids, got 26"):
        loss_by_context(model, torch.zeros(1, 26, dtype=torch.long))


def test_in_context_score_is_late_minus_early_window_by_window():
    losses = torch.tensor([[3.0, 3.0, 2.0, 1.0], [4.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]])
    score, se = in_context_score(losses, early=(1, 2), late=(4, 4))  # differences -2, -1, 0
    assert score == pytest.approx(-1.0) and se == pytest.approx(1.0 / 3**0.5)
    with pytest.raises(ValueError, match=r"late context lengths \(3, 5\) need 1 <= first <= last <= 4"):
        in_context_score(losses, early=(1, 2), late=(3, 5))
