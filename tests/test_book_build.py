"""The book builds with warnings as errors, as readers get it: into _build/html."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def test_book_builds_with_warnings_as_errors():
    beside_python = Path(sys.executable).parent / "jupyter-book"
    jb = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if jb is None:
        pytest.fail("jupyter-book is not installed: pip install -e '.[book]'")
    result = subprocess.run(
        [jb, "build", str(ROOT), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = ROOT / "_build" / "html"
    assert (html / "book" / "intro.html").is_file()
    assert "GPT-2, shape by shape" in (html / "book" / "intro.html").read_text()
