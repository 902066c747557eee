import math

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.generate import next_token_probs
from gptlib.trace import format_trace, trace, trace_config

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_module_layout_is_that_of_nanogpt_and_hugging_face(tiny_model):
    """The module names of nanoGPT and of Hugging Face's GPT2LMHeadModel (transformer.h.0.attn...),
    so that their state dicts load by name."""
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
    assert not any(m._forward_hooks for m in tiny_model.modules())  # every hook removed


def test_generate_crops_to_the_last_block_size_tokens():
    """With the trained bundled model, every step must see exactly the last block_size tokens."""
    from gptlib.dataset import read_text, shakespeare_path
    from gptlib.pretrained import load_shakespeare_char

    model, tok, _ = load_shakespeare_char()
    bs = model.config.block_size
    idx = torch.tensor([tok.encode(read_text(shakespeare_path())[5000 : 5000 + bs + 7])])  # longer than the window
    seen = []
    hook = model.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    try:
        out = model.generate(idx, 6, temperature=0)
    finally:
        hook.remove()
    T0 = idx.size(1)
    assert out.shape == (1, T0 + 6) and torch.equal(out[:, :T0], idx)
    assert len(seen) == 6
    for step, window in enumerate(seen):
        end = T0 + step  # the tokens known before this step
        assert torch.equal(window, out[:, end - bs : end]), f"step {step} saw the wrong window"
        logits, _ = model(window)
        assert torch.equal(logits[:, -1].argmax(-1), out[:, end])  # greedy on that window


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


def test_top_k_at_or_above_the_vocabulary_keeps_every_token():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    for k in (4, 5, 1000):
        torch.testing.assert_close(next_token_probs(logits, top_k=k), torch.tensor([[0.5, 0.3, 0.15, 0.05]]))


def test_ties_at_the_top_k_cut_are_all_kept():
    logits = torch.tensor([[3.0, 1.0, 1.0, 0.0]])  # the 2nd and 3rd most likely are tied
    probs = next_token_probs(logits, top_k=2)
    assert (probs[0, :3] > 0).all() and probs[0, 3] == 0  # both tied tokens survive the cut
    expected = torch.softmax(torch.tensor([3.0, 1.0, 1.0]), dim=0)
    torch.testing.assert_close(probs[0, :3], expected)


def test_top_k_then_top_p():
    """top_p is applied to the distribution top_k leaves, renormalised, not to the original one."""
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    # top_p=0.75 alone keeps three tokens: 0.4 + 0.3 = 0.7 falls short of 0.75, 0.4 + 0.3 + 0.2 reaches it
    torch.testing.assert_close(next_token_probs(logits, top_p=0.75), torch.tensor([[4 / 9, 3 / 9, 2 / 9, 0.0]]))
    # top_k=3 first leaves 4/9, 3/9, 2/9; there 4/9 + 3/9 = 7/9 reaches 0.75, so top_p keeps two
    probs = next_token_probs(logits, top_k=3, top_p=0.75)
    torch.testing.assert_close(probs, torch.tensor([[4 / 7, 3 / 7, 0.0, 0.0]]))


@pytest.mark.parametrize(
    "top_p, kept",
    [(0.5, 1), (0.8, 2), (0.95, 3), (0.951, 4), (1.0, 4)],
)
def test_top_p_exactly_on_a_cumulative_boundary(top_p, kept):
    """0.5, 0.8 and 0.95 are exactly the mass of the 1, 2 and 3 most likely tokens: the set
    that reaches p is that set, with nothing added for a rounding error in the sum."""
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64)).float()
    probs = next_token_probs(logits, top_p=top_p)
    assert int((probs > 0).sum()) == kept


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(top_k=0), "top_k must be an int >= 1, got 0"),
        (dict(top_k=2.5), "top_k must be an int >= 1, got 2.5"),
        (dict(top_p=0.0), r"top_p must be in \(0, 1\], got 0.0"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\], got 1.5"),
        (dict(temperature=-0.1), "temperature must be >= 0, got -0.1"),
    ],
)
def test_bad_sampling_settings_are_named(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.generate(torch.zeros(1, 2, dtype=torch.long), 1, **kwargs)


def test_bad_max_new_tokens(tiny_model):
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0, got -1"):
        tiny_model.generate(torch.zeros(1, 2, dtype=torch.long), -1)
    assert tiny_model.generate(torch.zeros(1, 2, dtype=torch.long), 0).shape == (1, 2)


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


def test_static_kv_cache_gives_the_same_logits_as_the_growing_one(tiny_model):
    from gptlib.attention import KVCache, StaticKVCache

    idx = torch.randint(0, 512, (2, 20))
    static, growing = StaticKVCache.for_model(tiny_model), KVCache(2)
    for cache in (static, growing):
        tiny_model(idx[:, :12], kv_cache=cache)
    for t in range(12, 20):
        a, _ = tiny_model(idx[:, t : t + 1], kv_cache=static)
        b, _ = tiny_model(idx[:, t : t + 1], kv_cache=growing)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    assert static.length == growing.length == 20
    assert static.layers[0].k_buffer.shape == (2, 4, 32, 16)  # allocated once, for block_size positions
    torch.testing.assert_close(static.layers[1].v, growing.layers[1].v)
    with pytest.raises(ValueError, match=r"sequence length 20 cached \+ 13 new = 33 is longer than block_size 32"):
        tiny_model(torch.zeros(2, 13, dtype=torch.long), kv_cache=static)


def test_last_only_logits_are_the_last_row(tiny_model):
    idx = torch.randint(0, 512, (3, 17))
    full, _ = tiny_model(idx)
    last, _ = tiny_model(idx, last_only=True)
    assert last.shape == (3, 1, 512)
    torch.testing.assert_close(last[:, 0], full[:, -1], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="last_only=True computes the last position's logits only"):
        tiny_model(idx, idx, last_only=True)


def test_generation_across_the_window_with_the_bundled_model():
    """Greedy and seeded sampling: the same tokens with and without the cache, past block_size."""
    from gptlib.dataset import read_text, shakespeare_path
    from gptlib.pretrained import load_shakespeare_char

    model, tok, _ = load_shakespeare_char()
    bs = model.config.block_size
    idx = torch.tensor([tok.encode(read_text(shakespeare_path())[5000 : 5000 + bs - 6])])  # 6 short of the window
    n = 16  # ends 10 tokens past the window: the cache fills it, then the window slides
    for kwargs in (dict(temperature=0), dict(temperature=0.9, top_k=20), dict(temperature=1.0, top_p=0.9)):
        a = model.generate(idx, n, kv_cache=True, generator=torch.Generator().manual_seed(7), **kwargs)
        b = model.generate(idx, n, kv_cache=False, generator=torch.Generator().manual_seed(7), **kwargs)
        assert torch.equal(a, b), kwargs


def test_generated_ids_are_ordinary_tensors_that_training_can_use(tiny_model):
    """Ids that generate made can be trained on: generate runs without autograd, and
    returns an ordinary tensor (not an inference-mode one, which backward would refuse)."""
    out = tiny_model.generate(torch.zeros(1, 3, dtype=torch.long), 6, temperature=0)
    assert not out.is_inference() and not out.requires_grad
    _, loss = tiny_model(out[:, :-1], out[:, 1:])
    loss.backward()
    assert tiny_model.transformer.wte.weight.grad is not None


# -- the options after GPT-2 (Llama's pieces) --------------------------------------------------------
LLAMA_LIKE = dict(position="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=2, tie_embeddings=False, bias=False)
ONE_AT_A_TIME = [
    dict(position="rope"),
    dict(norm="rmsnorm", norm_eps=1e-6),
    dict(mlp="swiglu"),
    dict(n_kv_head=2),
    dict(n_kv_head=1),
    dict(tie_embeddings=False),
    LLAMA_LIKE,
]


def test_module_layout_with_llamas_options():
    from gptlib.layers import RMSNorm, SwiGLU

    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", **LLAMA_LIKE))
    t = model.transformer
    assert set(t.keys()) == {"wte", "drop", "h", "ln_f"}  # no wpe: positions turn q and k
    assert isinstance(t.ln_f, RMSNorm) and isinstance(t.h[0].ln_1, RMSNorm) and isinstance(t.h[1].mlp, SwiGLU)
    assert t.h[0].attn.c_attn.weight.shape == ((4 + 2 * 2) * 16, 64)  # q: 4 heads, k and v: 2 heads each
    assert model.lm_head.weight is not t.wte.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" in names and not [n for n in names if n.endswith(".bias")]
    mlp = t.h[0].mlp
    assert abs(mlp.c_gate.weight.std().item() - 0.02) < 0.002 and abs(model.lm_head.weight.std().item() - 0.02) < 0.002
    assert abs(mlp.c_proj.weight.std().item() - 0.02 / math.sqrt(4)) < 0.002  # scaled as GPT-2's c_proj
    assert torch.all(t.ln_f.weight == 1)


@pytest.mark.parametrize("options", ONE_AT_A_TIME, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_kv_cache_gives_the_full_pass_logits_with_each_option(options):
    from gptlib.attention import KVCache

    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", **options)).eval()
    idx = torch.randint(0, 512, (2, 20))
    full, _ = model(idx)
    for fast in (True, False):
        for block in model.transformer.h:
            block.attn.fast = fast
        cache = KVCache(2)
        pieces = [model(idx[:, :12], kv_cache=cache)[0]]
        pieces += [model(idx[:, t : t + 4], kv_cache=cache)[0] for t in range(12, 20, 4)]
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
        assert cache.layers[1].k.shape == (2, model.config.kv_heads, 20, 16)


@pytest.mark.parametrize("options", ONE_AT_A_TIME, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("prompt_len", [1, 31, 40])
def test_generation_with_and_without_kv_cache_is_identical_with_each_option(options, prompt_len):
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", **options)).eval()
    idx = torch.randint(0, 512, (2, prompt_len))
    cached = model.generate(idx, 12, temperature=0.8, kv_cache=True, generator=torch.Generator().manual_seed(3))
    plain = model.generate(idx, 12, temperature=0.8, kv_cache=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(cached, plain)  # also across the block_size boundary


def test_trace_with_llamas_options():
    rows = trace_config(GPTConfig.from_preset("tiny", **LLAMA_LIKE), batch_size=2, seq_len=8)
    stages = [r.stage for r in rows]
    assert stages == ["token ids", "token embeddings", "block 0", "block 1", "ln_f", "logits"]
    assert rows[2].note == "4 heads x 16 (2 key/value heads), rotary positions, mlp 64->256->64 (SwiGLU)"
    assert rows[-1].note == "lm_head: 64 -> 512 (its own matrix)" and rows[-2].note == "final RMSNorm"
