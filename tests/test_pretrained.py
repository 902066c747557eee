"""The bundled Shakespeare model: what the book promises about it, measured."""

import math
import os

import pytest
import torch

from gptlib.dataset import read_text, shakespeare_path, train_val_split
from gptlib.interpret import attention_patterns, previous_token_scores
from gptlib.pretrained import bundled_model_path, load_shakespeare_char


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
