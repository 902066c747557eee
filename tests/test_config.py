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
