import os
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


def pytest_sessionstart(session):
    """Start the cross-machine run of the chapters (tests/test_portable.py) in the background,
    once per test run (in the main process, not in each pytest-xdist worker)."""
    if hasattr(session.config, "workerinput"):
        return
    # The workers' thread count is set by the conftest.py at the top of the repository.
    if portable_test_may_run(session.config):
        from tests import test_portable

        test_portable.start_in_background()


def portable_test_may_run(config) -> bool:
    """Whether this run includes tests/test_portable.py: pytest alone, or a path that holds it."""
    if config.getoption("keyword") or config.getoption("markexpr") or config.getoption("collectonly"):
        return False
    args = [pathlib.Path(a.split("::")[0]).resolve() for a in config.args] or [ROOT / "tests"]
    portable = ROOT / "tests" / "test_portable.py"
    return any(portable == a or a in portable.parents for a in args)


def pytest_collection_modifyitems(session, config, items):
    """The test that waits for the cross-machine run goes last."""
    portable = [item for item in items if item.nodeid.startswith("tests/test_portable.py::test_the_chapters")]
    items[:] = [item for item in items if item not in portable] + portable


def pytest_sessionfinish(session, exitstatus):
    if not hasattr(session.config, "workerinput"):
        from tests import test_portable

        test_portable.stop_background()


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
def built_book(request):
    """Build the book once per test run, as readers get it, into _build/html.

    Returns the html folder; warnings are errors (-W -n). Under pytest-xdist the first worker
    that needs the book builds it while the others wait, and they all use that build."""
    import shutil
    import subprocess
    import sys

    from filelock import FileLock

    beside_python = pathlib.Path(sys.executable).parent / "jupyter-book"
    jb = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if jb is None:
        pytest.fail("jupyter-book is not installed: pip install -e '.[book]'")
    (ROOT / "_build").mkdir(exist_ok=True)
    run = getattr(request.config, "workerinput", {}).get("testrunuid", str(os.getpid()))
    built = ROOT / "_build" / f".built-by-test-run-{run}"
    with FileLock(ROOT / "_build" / ".build.lock"):
        if not built.exists():
            for old in (ROOT / "_build").glob(".built-by-test-run-*"):
                old.unlink()
            result = subprocess.run(
                [jb, "build", str(ROOT), "-W", "-n", "--keep-going"],
                capture_output=True,
                text=True,
                timeout=900,
                cwd=ROOT,
            )
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
            built.touch()
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
