"""Export a training checkpoint as gptlib/data/shakespeare/model.safetensors.

The bundled model was made with (about an hour on one CPU thread; see SOURCE.md):

    OMP_NUM_THREADS=1 python -m gptlib train --data gptlib/data/shakespeare/shakespeare.txt \\
        --tokenizer char --recipe bundled-char --out /tmp/bundle
    python scripts/export_bundled_model.py /tmp/bundle/ckpt.pt

Only the weights are kept (not the optimiser), and the tied lm_head is stored once. The
held-out loss stored with it is measured here over the whole validation split (the last
10% of the corpus), in consecutive windows of block_size characters, not on the
trainer's sample of random windows.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from gptlib.checkpoint import load_checkpoint, model_from_checkpoint, tokenizer_from_spec
from gptlib.dataset import read_text, shakespeare_path, train_val_split

OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "shakespeare" / "model.safetensors"


@torch.no_grad()
def split_loss(model, ids: torch.Tensor, batch_size: int = 64) -> float:
    """Mean loss over every character of ids (after the first), in consecutive windows."""
    T = model.config.block_size
    n = (len(ids) - 1) // T
    x = ids[: n * T].view(n, T)  # (n, T)
    y = ids[1 : n * T + 1].view(n, T)
    model.eval()
    total = 0.0
    for i in range(0, n, batch_size):
        _, loss = model(x[i : i + batch_size], y[i : i + batch_size])
        total += loss.item() * len(x[i : i + batch_size])
    return total / n


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    ckpt = load_checkpoint(sys.argv[1])
    model = model_from_checkpoint(ckpt)
    tok = tokenizer_from_spec(ckpt["tokenizer"])
    ids = torch.tensor(tok.encode(read_text(shakespeare_path())), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids)
    last = ckpt["history"][-1]
    trained = {
        "recipe": "bundled-char",
        "steps": ckpt["step"],
        "tokens_seen": ckpt["step"] * ckpt["train_config"]["batch_size"] * model.config.block_size,
        "train_seconds": round(ckpt["elapsed_s"]),
        "parameters": model.num_parameters(),
        "val_loss": round(split_loss(model, val_ids), 4),  # the whole held-out split
        "trainer_train_loss": last["train_loss"],  # the trainer's last evaluation (random windows)
        "trainer_val_loss": last["val_loss"],
    }
    tensors = {k: v.contiguous() for k, v in ckpt["model"].items() if k != "lm_head.weight"}
    meta = {
        "config": json.dumps(ckpt["model_config"]),
        "chars": json.dumps(ckpt["tokenizer"]["chars"]),
        "trained": json.dumps(trained),
    }
    save_file(tensors, str(OUT), metadata=meta)
    print(f"{OUT}: {OUT.stat().st_size:,} bytes; {trained}")
