import pathlib

import pytest
import torch

from gptlib import GPT, GPTConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]

FALSY = {"", "0", "false", "no", "off"}


def in_ci() -> bool:
    """True on a CI machine: any CI value but an empty, 0, false, no or off one (GitHub sets "true",
    others "1" or "yes")."""
    import os

    return os.environ.get("CI", "").strip().lower() not in FALSY


def skip_or_fail(reason: str):
    """Skip a test that cannot run here, with the reason; in CI, where it must run, fail instead."""
    if in_ci():
        pytest.fail(f"cannot run in CI: {reason}")
    pytest.skip(reason, allow_module_level=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI no test may skip silently: a skip there (however it was asked for) is a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {reason}"


def pytest_collection_modifyitems(session, config, items):
    """Start the cross-machine run of the chapters (tests/test_portable.py) in the background
    as soon as it is collected, and read its result last."""
    portable = [item for item in items if item.nodeid.startswith("tests/test_portable.py::test_the_chapters")]
    if portable:
        from tests import test_portable

        test_portable.start_in_background()
        items[:] = [item for item in items if item not in portable] + portable


def pytest_sessionfinish(session, exitstatus):
    import sys

    module = sys.modules.get("tests.test_portable")
    if module is not None:
        module.stop_background()


@pytest.fixture
def tiny_config() -> GPTConfig:
    return GPTConfig.from_preset("tiny")


@pytest.fixture
def tiny_model(tiny_config) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny_config).eval()


def tiny_train_args(data, out, *extra) -> list[str]:
    """The arguments of `python -m gptlib train` for the tiny preset on the CPU, quiet,
    writing to out, followed by extra ones."""
    return ["train", "--data", str(data), "--preset", "tiny", "--device", "cpu", "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="session")
def built_book():
    """Build the book once per test session, as readers get it, into _build/html.

    Returns the html folder; warnings are errors (-W -n)."""
    import shutil
    import subprocess
    import sys

    beside_python = pathlib.Path(sys.executable).parent / "jupyter-book"
    jb = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if jb is None:
        pytest.fail("jupyter-book is not installed: pip install -e '.[book]'")
    result = subprocess.run(
        [jb, "build", str(ROOT), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return ROOT / "_build" / "html"


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a test module (pytestmark = pytest.mark.usefixtures("one_thread")),
    its module-scoped fixtures included: the models of these tests are small enough to gain
    nothing from more, and on a machine whose cores are busy, threads that wait for each other
    make them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
