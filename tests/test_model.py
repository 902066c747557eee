import math

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.generate import next_token_probs
from gptlib.trace import format_trace, trace, trace_config


def test_module_layout_is_nanogpt_and_gpt2(tiny_model):
    t = tiny_model.transformer
    assert set(t.keys()) == {"wte", "wpe", "drop", "h", "ln_f"}
    assert len(t.h) == 2
    assert tiny_model.lm_head.weight is t.wte.weight  # tied
    names = [n for n, _ in tiny_model.named_parameters()]
    assert "transformer.h.0.attn.c_attn.weight" in names
    assert "transformer.h.1.mlp.c_proj.bias" in names
    assert "lm_head.weight" not in names  # the tied matrix is counted once


def test_forward_shapes_and_loss_at_init(tiny_model, tiny_config):
    torch.manual_seed(1)
    idx = torch.randint(0, tiny_config.vocab_size, (4, 32))
    logits, loss = tiny_model(idx)
    assert logits.shape == (4, 32, 512) and loss is None
    _, loss = tiny_model(idx, torch.roll(idx, -1, dims=1))
    # an untrained model guesses nearly uniformly: loss close to ln(vocab_size)
    assert abs(loss.item() - math.log(512)) < 0.05


def test_ignored_targets(tiny_model):
    idx = torch.randint(0, 512, (1, 8))
    targets = idx.clone()
    targets[0, :4] = -1
    logits, loss = tiny_model(idx, targets)
    expected = torch.nn.functional.cross_entropy(logits[0, 4:], targets[0, 4:])
    torch.testing.assert_close(loss, expected)


def test_gpt2_initialisation():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=1000, block_size=64, n_layer=8, n_head=4, n_embd=256)
    model = GPT(config)
    h0 = model.transformer.h[0]
    assert abs(h0.attn.c_attn.weight.std().item() - 0.02) < 0.001
    assert abs(h0.mlp.c_fc.weight.std().item() - 0.02) < 0.001
    assert abs(model.transformer.wpe.weight.std().item() - 0.02) < 0.001
    scaled = 0.02 / math.sqrt(2 * 8)
    assert abs(h0.attn.c_proj.weight.std().item() - scaled) < 0.0005
    assert abs(h0.mlp.c_proj.weight.std().item() - scaled) < 0.0005
    assert torch.all(h0.attn.c_attn.bias == 0) and torch.all(h0.ln_1.weight == 1)


def test_trace_table_of_the_running_example():
    rows = trace_config(GPTConfig.from_preset("gpt2-512"), batch_size=2)
    assert rows[0].shape == (2, 512)
    assert rows[1].shape == (2, 512, 768)
    assert rows[2].shape == (512, 768)
    assert [r.stage for r in rows[4:16]] == [f"block {i}" for i in range(12)]
    assert all(r.shape == (2, 512, 768) for r in rows[3:17])
    assert rows[-1].stage == "logits" and rows[-1].shape == (2, 512, 50257)
    assert len(rows) == 1 + 3 + 12 + 2
    assert "[2, 512, 50257]" in format_trace(rows)


def test_trace_runs_a_real_forward(tiny_model):
    rows = trace(tiny_model, torch.zeros(1, 5, dtype=torch.long))
    assert rows[-1].shape == (1, 5, 512)
    assert not tiny_model.lm_head._forward_hooks  # hooks removed


def test_generate_greedy_and_crop(tiny_model):
    idx = torch.randint(0, 512, (2, 30))
    out = tiny_model.generate(idx, 10, temperature=0)
    assert out.shape == (2, 40) and torch.equal(out[:, :30], idx)  # grew past block_size 32
    again = tiny_model.generate(idx, 10, temperature=0)
    assert torch.equal(out, again)
    logits, _ = tiny_model(out[:, 8:39])
    assert torch.equal(logits[:, -1].argmax(-1), out[:, 39])  # last token: greedy on the last 32 - 1


def test_sampling_distributions():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.testing.assert_close(next_token_probs(logits, 1.0), torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert next_token_probs(logits, 0).tolist() == [[1.0, 0.0, 0.0, 0.0]]
    torch.testing.assert_close(next_token_probs(logits, top_k=2), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    torch.testing.assert_close(next_token_probs(logits, top_p=0.7), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    torch.testing.assert_close(next_token_probs(logits, top_p=0.81), torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95)
    hot = next_token_probs(logits, temperature=2.0)
    assert hot[0, 3] > 0.05 and hot[0, 0] < 0.5  # flatter
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        next_token_probs(logits, -1.0)


def test_sequence_longer_than_block_size(tiny_model):
    with pytest.raises(ValueError, match="sequence length 33 is longer than block_size 32"):
        tiny_model(torch.zeros(1, 33, dtype=torch.long))


@pytest.mark.parametrize("bad", [512, 10_000, -1])
def test_token_ids_out_of_range(tiny_model, bad):
    idx = torch.zeros(1, 4, dtype=torch.long)
    idx[0, 2] = bad
    with pytest.raises(ValueError, match=rf"token id {bad} in idx is outside \[0, 512\)"):
        tiny_model(idx)


def test_token_ids_not_integers(tiny_model):
    with pytest.raises(TypeError, match="integer token ids.*torch.float32"):
        tiny_model(torch.zeros(1, 4))
    with pytest.raises(TypeError, match="must be a torch.Tensor of token ids, got list"):
        tiny_model([[1, 2, 3]])


def test_empty_and_wrongly_shaped_input(tiny_model):
    with pytest.raises(ValueError, match=r"idx is empty \(shape \(1, 0\)\)"):
        tiny_model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(B, T\), got shape \(5,\); add a batch dimension"):
        tiny_model(torch.zeros(5, dtype=torch.long))


def test_bad_targets(tiny_model):
    idx = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"targets must have the shape of idx \(1, 4\), got \(1, 3\)"):
        tiny_model(idx, idx[:, :3])
    with pytest.raises(ValueError, match=r"target id 600 is outside \[0, 512\)"):
        tiny_model(idx, torch.full((1, 4), 600))


def test_kv_cache_gives_the_same_logits_as_the_full_pass(tiny_model):
    from gptlib.attention import KVCache

    idx = torch.randint(0, 512, (2, 20))
    full, _ = tiny_model(idx)
    for fast in (True, False):
        for block in tiny_model.transformer.h:
            block.attn.fast = fast
        cache = KVCache(2)
        first, _ = tiny_model(idx[:, :12], kv_cache=cache)  # prefill 12 positions
        pieces = [first]
        for t in range(12, 20, 4):
            step, _ = tiny_model(idx[:, t : t + 4], kv_cache=cache)  # 4 new positions at a time
            pieces.append(step)
        assert cache.length == 20
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    for block in tiny_model.transformer.h:
        block.attn.fast = True


def test_kv_cache_refuses_to_grow_past_block_size(tiny_model):
    from gptlib.attention import KVCache

    cache = KVCache(2)
    tiny_model(torch.zeros(1, 30, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match=r"sequence length 30 cached \+ 3 new = 33 is longer than block_size 32"):
        tiny_model(torch.zeros(1, 3, dtype=torch.long), kv_cache=cache)


@pytest.mark.parametrize("prompt_len", [1, 5, 31, 40])
def test_generation_with_and_without_kv_cache_is_identical(tiny_model, prompt_len):
    idx = torch.randint(0, 512, (2, prompt_len))
    greedy_cached = tiny_model.generate(idx, 12, temperature=0, kv_cache=True)
    greedy_plain = tiny_model.generate(idx, 12, temperature=0, kv_cache=False)
    assert torch.equal(greedy_cached, greedy_plain)  # also across the block_size boundary
    sampled = [
        tiny_model.generate(idx, 12, temperature=0.8, top_k=50, kv_cache=c, generator=torch.Generator().manual_seed(3))
        for c in (True, False)
    ]
    assert torch.equal(sampled[0], sampled[1])
