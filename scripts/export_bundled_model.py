"""Export a training checkpoint as gptlib/data/shakespeare/model.safetensors.

The bundled model was made with:

    python -m gptlib train --data gptlib/data/shakespeare/shakespeare.txt --max-iters 6000 --out /tmp/bundle
    python scripts/export_bundled_model.py /tmp/bundle/ckpt.pt

Only the weights are kept (not the optimiser), and the tied lm_head is stored once.
"""

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from gptlib.train import load_checkpoint

OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "shakespeare" / "model.safetensors"

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    ckpt = load_checkpoint(sys.argv[1])
    tensors = {k: v.contiguous() for k, v in ckpt["model"].items() if k != "lm_head.weight"}
    last = ckpt["history"][-1]
    trained = {"recipe": "tuned-cpu", "steps": ckpt["step"], "train_loss": last["train_loss"], "val_loss": last["val_loss"]}
    meta = {"config": json.dumps(ckpt["model_config"]), "chars": json.dumps(ckpt["tokenizer"]["chars"]),
            "trained": json.dumps(trained)}
    save_file(tensors, str(OUT), metadata=meta)
    print(f"{OUT}: {OUT.stat().st_size:,} bytes; {trained}")
