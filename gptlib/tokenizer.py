"""Chapter 1: text to token ids.

``gpt2_tokenizer()`` is GPT-2's byte-pair encoding (50,257 tokens), built from the
two files OpenAI published (shipped inside this package, so it needs no network).
``CharTokenizer`` is the character-level tokenizer of the small Shakespeare model.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

ENDOFTEXT = "<|endoftext|>"
ENDOFTEXT_ID = 50256

# sha256 of OpenAI's files: the same values tiktoken checks when it downloads them.
BPE_FILES = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}

# GPT-2's pre-tokenisation pattern, as tiktoken writes it (equivalent to the original
# release's, faster). Taken from tiktoken itself where it is available.
try:
    from tiktoken_ext.openai_public import r50k_pat_str as GPT2_PATTERN
except ImportError:  # pragma: no cover - older or newer tiktoken layouts
    GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def bpe_file(name: str) -> str:
    """Path of one of the shipped BPE files (``vocab.bpe`` or ``encoder.json``)."""
    return str(resources.files("gptlib").joinpath("data", "gpt2-bpe", name))


def check_bpe_file(path: str, expected_sha256: str) -> None:
    """Raise ValueError naming the file when its sha256 is not the expected one."""
    with open(path, "rb") as f:
        actual = hashlib.sha256(f.read()).hexdigest()
    if actual != expected_sha256:
        raise ValueError(
            f"tokenizer file {path} is damaged or not OpenAI's GPT-2 file: sha256 {actual}, expected {expected_sha256}"
        )


def load_gpt2_encoding(vocab_bpe: str, encoder_json: str) -> tiktoken.Encoding:
    """GPT-2's encoding from the two files at these paths, after checking their hashes."""
    check_bpe_file(vocab_bpe, BPE_FILES["vocab.bpe"])
    check_bpe_file(encoder_json, BPE_FILES["encoder.json"])
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=vocab_bpe,
        encoder_json_file=encoder_json,
        vocab_bpe_hash=BPE_FILES["vocab.bpe"],
        encoder_json_hash=BPE_FILES["encoder.json"],
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: ENDOFTEXT_ID},
        explicit_n_vocab=50257,
    )


@functools.lru_cache(maxsize=1)
def gpt2_tokenizer() -> tiktoken.Encoding:
    """GPT-2's tokenizer, equal to ``tiktoken.get_encoding("gpt2")``, offline.

    >>> enc = gpt2_tokenizer()
    >>> enc.n_vocab, enc.eot_token
    (50257, 50256)
    """
    return load_gpt2_encoding(bpe_file("vocab.bpe"), bpe_file("encoder.json"))


class CharTokenizer:
    """A character-level tokenizer: one id per distinct character of a text.

    >>> tok = CharTokenizer("hello")
    >>> tok.vocab_size, tok.encode("hell"), tok.decode([0, 1])
    (4, [1, 0, 2, 2], 'eh')
    """

    def __init__(self, text_or_chars: str) -> None:
        if not isinstance(text_or_chars, str):
            raise TypeError(f"CharTokenizer needs a str, got {type(text_or_chars).__name__}")
        if not text_or_chars:
            raise ValueError("CharTokenizer needs a non-empty text to build its vocabulary from")
        self.chars: list[str] = sorted(set(text_or_chars))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise ValueError(
                f"{len(unknown)} character(s) not in this tokenizer's vocabulary of {self.vocab_size}: {shown}"
            )
        return [self.stoi[c] for c in text]

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside [0, {self.vocab_size})")
        return "".join(self.chars[i] for i in ids)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
