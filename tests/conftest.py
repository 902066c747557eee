import pathlib

import pytest
import torch

from gptlib import GPT, GPTConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_config() -> GPTConfig:
    return GPTConfig.from_preset("tiny")


@pytest.fixture
def tiny_model(tiny_config) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny_config).eval()


@pytest.fixture(scope="session")
def built_book():
    """Build the book once per test session, as readers get it, into _build/html.

    Returns (html folder, the build's output): warnings are errors (-W -n)."""
    import shutil
    import subprocess
    import sys

    beside_python = pathlib.Path(sys.executable).parent / "jupyter-book"
    jb = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if jb is None:
        pytest.fail("jupyter-book is not installed: pip install -e '.[book]'")
    result = subprocess.run(
        [jb, "build", str(ROOT), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return ROOT / "_build" / "html"
