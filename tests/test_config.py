import pytest
import torch

from gptlib import GPT, PRESETS, GPTConfig


@pytest.mark.parametrize(
    "name, total",
    [
        ("gpt2", 124_439_808),
        ("gpt2-512", 124_046_592),
        ("gpt2-medium", 354_823_168),
        ("gpt2-large", 774_030_080),
        ("gpt2-xl", 1_557_611_200),
    ],
)
def test_parameter_counts_match_gpt2(name, total):
    with torch.device("meta"):  # no memory: gpt2-xl allocates nothing
        model = GPT(GPTConfig.from_preset(name))
    assert model.num_parameters() == total
    assert sum(model.parameter_breakdown().values()) == total


def test_breakdown_of_the_running_example():
    with torch.device("meta"):
        parts = GPT(GPTConfig.from_preset("gpt2-512")).parameter_breakdown()
    counts = list(parts.values())
    assert counts[0] == 50257 * 768  # wte
    assert counts[1] == 512 * 768  # wpe
    assert counts[2] == 12 * (768 * 2304 + 2304 + 768 * 768 + 768)  # attention
    assert counts[3] == 12 * (768 * 3072 + 3072 + 3072 * 768 + 768)  # mlp
    assert counts[3] // 12 + counts[2] // 12 + counts[4] // 12 == 7_087_872  # one block


def test_running_example_and_head_size():
    config = GPTConfig.from_preset("gpt2-512")
    assert (config.n_embd, config.n_head, config.n_layer) == (768, 12, 12)
    assert (config.vocab_size, config.block_size) == (50257, 512)
    assert config.head_size == 64
    assert GPTConfig.from_preset("gpt2").block_size == 1024
    assert GPTConfig.from_preset("gpt2-xl").head_size == 64


def test_the_presets_the_readme_and_the_book_name_exist():
    assert set(PRESETS) == {"gpt2", "gpt2-512", "gpt2-medium", "gpt2-large", "gpt2-xl", "shakespeare-char", "tiny"}
    sc = PRESETS["shakespeare-char"]
    assert (sc.n_layer, sc.n_head, sc.n_embd, sc.block_size) == (6, 6, 384, 256)


def test_from_preset_with_changes_is_validated():
    assert GPTConfig.from_preset("tiny", block_size=8).block_size == 8
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        GPTConfig.from_preset("tiny", block_size=0)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'gpt3'; known presets: gpt2, gpt2-512, .*tiny"):
        GPTConfig.from_preset("gpt3")


def test_n_embd_not_divisible_by_n_head():
    with pytest.raises(ValueError, match="n_embd=100 is not divisible by n_head=12"):
        GPTConfig(n_embd=100, n_head=12)


@pytest.mark.parametrize("field", ["vocab_size", "block_size", "n_layer", "n_head", "n_embd"])
@pytest.mark.parametrize("value", [0, -3])
def test_zero_or_negative_sizes(field, value):
    with pytest.raises(ValueError, match=f"GPTConfig.{field} must be a positive int .*got {value}"):
        GPTConfig(**{field: value})


def test_wrong_types_and_dropout():
    with pytest.raises(TypeError, match="GPTConfig.n_embd must be an int, got 768.0"):
        GPTConfig(n_embd=768.0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        GPTConfig(dropout=1.5)
    with pytest.raises(TypeError, match="bias must be True or False"):
        GPTConfig(bias="yes")


# -- the options after GPT-2 (Llama's pieces): off by default, validated, counted -------------------
LLAMA_LIKE = dict(position="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=4, tie_embeddings=False, bias=False)


def test_the_options_default_to_gpt2_and_do_not_show_in_its_repr():
    config = GPTConfig.from_preset("gpt2-512")
    assert (config.position, config.norm, config.mlp, config.n_kv_head, config.tie_embeddings) == (
        "learned",
        "layernorm",
        "gelu",
        None,
        True,
    )
    assert (config.kv_heads, config.mlp_width, config.norm_eps, config.rope_theta) == (12, 3072, 1e-5, 10000.0)
    assert config.non_gpt2_options() == {}
    assert repr(config) == (
        "GPTConfig(vocab_size=50257, block_size=512, n_layer=12, n_head=12, n_embd=768, dropout=0.0, bias=True)"
    )
    llama_like = config.replace(**LLAMA_LIKE)
    assert repr(llama_like).endswith(
        "bias=False, position='rope', norm='rmsnorm', mlp='swiglu', n_kv_head=4, tie_embeddings=False)"
    )
    assert eval(repr(llama_like)) == llama_like


def test_swiglu_width_follows_metas_llama_rule():
    from gptlib.config import swiglu_hidden

    assert swiglu_hidden(4096) == 11008  # Llama 7B's intermediate_size
    assert swiglu_hidden(768) == 2048 and swiglu_hidden(64) == 256
    assert GPTConfig(mlp="swiglu").mlp_width == 2048
    assert GPTConfig(mlp="swiglu", mlp_hidden=100).mlp_width == 100
    assert GPTConfig(mlp_hidden=100).mlp_width == 100  # GELU MLPs can be narrowed too


@pytest.mark.parametrize(
    "changes, error, message",
    [
        (dict(position="alibi"), ValueError, r"GPTConfig.position must be one of 'learned', 'rope', got 'alibi'"),
        (dict(norm="batchnorm"), ValueError, r"GPTConfig.norm must be one of 'layernorm', 'rmsnorm', got 'batchnorm'"),
        (dict(mlp="relu"), ValueError, r"GPTConfig.mlp must be one of 'gelu', 'swiglu', got 'relu'"),
        (dict(rope_theta=0), ValueError, r"GPTConfig.rope_theta must be a number > 0, got 0"),
        (dict(norm_eps=-1e-6), ValueError, r"GPTConfig.norm_eps must be a number > 0, got -1e-06"),
        (dict(mlp_hidden=0), ValueError, r"GPTConfig.mlp_hidden must be None or an int >= 1, got 0"),
        (dict(n_kv_head=2.0), ValueError, r"GPTConfig.n_kv_head must be None or an int >= 1, got 2.0"),
        (dict(n_kv_head=5), ValueError, r"n_head=12 is not divisible by n_kv_head=5: .* among 1, 2, 3, 4, 6, 12"),
        (dict(n_kv_head=24), ValueError, r"n_head=12 is not divisible by n_kv_head=24"),
        (dict(tie_embeddings="no"), TypeError, r"GPTConfig.tie_embeddings must be True or False, got 'no'"),
        (
            dict(position="rope", n_embd=60, n_head=20),
            ValueError,
            r"position='rope' turns .* in pairs, so head_size must be even; n_embd=60 // n_head=20 = 3 is odd",
        ),
    ],
)
def test_bad_options_are_named_with_their_choices(changes, error, message):
    with pytest.raises(error, match=message):
        GPTConfig(**changes)


def test_parameter_counts_with_every_option():
    C, V, L = 768, 50257, 12
    with torch.device("meta"):
        model = GPT(GPTConfig.from_preset("gpt2-512", **LLAMA_LIKE))
    parts = model.parameter_breakdown()
    assert list(parts) == [
        "wte (token embeddings)",
        "attention (c_attn, c_proj)",
        "mlp (c_gate, c_fc, c_proj)",
        "RMSNorms in blocks (ln_1, ln_2)",
        "ln_f (final RMSNorm)",
        "lm_head (output embeddings, not tied to wte)",
    ]
    kv = 4 * 64  # 4 key/value heads of 64
    assert list(parts.values()) == [V * C, L * (C * (C + 2 * kv) + C * C), L * 3 * C * 2048, L * 2 * C, C, V * C]
    assert (
        model.num_parameters() == sum(parts.values()) == 2 * V * C + L * (C * 1280 + C * C + 3 * C * 2048 + 2 * C) + C
    )


@pytest.mark.parametrize(
    "option, changed",
    [
        (dict(position="rope"), {"wpe (position embeddings)": None}),
        (
            dict(n_kv_head=1),
            {"attention (c_attn, c_proj)": 12 * (768 * (768 + 2 * 64) + 768 * 768 + 768 + 2 * 64 + 768)},
        ),
        (
            dict(mlp="swiglu"),
            {"mlp (c_fc, c_proj)": None, "mlp (c_gate, c_fc, c_proj)": 12 * (3 * 768 * 2048 + 2 * 2048 + 768)},
        ),
        (
            dict(norm="rmsnorm"),
            {
                "layernorms in blocks (ln_1, ln_2)": None,
                "RMSNorms in blocks (ln_1, ln_2)": 12 * 2 * 768,
                "ln_f (final layernorm)": None,
                "ln_f (final RMSNorm)": 768,
            },
        ),
        (
            dict(tie_embeddings=False),
            {
                "wte (token embeddings, shared with lm_head)": None,
                "wte (token embeddings)": 50257 * 768,
                "lm_head (output embeddings, not tied to wte)": 50257 * 768,
            },
        ),
    ],
)
def test_each_option_changes_only_its_rows_of_the_breakdown(option, changed):
    with torch.device("meta"):
        gpt2 = GPT(GPTConfig.from_preset("gpt2-512")).parameter_breakdown()
        model = GPT(GPTConfig.from_preset("gpt2-512", **option))
    expected = {**gpt2, **changed}
    assert model.parameter_breakdown() == {k: v for k, v in expected.items() if v is not None}
    assert model.num_parameters() == sum(model.parameter_breakdown().values())
