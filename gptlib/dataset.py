"""Chapter 9: the training data: a text, its token ids, and random windows of them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch


def shakespeare_path() -> str:
    """The bundled 4.8 MB of public-domain Shakespeare, all 37 plays (see data/shakespeare/SOURCE.md)."""
    return str(resources.files("gptlib").joinpath("data", "shakespeare", "shakespeare.txt"))


def read_text(path) -> str:
    """The UTF-8 text of a file, or a clear error when it is missing, empty or not text."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"data file {path} is a folder; give a UTF-8 text file")
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError(f"data file {path} is empty; it needs some text to train on")
    if b"\x00" in raw[:65536]:
        raise ValueError(f"data file {path} is not text: it contains NUL bytes (is it a binary file?)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"data file {path} is not UTF-8 text: byte {raw[e.start]:#04x} at offset {e.start}") from None


def train_val_split(ids: torch.Tensor, val_fraction: float = 0.1):
    """The fixed split: the first (1 - val_fraction) of the ids for training, the rest held out."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = int(len(ids) * (1 - val_fraction))
    return ids[:n], ids[n:]


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator | None = None):
    """batch_size random windows of block_size tokens, and the same windows shifted by one.

    Returns x and y, both (batch_size, block_size), with y[:, t] == x[:, t + 1] inside a window.
    """
    if len(data) < block_size + 1:
        raise ValueError(
            f"the data has {len(data)} tokens, too few for one window of block_size {block_size} "
            f"plus its target; it needs at least {block_size + 1}"
        )
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[i : i + block_size] for i in starts.tolist()])  # (B, T)
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in starts.tolist()])  # (B, T)
    return x, y
