import math

import torch

from gptlib.dataset import get_batch, read_text, shakespeare_path, train_val_split
from gptlib.pretrained import load_shakespeare_char


def test_bundled_model_has_learned_shakespeare():
    model, tok, info = load_shakespeare_char()
    assert info["steps"] == 6000 and tok.vocab_size == model.config.vocab_size == 78
    assert model.lm_head.weight is model.transformer.wte.weight
    ids = torch.tensor(tok.encode(read_text(shakespeare_path())), dtype=torch.long)
    _, val = train_val_split(ids)
    x, y = get_batch(val, model.config.block_size, 32, torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, loss = model(x, y)
    assert loss.item() < 1.9 < math.log(78)  # far below guessing (4.36)
    text = tok.decode(model.generate(torch.tensor([tok.encode("ROMEO:\n")]), 100, temperature=0)[0].tolist())
    assert text.startswith("ROMEO:\n") and " the " in text  # greedy output is English-like
