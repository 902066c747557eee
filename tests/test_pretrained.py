"""The bundled models: what the book promises about them, measured."""

import math
import os

import pytest
import torch

from gptlib.dataset import read_text, shakespeare_path, train_val_split
from gptlib.interpret import (
    attention_patterns,
    induction_scores,
    per_position_loss,
    previous_token_scores,
    repeated_random_tokens,
    run_with_cache,
)
from gptlib.pretrained import bundled_model_path, data_path, load_induction_model, load_shakespeare_char


@pytest.fixture(scope="module")
def bundled():
    model, tok, info = load_shakespeare_char()
    ids = torch.tensor(tok.encode(read_text(shakespeare_path())), dtype=torch.long)
    _, val = train_val_split(ids)
    return model, tok, info, val


def val_windows(val, block_size, n):
    """n windows of block_size + 1 ids, evenly spaced over the held-out split: x and y."""
    starts = torch.linspace(0, len(val) - block_size - 1, n).long()
    w = torch.stack([val[s : s + block_size + 1] for s in starts.tolist()])  # (n, block_size + 1)
    return w[:, :-1], w[:, 1:]


def test_small_file_and_the_promised_shape(bundled):
    model, tok, info, _ = bundled
    assert os.path.getsize(bundled_model_path()) <= 10 * 1024 * 1024
    assert model.config.block_size >= 128
    assert tok.vocab_size == model.config.vocab_size
    assert model.lm_head.weight is model.transformer.wte.weight  # tied, stored once
    assert not model.training


def test_held_out_loss_is_at_most_1_55(bundled):
    model, _, info, val = bundled
    x, y = val_windows(val, model.config.block_size, 96)
    with torch.no_grad():
        _, loss = model(x, y)
    assert loss.item() <= 1.55 < math.log(model.config.vocab_size)
    assert info["val_loss"] <= 1.55  # the whole held-out split, measured when it was exported


def test_it_has_a_previous_token_head(bundled):
    model, _, _, val = bundled
    x, _ = val_windows(val, model.config.block_size, 8)
    scores = torch.stack([previous_token_scores(attention_patterns(model, row)) for row in x]).mean(0)  # [L, H]
    assert scores.max().item() >= 0.8


def test_greedy_text_is_english_like(bundled):
    model, tok, _, _ = bundled
    prompt = torch.tensor([tok.encode("Romeo.\n")])
    text = tok.decode(model.generate(prompt, 100, temperature=0)[0].tolist())
    assert text.startswith("Romeo.\n") and " the " in text


@pytest.fixture(scope="module")
def induction():
    return load_induction_model()


def test_the_induction_model_is_small_and_uses_the_bundled_characters(induction, bundled):
    model, log, data = induction
    _, tok, _, _ = bundled
    assert os.path.getsize(data_path("induction", "model.safetensors")) <= 10 * 1024 * 1024
    assert model.config.n_layer == 2 and model.config.vocab_size == tok.vocab_size
    assert 2 * data["probe_period"] <= model.config.block_size
    assert [row["step"] for row in log] == sorted(row["step"] for row in log)


def test_the_induction_model_copies_through_a_previous_token_head_and_an_induction_head(induction):
    """On fresh repeated random strings (not the ones of the training log or the chapter)."""
    model, _, data = induction
    P, g = data["probe_period"], torch.Generator().manual_seed(2024)
    first, second, prev, ind = [], [], [], []
    for _ in range(16):
        seq = repeated_random_tokens(model.config.vocab_size, P, 2, generator=g)  # [2P]
        rec = run_with_cache(model, seq)
        loss = per_position_loss(rec.logits[:-1], seq[1:])  # [2P - 1]: predicting seq[t + 1]
        first.append(loss[: P - 1].mean())
        second.append(loss[P:].mean())
        prev.append(previous_token_scores(rec.attention))
        ind.append(induction_scores(rec.attention, P))
    first, second = torch.stack(first).mean().item(), torch.stack(second).mean().item()
    prev, ind = torch.stack(prev).mean(0), torch.stack(ind).mean(0)  # [L, H]
    assert second <= 0.5 * first
    assert prev[0].max().item() >= 0.8  # layer 0: a previous-token head
    assert ind[1].max().item() >= 0.4  # layer 1: an induction head
    assert ind[0].max().item() < 0.1  # layer 0 cannot do it alone


def test_the_training_log_shows_copying_arrive(induction):
    _, log, _ = induction
    assert log[0]["second_copy_loss"] > 0.9 * log[0]["first_copy_loss"]  # untrained: no copying
    assert log[-1]["second_copy_loss"] <= 0.5 * log[-1]["first_copy_loss"]
    assert log[-1]["induction_score_l1"] >= 0.4


def test_the_safetensors_loader_reads_the_options_and_an_untied_lm_head(tmp_path):
    """A file written as scripts/train_induction_model.py writes one (lm_head stored only when
    untied), for a model with every option; and the bundled files, whose configs predate them."""
    import dataclasses
    import json

    from safetensors.torch import save_file

    from gptlib import GPT, GPTConfig
    from gptlib.pretrained import load_safetensors_model

    for tie in (True, False):
        config = GPTConfig.from_preset(
            "tiny", position="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=1, tie_embeddings=tie, bias=False
        )
        torch.manual_seed(0)
        model = GPT(config).eval()
        state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight" or not tie}
        save_file(state, str(tmp_path / "m.safetensors"), metadata={"config": json.dumps(dataclasses.asdict(config))})
        loaded, _ = load_safetensors_model(str(tmp_path / "m.safetensors"))
        assert loaded.config == config and (loaded.lm_head.weight is loaded.transformer.wte.weight) == tie
        idx = torch.randint(0, 512, (2, 16))
        assert torch.equal(loaded(idx)[0], model(idx)[0])
    for load in (load_shakespeare_char, load_induction_model):
        assert load()[0].config.non_gpt2_options() == {}
