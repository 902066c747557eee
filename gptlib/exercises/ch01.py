"""Chapter 1 exercises: tokens, and the (input, target) windows a GPT trains on."""

from __future__ import annotations

import functools

import torch

from ..tokenizer import bpe_file, gpt2_tokenizer
from . import Mistake, check, whole_number

# ---------------------------------------------------------------------------
# Exercise 1: cut (x, y) windows out of a long 1-D tensor of token ids.


def make_windows(data: torch.Tensor, offsets, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x and targets y, both (len(offsets), block_size): y is x shifted left by one."""
    x = torch.stack([data[i : i + block_size] for i in offsets])
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in offsets])
    return x, y


def _window_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(1)
    short = torch.randint(0, 50257, (40,), generator=g)
    long = torch.randint(0, 50257, (1000,), generator=g)
    # Offsets start at 1 so that a window shifted the wrong way still fits, and its
    # hint can be recognised. The last offsets are the last ones that fit.
    return [
        (short, [1, 5, 31], 8),
        (long, [3, 100, 487], 512),
        (long, [998], 1),
    ]


def check_make_windows(fn) -> str:
    """Exercise: make_windows(data, offsets, block_size) -> (x, y)."""
    return check(
        "make_windows",
        fn,
        make_windows,
        cases=_window_cases(),
        mistakes=[
            Mistake(
                lambda d, o, T: (torch.stack([d[i : i + T] for i in o]),) * 2,
                "your targets are the inputs themselves. The target at position t is the token "
                "that comes next, so y is x shifted by one: data[i + 1 : i + 1 + block_size].",
            ),
            Mistake(
                lambda d, o, T: (
                    torch.stack([d[i : i + T] for i in o]),
                    torch.stack([d[i - 1 : i - 1 + T] for i in o]),
                ),
                "your targets are shifted the wrong way: they hold the previous token. "
                "The target at position t is the next token, data[i + t + 1].",
            ),
            Mistake(
                lambda d, o, T: (
                    torch.stack([d[i + 1 : i + 1 + T] for i in o]),
                    torch.stack([d[i : i + T] for i in o]),
                ),
                "x and y are swapped: return the inputs first, then the targets.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 2: how many GPT-2 tokens a text spends per word.

TEXTS = [
    ("One model reads the whole sequence at once.",),
    ("एक मॉडल पूरे अनुक्रम को एक साथ पढ़ता है।",),
    ("Shall I compare thee to a summer's day?",),
    ("Heads split the embedding, not the tokens.",),
]


def tokens_per_word(text: str) -> float:
    """GPT-2 tokens of the text divided by its words (split on whitespace)."""
    return len(gpt2_tokenizer().encode(text)) / len(text.split())


_CHARACTERS_HINT = "that counts characters per word. Count tokens instead: len(gpt2_tokenizer().encode(text))."


def check_tokens_per_word(fn) -> str:
    """Exercise: tokens_per_word(text) -> float."""
    return check(
        "tokens_per_word",
        fn,
        tokens_per_word,
        cases=TEXTS,
        mistakes=[
            Mistake(lambda s: len(s) / len(s.split()), _CHARACTERS_HINT),
            Mistake(lambda s: sum(len(w) for w in s.split()) / len(s.split()), _CHARACTERS_HINT),  # spaces left out
            Mistake(
                lambda s: len(s.encode("utf-8")) / len(s.split()),
                "that counts UTF-8 bytes per word. BPE merges bytes into tokens: "
                "count len(gpt2_tokenizer().encode(text)).",
            ),
            Mistake(
                lambda s: len(s.split()) / len(gpt2_tokenizer().encode(s)),
                "the ratio is upside down: divide the number of tokens by the number of words.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 3: how many different windows a text of n tokens holds.


def num_offsets(n_tokens: int, block_size: int) -> int:
    """How many start offsets i give a full window: block_size inputs and block_size targets."""
    return n_tokens - block_size


_OVERLAP_HINT = "windows may overlap: every start offset counts, not only the multiples of block_size."


def check_num_offsets(fn) -> str:
    """Exercise: num_offsets(n_tokens, block_size) -> int."""
    return check(
        "num_offsets",
        whole_number(fn),
        num_offsets,
        cases=[(1000, 512), (513, 512), (4000, 8), (65, 64), (10**9, 1024)],
        mistakes=[
            Mistake(
                lambda n, T: n - T + 1,
                "a window of block_size inputs needs block_size + 1 tokens: "
                "its last target is the token after the window.",
            ),
            Mistake(
                lambda n, T: n - T - 1,
                "one offset too few: offset n_tokens - block_size - 1 still fits, since its last "
                "target is the text's last token.",
            ),
            Mistake(lambda n, T: n // T, _OVERLAP_HINT),  # windows side by side
            Mistake(lambda n, T: (n - 1) // T, _OVERLAP_HINT),  # side by side, each with its extra target token
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 4: apply a list of BPE merges to one word, GPT-2's way.


def apply_merges(pieces: tuple[str, ...], ranks: dict[tuple[str, str], int]) -> tuple[str, ...]:
    """Merge adjacent pieces until no pair has a rank: always the pair with the lowest
    rank first, every occurrence of it at once."""
    pieces = tuple(pieces)
    while len(pieces) > 1:
        ranked = [(ranks[pair], pair) for pair in zip(pieces, pieces[1:]) if pair in ranks]
        if not ranked:
            break
        _, best = min(ranked)
        pieces = _merge_pair(pieces, best)
    return pieces


def _merge_pair(pieces: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(pieces):
        if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == pair:
            out.append(pieces[i] + pieces[i + 1])
            i += 2
        else:
            out.append(pieces[i])
            i += 1
    return tuple(out)


@functools.lru_cache(maxsize=1)
def gpt2_merge_ranks() -> dict[tuple[str, str], int]:
    """GPT-2's 50,000 merges from the shipped vocab.bpe, rank = line number after the header.
    Pieces are spelled with GPT-2's byte-to-unicode table (a space is 'Ġ')."""
    with open(bpe_file("vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().splitlines()[1:]  # the first line is a version header
    return {tuple(line.split(" ")): rank for rank, line in enumerate(lines) if line}


def _merge_cases() -> list[tuple]:
    small = {("t", "h"): 0, ("th", "e"): 1, ("th", "o"): 2, ("the", "e"): 3, ("tho", "u"): 4, ("s", "e"): 5}
    gpt2 = gpt2_merge_ranks()
    return [
        (tuple("thousand"), small),
        (tuple("theses"), small),
        (tuple("Ġtokenization"), gpt2),
        (tuple("Ġnationalisation"), gpt2),
        (tuple("Ġbanana"), gpt2),
    ]


def _leftmost_first(pieces, ranks):
    pieces = tuple(pieces)
    while True:
        pair = next((p for p in zip(pieces, pieces[1:]) if p in ranks), None)
        if pair is None:
            return pieces
        pieces = _merge_pair(pieces, pair)


def _highest_rank_first(pieces, ranks):
    pieces = tuple(pieces)
    while True:
        ranked = [(ranks[p], p) for p in zip(pieces, pieces[1:]) if p in ranks]
        if not ranked:
            return pieces
        pieces = _merge_pair(pieces, max(ranked)[1])


def check_apply_merges(fn) -> str:
    """Exercise: apply_merges(pieces, ranks) -> tuple of pieces."""
    return check(
        "apply_merges",
        lambda pieces, ranks: tuple(fn(tuple(pieces), dict(ranks))),
        apply_merges,
        cases=_merge_cases(),
        mistakes=[
            Mistake(
                _leftmost_first,
                "you merged the leftmost pair that has a rank. BPE merges the pair with the "
                "lowest rank first, wherever it is in the word: merges learned early come first.",
            ),
            Mistake(
                _highest_rank_first,
                "you merged the pair with the highest rank first. Rank 0 is the first merge "
                "learned and the first applied: take the minimum.",
            ),
            Mistake(
                lambda pieces, ranks: _merge_pair(
                    tuple(pieces), min((ranks[p], p) for p in zip(pieces, pieces[1:]) if p in ranks)[1]
                ),
                "you stopped after one merge. Keep merging until no adjacent pair has a rank.",
            ),
        ],
    )
