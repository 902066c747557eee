import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.exercises import ExerciseError, ch02


def test_reference_solutions_are_accepted():
    assert ch02.check_embed(ch02.embed).startswith("correct")
    assert ch02.check_embedding_params(ch02.embedding_params).startswith("correct")


def test_embed_equals_the_models_first_stage(tiny_model):
    idx = torch.randint(0, tiny_model.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    captured = {}
    hook = tiny_model.transformer.drop.register_forward_hook(lambda m, i, out: captured.update(x=out))
    with torch.no_grad():
        tiny_model(idx)
    hook.remove()
    wte, wpe = tiny_model.transformer.wte.weight, tiny_model.transformer.wpe.weight
    torch.testing.assert_close(ch02.embed(idx, wte, wpe), captured["x"])


def test_forgetting_positions_gets_its_hint():
    with pytest.raises(ExerciseError, match="token embeddings only"):
        ch02.check_embed(lambda idx, wte, wpe: wte[idx])


def test_token_ids_as_positions_get_their_hint():
    with pytest.raises(ExerciseError, match="looked up the positions with the token ids"):
        ch02.check_embed(lambda idx, wte, wpe: wte[idx] + wpe[idx])


def test_positions_from_one_get_their_hint():
    with pytest.raises(ExerciseError, match="positions start at 0"):
        ch02.check_embed(lambda idx, wte, wpe: wte[idx] + wpe[torch.arange(1, idx.shape[1] + 1)])


def test_concatenating_gets_its_hint():
    def concat(idx, wte, wpe):
        pos = wpe[: idx.shape[1]].unsqueeze(0).repeat(idx.shape[0], 1, 1)
        return torch.cat([wte[idx], pos], dim=2)

    with pytest.raises(ExerciseError, match="added, not concatenated"):
        ch02.check_embed(concat)


def test_embedding_params_of_the_running_example():
    assert ch02.embedding_params(GPTConfig.from_preset("gpt2-512")) == 38_597_376 + 393_216
    assert ch02.embedding_params(GPTConfig.from_preset("gpt2")) == 38_597_376 + 786_432


def test_embedding_params_agree_with_the_model_breakdown():
    config = GPTConfig.from_preset("gpt2-512")
    with torch.device("meta"):
        model = GPT(config)
    counts = list(model.parameter_breakdown().values())
    assert counts[0] + counts[1] == ch02.embedding_params(config)


def test_counting_the_tied_head_gets_its_hint():
    with pytest.raises(ExerciseError, match="weight tying"):
        ch02.check_embedding_params(lambda c: 2 * c.vocab_size * c.n_embd + c.block_size * c.n_embd)


def test_forgetting_wpe_gets_its_hint():
    with pytest.raises(ExerciseError, match="that is wte alone"):
        ch02.check_embedding_params(lambda c: c.vocab_size * c.n_embd)


def test_fixed_1024_positions_get_their_hint():
    with pytest.raises(ExerciseError, match="config.block_size rows"):
        ch02.check_embedding_params(lambda c: (c.vocab_size + 1024) * c.n_embd)


def test_a_wrong_shape_is_reported():
    with pytest.raises(ExerciseError, match=r"expected shape \[2, 5, 6\], got \[2, 5\]"):
        ch02.check_embed(lambda idx, wte, wpe: idx.float())


def _stub(*args):
    raise NotImplementedError("fill me in")


def test_untouched_stubs_are_not_attempted_yet():
    assert ch02.check_embed(_stub) == "not attempted yet: embed (fill me in)"
    assert ch02.check_embedding_params(_stub) == "not attempted yet: embedding_params (fill me in)"
