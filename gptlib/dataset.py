"""Chapter 9: the training data: a text, its token ids, and random windows of them.

Two ways to hold text out: ``train_val_split`` keeps the end of the text (in the bundled
Shakespeare, plays the model never reads), and ``passage_split`` also holds out short
passages from inside the training part, text the model never reads from the plays it
does read. A model's loss on the passages against its loss on the training text measures
overfitting; the passages against the end measures how different the end is.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import NamedTuple

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


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def hold_out_passages(ids: torch.Tensor, every: int, length: int):
    """Cut a passage of ``length`` ids out of every ``every`` ids: (the rest, the passages).

    The passage is the last ``length`` ids of each whole stretch of ``every``; a last,
    shorter stretch is kept whole. Both results are 1-D and keep the order of the text,
    so a window of either can straddle the place where a passage was cut out: with
    windows of block_size, about block_size / length of the passages' windows do.
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        raise ValueError(f"ids must be a 1-D tensor of token ids, got {getattr(ids, 'shape', type(ids).__name__)}")
    _positive_int("every", every)
    _positive_int("length", length)
    if length >= every:
        raise ValueError(f"length {length} must be smaller than every {every}: something has to be left to train on")
    if len(ids) < every:
        raise ValueError(
            f"the ids are {len(ids):,} long, shorter than one stretch of every={every:,}: no passage to hold out"
        )
    n = len(ids) // every * every  # the whole stretches
    stretches = ids[:n].view(-1, every)  # (n_passages, every)
    kept = torch.cat([stretches[:, : every - length].reshape(-1), ids[n:]])
    return kept, stretches[:, every - length :].reshape(-1)


class Splits(NamedTuple):
    """Three parts of one text: to train on, held-out passages from among it, and the held-out end."""

    train: torch.Tensor
    passages: torch.Tensor
    val: torch.Tensor


def passage_split(ids: torch.Tensor, val_fraction: float = 0.1, every: int = 40_000, length: int = 2_000) -> Splits:
    """``train_val_split``'s end, and passages held out from the rest by ``hold_out_passages``.

    With the defaults, 5% of the training part becomes passages (2,000 ids out of every
    40,000), spread evenly over it. ``val`` is exactly ``train_val_split(ids, val_fraction)[1]``.
    """
    head, val = train_val_split(ids, val_fraction)
    train, passages = hold_out_passages(head, every, length)
    return Splits(train, passages, val)


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
