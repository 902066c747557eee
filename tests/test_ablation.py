"""gptlib.ablation: each change removes or rewires exactly the piece it names."""

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.ablation import CHANGES, ablated_gpt
from gptlib.layers import LayerNorm

CONFIG = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=False)


def build(change, config=CONFIG, seed=0):
    torch.manual_seed(seed)
    return ablated_gpt(config, change).eval()


def ids(seed=1, T=10):
    return torch.randint(CONFIG.vocab_size, (2, T), generator=torch.Generator().manual_seed(seed))


def test_unknown_change_is_named():
    with pytest.raises(ValueError, match="'no heads'.*'no attention'"):
        ablated_gpt(CONFIG, "no heads")


def test_none_is_the_plain_gpt():
    torch.manual_seed(0)
    plain = GPT(CONFIG).eval()
    model = build("none")
    torch.testing.assert_close(model(ids())[0], plain(ids())[0], rtol=0, atol=0)


@pytest.mark.parametrize("change", CHANGES)
def test_shared_weights_start_equal_and_one_step_trains(change):
    plain, model = build("none"), build(change)
    theirs = dict(plain.named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, theirs[name]), name
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = ids()
    _, loss = model(x, x)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


def test_parameters_removed_with_their_piece():
    full = build("none").num_parameters()
    C = CONFIG.n_embd
    mlp = CONFIG.n_layer * 2 * 4 * C * C
    attn = CONFIG.n_layer * 4 * C * C
    assert build("no MLP").num_parameters() == full - mlp
    assert build("no attention").num_parameters() == full - attn
    assert build("no position embedding").num_parameters() == full - CONFIG.block_size * C
    assert build("no LayerNorm").num_parameters() == full - (2 * CONFIG.n_layer + 1) * C
    for change in ("no residual", "post-LN", "GELU -> identity"):
        assert build(change).num_parameters() == full
    assert not any(isinstance(m, LayerNorm) for m in build("no LayerNorm").modules())


def test_without_attention_no_position_reads_another():
    model = build("no attention")
    x = ids()
    y = x.clone()
    y[:, :5] = (y[:, :5] + 1) % CONFIG.vocab_size  # change the first five tokens
    torch.testing.assert_close(model(x)[0][:, 5:], model(y)[0][:, 5:], rtol=0, atol=0)
    full = build("none")
    assert not torch.allclose(full(x)[0][:, 5:], full(y)[0][:, 5:])


def test_without_positions_one_layer_cannot_tell_order():
    config = CONFIG.replace(n_layer=1)
    x = ids(T=8)
    shuffled = torch.cat([x[:, :7].flip(1), x[:, 7:]], dim=1)  # the same tokens before the last, reversed
    model = build("no position embedding", config)
    torch.testing.assert_close(model(x)[0][:, -1], model(shuffled)[0][:, -1], rtol=1e-5, atol=1e-6)
    with_positions = build("none", config)
    assert not torch.allclose(with_positions(x)[0][:, -1], with_positions(shuffled)[0][:, -1], atol=1e-4)


def test_linear_mlp_is_linear():
    mlp = build("GELU -> identity").transformer.h[0].mlp
    a, b = torch.randn(3, CONFIG.n_embd), torch.randn(3, CONFIG.n_embd)
    torch.testing.assert_close(mlp(a + b), mlp(a) + mlp(b), rtol=1e-5, atol=1e-6)
    gelu_mlp = build("none").transformer.h[0].mlp
    assert not torch.allclose(gelu_mlp(a + b), gelu_mlp(a) + gelu_mlp(b), atol=1e-4)


def test_block_wirings():
    x = torch.randn(2, 6, CONFIG.n_embd) * 3 + 1
    plain = build("none").transformer.h[0]
    no_res = build("no residual").transformer.h[0]
    post = build("post-LN").transformer.h[0]
    a = plain.attn(plain.ln_1(x))
    torch.testing.assert_close(no_res(x), plain.mlp(plain.ln_2(a)))
    torch.testing.assert_close(plain(x), x + a + plain.mlp(plain.ln_2(x + a)))
    y = post(x)  # post-LN: the stream itself is normalised (ln_2's weight is 1 at init)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2, 6), atol=1e-3, rtol=0)


def test_a_model_without_attention_refuses_the_kv_cache():
    model = build("no attention")
    with pytest.raises(ValueError, match="kv_cache=False"):
        model.generate(ids()[:, :3], 2)
    assert model.generate(ids()[:, :3], 2, kv_cache=False).shape == (2, 5)


def test_the_shipped_log_covers_every_change_with_three_seeds():
    from gptlib.ablation import load_log

    runs = load_log()
    seeds = {change: sorted(r["seed"] for r in runs if r["change"] == change) for change in CHANGES}
    assert all(s[:3] == [0, 1, 2] for s in seeds.values())
    assert all(r["val_loss"] is None or 1.0 < r["val_loss"] < 4.5 for r in runs)
    assert len({(r["change"], r["seed"]) for r in runs}) == len(runs)  # no run twice


def test_modern_changes_set_the_options_they_name():
    from gptlib.ablation import MODERN_CHANGES, modern_config, modern_options

    base = GPTConfig(vocab_size=83, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False)
    expected = {
        "gpt2": {},
        "rope": {"position": "rope"},
        "rmsnorm": {"norm": "rmsnorm"},
        "swiglu": {"mlp": "swiglu", "mlp_hidden": 344},
        "gqa": {"n_kv_head": 2},
    }
    expected["all"] = {k: v for change in MODERN_CHANGES[1:-1] for k, v in expected[change].items()}
    assert {change: modern_options(base, change) for change in MODERN_CHANGES} == expected
    for change in MODERN_CHANGES:
        assert modern_config(base, change).non_gpt2_options() == expected[change]
    # SwiGLU's three matrices hold about GPT-2's two (within 1%); Llama's rounding to 256 would not
    C = base.n_embd
    assert abs(3 * C * 344 / (2 * C * 4 * C) - 1) < 0.01 and 3 * C * 512 / (2 * C * 4 * C) == 1.5
    assert modern_config(base, "all").tie_embeddings  # tying is not one of the four
    with pytest.raises(ValueError, match="unknown change 'alibi'; choose one of 'gpt2', 'rope'"):
        modern_options(base, "alibi")
    with pytest.raises(ValueError, match="already sets"):
        modern_options(base.replace(norm="rmsnorm"), "rope")
    with pytest.raises(ValueError, match="n_head=3 is odd"):
        modern_options(base.replace(n_head=3, n_embd=96), "gqa")


def test_load_log_names_an_unknown_experiment():
    from gptlib.ablation import load_log

    with pytest.raises(ValueError, match="unknown experiment 'pieces'; choose one of 'ablation', 'modern'"):
        load_log("pieces")
    assert load_log() == load_log("ablation")  # the old call reads chapter 8's log


def test_the_shipped_modern_log_covers_every_config_and_seed():
    from gptlib.ablation import MODERN_CHANGES, load_log, modern_config

    runs = load_log("modern")
    assert sorted((r["config"], r["seed"]) for r in runs) == sorted(
        (change, seed) for change in MODERN_CHANGES for seed in (0, 1, 2)
    )  # each once
    for r in runs:
        config = modern_config(GPTConfig(vocab_size=83, **r["shape"]), r["config"])  # the corpus's 83 characters
        assert r["options"] == config.non_gpt2_options(), r["config"]
        assert r["parameters"] == GPT(config).num_parameters(), r["config"]
        assert r["history"][-1]["step"] == r["steps"]
        # each run used its CPU budget (the last step's cost is predicted, so it can pass by a little)
        assert 0.98 * r["max_seconds"] <= r["cpu_seconds"] <= 1.01 * r["max_seconds"]
        assert r["history"][-1]["elapsed_s"] == pytest.approx(r["cpu_seconds"], abs=0.01)
        assert 1.0 < r["val_loss"] < 4.5
    assert len({r["max_seconds"] for r in runs}) == 1 and {r["threads"] for r in runs} == {1}
