import pytest
import torch
import torch.nn.functional as F
from torch import nn

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
    def one_hot_lookup(idx, wte, wpe):
        one_hot = F.one_hot(idx, num_classes=wte.shape[0]).to(wte.dtype)  # (B, T, vocab)
        return one_hot @ wte  # the token rows, and no positions

    with pytest.raises(ExerciseError, match="token embeddings only"):
        ch02.check_embed(one_hot_lookup)


def test_token_ids_as_positions_get_their_hint():
    def two_embedding_modules(idx, wte, wpe):
        tok_emb = nn.Embedding.from_pretrained(wte)
        pos_emb = nn.Embedding.from_pretrained(wpe)
        return tok_emb(idx) + pos_emb(idx)  # the ids again, not the positions

    with pytest.raises(ExerciseError, match="looked up the positions with the token ids"):
        ch02.check_embed(two_embedding_modules)


def test_positions_from_one_get_their_hint():
    def counting_from_one(idx, wte, wpe):
        B, T = idx.shape
        pos = torch.arange(1, T + 1).expand(B, T)  # positions 1..T
        return F.embedding(idx, wte) + F.embedding(pos, wpe)

    with pytest.raises(ExerciseError, match="positions start at 0"):
        ch02.check_embed(counting_from_one)


def test_concatenating_gets_its_hint():
    def concat(idx, wte, wpe):
        T = idx.shape[1]
        rows = [torch.cat([wte[ids], wpe[:T]], dim=1) for ids in idx]  # one sequence at a time: (T, 2C)
        return torch.stack(rows)

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
    def three_tables(config):
        wte = config.vocab_size * config.n_embd
        wpe = config.block_size * config.n_embd
        lm_head = config.n_embd * config.vocab_size  # the same matrix as wte, counted again
        return wte + wpe + lm_head

    with pytest.raises(ExerciseError, match="weight tying"):
        ch02.check_embedding_params(three_tables)


def test_forgetting_wpe_gets_its_hint():
    def token_table_only(config):
        with torch.device("meta"):
            wte = nn.Embedding(config.vocab_size, config.n_embd)
        return wte.weight.numel()

    with pytest.raises(ExerciseError, match="that is wte alone"):
        ch02.check_embedding_params(token_table_only)


def test_fixed_1024_positions_get_their_hint():
    def gpt2_context(config):
        with torch.device("meta"):
            tables = [nn.Embedding(config.vocab_size, config.n_embd), nn.Embedding(1024, config.n_embd)]
        return sum(t.weight.numel() for t in tables)

    with pytest.raises(ExerciseError, match="config.block_size rows"):
        ch02.check_embedding_params(gpt2_context)


def test_a_wrong_shape_is_reported():
    with pytest.raises(ExerciseError, match=r"expected shape \[2, 5, 6\], got \[2, 5\]"):
        ch02.check_embed(lambda idx, wte, wpe: idx.float())


def test_a_crashing_answer_is_reported():
    def whole_position_table(idx, wte, wpe):
        return wte[idx] + wpe  # (B, T, C) + (block_size, C): T is not block_size

    with pytest.raises(ExerciseError, match=r"embed: your function raised RuntimeError: .* \(on input 1\)"):
        ch02.check_embed(whole_position_table)


def _stub(*args):
    raise NotImplementedError("fill me in")


def test_untouched_stubs_are_not_attempted_yet():
    assert ch02.check_embed(_stub) == "not attempted yet: embed (fill me in)"
    assert ch02.check_embedding_params(_stub) == "not attempted yet: embedding_params (fill me in)"
