"""gptlib.circuits on tiny models whose answer is known: weights set by hand so that a
head copies (or anti-copies), heads that write nothing, inputs that differ in one place,
and cross-checks of each circuit against the real forward pass."""

import math

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.circuits import (
    activation_patching,
    add_to_attention_input,
    copying_score,
    direct_logit_attribution,
    head_outputs,
    head_write,
    ov_circuit,
    ov_write,
    patch_heads,
    qk_circuit,
    self_argmax_fraction,
    stream_pieces,
    through_mlp,
)
from gptlib.interpret import ablate_heads, batch_attention, stream_into


def tiny(n_layer=2, n_head=2, n_embd=16, vocab=20, bias=False, scale=4.0, seed=0):
    """A random model with larger weights than at init, so that heads differ from uniform."""
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=vocab, block_size=16, n_layer=n_layer, n_head=n_head, n_embd=n_embd, bias=bias)
    m = GPT(config).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.mul_(scale)
    return m


@pytest.fixture
def model():
    return tiny()


@pytest.fixture
def idx():
    return torch.randint(20, (3, 10), generator=torch.Generator().manual_seed(1))


def test_head_outputs_equal_attention_written_out(model, idx):
    outs = head_outputs(model, idx)
    assert outs.shape == (2, 2, 3, 10, 8)  # [L, H, B, T, hs]
    C, hs, T = 16, 8, 10
    allowed = torch.ones(T, T).tril().bool()
    for layer, block in enumerate(model.transformer.h):
        with torch.no_grad():
            x = stream_into(model, idx, layer)  # [B, T, C]
            q, k, v = block.attn.c_attn(block.ln_1(x)).split(C, dim=-1)
            for h in range(2):
                sl = slice(h * hs, (h + 1) * hs)
                att = (q[..., sl] @ k[..., sl].transpose(-2, -1) / math.sqrt(hs)).masked_fill(~allowed, -math.inf)
                want = att.softmax(-1) @ v[..., sl]  # [B, T, hs]
                torch.testing.assert_close(outs[layer, h], want, atol=1e-5, rtol=1e-4)


def test_patching_heads_with_zeros_is_ablation_and_with_their_own_outputs_changes_nothing(model, idx):
    outs = head_outputs(model, idx)
    with torch.no_grad():
        clean, _ = model(idx)
        with ablate_heads(model, [(0, 1), (1, 0)]):
            zeroed, _ = model(idx)
        with patch_heads(model, {(0, 1): torch.zeros(8), (1, 0): torch.zeros(8)}):
            patched, _ = model(idx)
        with patch_heads(model, {(0, 0): outs[0, 0], (1, 1): outs[1, 1]}):
            same, _ = model(idx)
        after, _ = model(idx)
    torch.testing.assert_close(patched, zeroed)
    assert (zeroed - clean).abs().max() > 1e-2
    torch.testing.assert_close(same, clean)
    torch.testing.assert_close(after, clean)  # the hooks are gone


@pytest.mark.parametrize("bias", [False, True])
def test_the_pieces_sum_to_the_stream_and_the_shares_to_the_logit(bias, idx):
    m = tiny(bias=bias)
    names, pieces = stream_pieces(m, idx)
    want = ["embeddings", "L0H0", "L0H1"] + (["L0 attn bias"] if bias else []) + ["L0 MLP", "L1H0", "L1H1"]
    want += (["L1 attn bias"] if bias else []) + ["L1 MLP"]
    assert names == want and pieces.shape == (len(want), 3, 10, 16)
    torch.testing.assert_close(pieces.sum(0), stream_into(m, idx, 2), atol=1e-4, rtol=1e-5)
    targets = torch.roll(idx, -1, dims=1)
    names, shares = direct_logit_attribution(m, idx, targets)
    assert shares.shape == (len(names), 3, 10) and (names[-1] == "ln_f bias") == bias
    with torch.no_grad():
        logits, _ = m(idx)
    torch.testing.assert_close(shares.sum(0), logits.gather(-1, targets[..., None])[..., 0], atol=1e-4, rtol=1e-5)


def test_a_head_that_writes_nothing_has_no_share(model, idx):
    with torch.no_grad():
        model.transformer.h[1].attn.c_proj.weight[:, 8:16] = 0.0  # L1H1 writes nothing
    names, shares = direct_logit_attribution(model, idx, idx)
    assert shares[names.index("L1H1")].abs().max() == 0
    assert shares[names.index("L1H0")].abs().max() > 0.01


def test_with_every_branch_silenced_the_embeddings_are_the_whole_logit(model, idx):
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_proj.weight.zero_()
            block.mlp.c_proj.weight.zero_()
        logits, _ = model(idx)
    names, shares = direct_logit_attribution(model, idx, idx)
    torch.testing.assert_close(shares[0], logits.gather(-1, idx[..., None])[..., 0])
    assert shares[1:].abs().max() == 0


def test_a_delta_in_every_input_of_a_layer_is_its_attention_reading_another_stream(model, idx):
    d = torch.randn(3, 10, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = stream_into(model, idx, 1)
        block = model.transformer.h[1]
        y = x + block.attn(block.ln_1(x + d))  # the attention reads x + d; the stream keeps x
        y = y + block.mlp(block.ln_2(y))
        want = model.lm_head(model.transformer.ln_f(y))
        with add_to_attention_input(model, 1, d, ("q", "k", "v")):
            got, _ = model(idx)
        with add_to_attention_input(model, 1, torch.zeros(16), ("k",)):
            unchanged, _ = model(idx)
        clean, _ = model(idx)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(unchanged, clean)


def test_a_delta_at_one_position_moves_only_the_attention_it_can_reach(model, idx):
    p = 4
    d = torch.zeros(1, 10, 16)
    d[0, p] = 3.0 * torch.randn(16, generator=torch.Generator().manual_seed(3))
    clean = batch_attention(model, idx)[:, 1]  # [B, H, T, T]
    with add_to_attention_input(model, 1, d, ("k",)):
        keys = batch_attention(model, idx)[:, 1]
    with add_to_attention_input(model, 1, d, ("q",)):
        queries = batch_attention(model, idx)[:, 1]
    with add_to_attention_input(model, 1, d, ("v",)):
        values = batch_attention(model, idx)[:, 1]
    # a changed key at p: only queries at t >= p can see it
    torch.testing.assert_close(keys[..., :p, :], clean[..., :p, :])
    assert (keys[..., p:, :] - clean[..., p:, :]).abs().amax(dim=(0, 1, 3)).min() > 1e-4
    # a changed query at p: only row p moves
    rows = [t for t in range(10) if t != p]
    torch.testing.assert_close(queries[..., rows, :], clean[..., rows, :])
    assert (queries[..., p, :] - clean[..., p, :]).abs().max() > 1e-3
    torch.testing.assert_close(values, clean)  # values never move attention


def copier(sign=1.0, vocab=8, n_embd=16):
    """One layer, one head whose W_O W_V is +-identity; nothing else writes."""
    m = tiny(n_layer=1, n_head=1, n_embd=n_embd, vocab=vocab, scale=1.0, seed=5)
    with torch.no_grad():
        m.transformer.wte.weight.normal_(generator=torch.Generator().manual_seed(6))
        m.transformer.wpe.weight.zero_()
        attn = m.transformer.h[0].attn
        attn.c_attn.weight[2 * n_embd :] = torch.eye(n_embd)  # W_V = I
        attn.c_proj.weight.copy_(sign * torch.eye(n_embd))  # W_O = +-I
        m.transformer.h[0].mlp.c_proj.weight.zero_()
    return m


def test_a_head_whose_ov_is_the_identity_copies_and_its_negative_anti_copies():
    ov = ov_circuit(copier(+1.0), 0, 0)
    assert ov.shape == (8, 8)
    assert copying_score(ov) == pytest.approx(1.0, abs=1e-6)  # W_E P W_E^T D: eigenvalues >= 0
    assert self_argmax_fraction(ov) == 1.0
    anti = ov_circuit(copier(-1.0), 0, 0)
    assert copying_score(anti) == pytest.approx(-1.0, abs=1e-6)
    assert self_argmax_fraction(anti) == 0.0


def test_the_ov_circuit_is_the_heads_share_of_the_logit_up_to_ln_fs_scale(model):
    """On a one-token input (position embeddings zeroed), the head attends to that token,
    so its share of every logit is its OV circuit's column, divided by ln_f's scale."""
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()
    j = 7
    idx, targets = torch.full((20, 1), j), torch.arange(20)[:, None]  # every target for the same input
    names, shares = direct_logit_attribution(model, idx, targets)
    x = stream_into(model, idx[:1], 2)[0, 0]
    s = (x.var(unbiased=False) + 1e-5).sqrt()
    torch.testing.assert_close(
        shares[names.index("L0H1"), :, 0] * s, ov_circuit(model, 0, 1)[:, j], atol=1e-4, rtol=1e-4
    )
    _, pieces = stream_pieces(model, idx[:1])
    torch.testing.assert_close(
        pieces[names.index("L0H1"), 0, 0], ov_write(model, 0, 1, model.transformer.wte.weight[j])
    )


def test_the_qk_circuit_gives_the_attention_of_a_two_token_input(model):
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()
    S = qk_circuit(model, 0, 1)  # [V, V]: query token i, key token j
    assert S.shape == (20, 20)
    for i, j in [(3, 11), (0, 19), (5, 5)]:
        att = batch_attention(model, torch.tensor([j, i]))[0, 0, 1, 1, :2]  # query at position 1
        want = (torch.tensor([S[i, j], S[i, i]]) / math.sqrt(8)).softmax(-1)
        torch.testing.assert_close(att, want, atol=1e-5, rtol=1e-4)
    keys = torch.randn(4, 3, 16)
    assert qk_circuit(model, 1, 0, keys=keys).shape == (20, 4, 3)


def test_through_mlp_is_the_stream_after_block_0_when_attention_adds_nothing(model, idx):
    with torch.no_grad():
        model.transformer.h[0].attn.c_proj.weight.zero_()
        x0 = model.transformer.wte(idx) + model.transformer.wpe.weight[:10]
    torch.testing.assert_close(through_mlp(model, 0, x0), stream_into(model, idx, 1), atol=1e-5, rtol=1e-5)


def test_copying_scores_of_matrices_with_known_eigenvalues():
    assert copying_score(torch.eye(5)) == pytest.approx(1.0)
    assert copying_score(-2 * torch.eye(5)) == pytest.approx(-1.0)
    assert copying_score(torch.diag(torch.tensor([3.0, -1.0]))) == pytest.approx(0.5)
    assert copying_score(torch.tensor([[0.0, -1.0], [1.0, 0.0]])) == pytest.approx(0.0, abs=1e-12)  # eigenvalues +-i
    shift = torch.roll(torch.eye(6), 1, dims=0)  # every column's largest entry is on another row
    assert self_argmax_fraction(torch.eye(6)) == 1.0 and self_argmax_fraction(shift) == 0.0


def test_activation_patching_recovers_exactly_what_the_patched_head_carries():
    """One layer, MLP silent, head 1 writes nothing; clean and corrupted differ at position 0
    only, and the metric reads the last position: patching head 0 restores the clean metric
    exactly, patching head 1 changes nothing."""
    m = tiny(n_layer=1)
    with torch.no_grad():
        m.transformer.h[0].mlp.c_proj.weight.zero_()
        m.transformer.h[0].attn.c_proj.weight[:, 8:] = 0.0
    clean = torch.randint(20, (2, 8), generator=torch.Generator().manual_seed(4))
    corrupted = clean.clone()
    corrupted[:, 0] = (clean[:, 0] + 1) % 20

    def metric(logits):
        return logits[:, -1, 3].mean().item()

    with torch.no_grad():
        m_clean, m_corrupted = metric(m(clean)[0]), metric(m(corrupted)[0])
    assert abs(m_clean - m_corrupted) > 1e-3
    result = activation_patching(m, clean, corrupted, metric)
    assert result.shape == (1, 2)
    assert result[0, 0].item() == pytest.approx(m_clean, abs=1e-5)
    assert result[0, 1].item() == pytest.approx(m_corrupted, abs=1e-6)
    same = activation_patching(m, clean, clean, metric)
    torch.testing.assert_close(same, torch.full((1, 2), m_clean))


def test_head_write_is_the_heads_columns_of_c_proj(model, idx):
    outs = head_outputs(model, idx)
    with torch.no_grad():
        joined = outs[1].permute(1, 2, 0, 3).reshape(3, 10, 16)  # [B, T, H * hs]
        want = model.transformer.h[1].attn.c_proj(joined)
    got = head_write(model, 1, 0, outs[1, 0]) + head_write(model, 1, 1, outs[1, 1])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_bad_arguments_are_named(model, idx):
    with pytest.raises(ValueError, match=r"parts must be some of 'q', 'k', 'v'"):
        with add_to_attention_input(model, 1, torch.zeros(16), ("x",)):
            pass
    with pytest.raises(ValueError, match=r"head \(2, 0\) does not exist"):
        with add_to_attention_input(model, 2, torch.zeros(16)):
            pass
    with pytest.raises(ValueError, match=r"head \(0, 5\) does not exist"):
        with patch_heads(model, {(0, 5): torch.zeros(8)}):
            pass
    with pytest.raises(ValueError, match=r"layer 3 needs 0 <= layer <= n_layer = 2"):
        stream_into(model, idx, 3)
    with pytest.raises(ValueError, match=r"\[T\] or \[B, T\]"):
        head_outputs(model, torch.zeros(2, 3, 4, dtype=torch.long))


def test_attention_other_than_gpt2s_is_refused(model):
    model.transformer.h[1].attn.n_kv_head = 1  # as grouped-query attention would set it
    with pytest.raises(ValueError, match="GPT-2's attention"):
        ov_circuit(model, 1, 0)
    with pytest.raises(ValueError, match="GPT-2's attention"):
        with add_to_attention_input(model, 1, torch.zeros(16)):
            pass
