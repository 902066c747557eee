"""The chapters print the same on another machine.

The stored outputs of the notebooks come from one CPU. An instructor's CI runs on
another: Intel or AMD, AVX2 or AVX-512, one thread or more. This test runs strict nbval
again over the chapters that train, sample or print long float computations, in a second
numeric configuration that changes the kernels and the thread count of this machine, and
they must pass unchanged (CONTRIBUTING.md, "Outputs that are the same on every machine").

The second run starts in the background when the test session starts (tests/conftest.py
calls `start_in_background`), so that it runs beside the rest of the suite; the test that
reads its result runs last.
"""

import os
import pathlib
import shlex
import signal
import subprocess
import sys
import tempfile
import time

import torch

from .conftest import ROOT

# Every chapter that trains a model, samples from one, or prints a number that comes out of
# a long float computation.
CHAPTERS = [
    "book/09_training.ipynb",
    "book/10_generation.ipynb",
    "book/12_costs.ipynb",
    "book/13_inside.ipynb",
    "book/14_todays_models.ipynb",
]


def second_configuration() -> dict[str, str]:
    """Other kernels and another thread count than this machine uses by default.

    ATen's vectorised kernels one level below the best this CPU has (AVX2 where it has
    AVX-512, the plain C++ kernels otherwise); MKL limited to the same level; and one
    thread where the chapters' first run uses more, two where it uses one (as `make test`'s
    pytest-xdist workers do). Its threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE), as
    it shares the cores with the rest of the suite; that changes speed, not results."""
    best = torch.backends.cpu.get_cpu_capability()
    aten, mkl = ("avx2", "AVX2") if best == "AVX512" else ("default", "SSE4_2")
    threads = "1" if first_run_threads() > 1 else "2"
    return {
        "ATEN_CPU_CAPABILITY": aten,
        "MKL_ENABLE_INSTRUCTIONS": mkl,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def first_run_threads() -> int:
    """The threads of the notebook kernels of the first run: they inherit OMP_NUM_THREADS."""
    return int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())


def test_the_second_configuration_takes_effect_and_differs_from_this_machines():
    env = second_configuration()
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
    out = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [{"avx2": "AVX2", "default": "DEFAULT"}[env["ATEN_CPU_CAPABILITY"]], env["OMP_NUM_THREADS"]]
    assert out[0] != torch.backends.cpu.get_cpu_capability() and int(out[1]) != first_run_threads()


# The background run's files: its output, and its exit status once it has ended. The
# environment carries their folder to pytest-xdist's workers, one of which runs the test.
RESULT_DIR = "GPTBOOK_PORTABLE_RUN"
_background: dict = {}


def start_in_background() -> None:
    """Start strict nbval over CHAPTERS in the second configuration (once per test run)."""
    if _background:
        return
    folder = pathlib.Path(tempfile.mkdtemp(prefix="gptbook-portable-"))
    os.environ[RESULT_DIR] = str(folder)
    command = [sys.executable, "-m", "pytest", *CHAPTERS, "-q", "-p", "no:cacheprovider", "--no-header"]
    script = f"{shlex.join(command)} > {folder / 'output.txt'} 2>&1; echo $? > {folder / 'status.tmp'}"
    script += f" && mv {folder / 'status.tmp'} {folder / 'status.txt'}"
    _background["process"] = subprocess.Popen(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**os.environ, **second_configuration()},
        start_new_session=True,  # stop_background ends the whole group, notebook kernels included
    )


def stop_background() -> None:
    process = _background.get("process")
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_chapters_print_the_same_with_other_kernels_and_threads():
    if RESULT_DIR not in os.environ:  # collected alone: the run did not start with the session
        start_in_background()
    folder = pathlib.Path(os.environ[RESULT_DIR])
    deadline = time.monotonic() + 1800
    while not (folder / "status.txt").exists():
        assert time.monotonic() < deadline, "the second-configuration run did not end within 30 minutes"
        time.sleep(1)
    status = int((folder / "status.txt").read_text())
    output = (folder / "output.txt").read_text()
    assert status == 0, f"strict nbval failed under {second_configuration()}:\n" + output[-8000:]
