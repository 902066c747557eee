"""The chapters print the same on another machine.

The stored outputs of the notebooks come from one CPU. An instructor's CI runs on
another: Intel or AMD, AVX2 or AVX-512, one thread or more. This test runs strict nbval
again over the chapters that train, sample or print long float computations, in a second
numeric configuration that changes the kernels and the thread count of this machine, and
they must pass unchanged (CONTRIBUTING.md, "Outputs that are the same on every machine").

The second run starts in the background as soon as the tests are collected (tests/conftest.py
calls `start_in_background`), at low priority and on one thread where the machine has more,
so that it uses the time the rest of the suite leaves a core idle; the test that reads its
result runs last.
"""

import os
import subprocess
import sys
import tempfile

import torch

from .conftest import ROOT

# Every chapter that trains a model, samples from one, or prints a number that comes out of
# a long float computation.
CHAPTERS = [
    "book/09_training.ipynb",
    "book/10_generation.ipynb",
    "book/12_costs.ipynb",
    "book/13_inside.ipynb",
]


def second_configuration() -> dict[str, str]:
    """Other kernels and another thread count than this machine uses by default.

    ATen's vectorised kernels one level below the best this CPU has (AVX2 where it has
    AVX-512, the plain C++ kernels otherwise); MKL limited to the same level; and one
    thread where the default is more, two where it is one."""
    best = torch.backends.cpu.get_cpu_capability()
    aten, mkl = ("avx2", "AVX2") if best == "AVX512" else ("default", "SSE4_2")
    threads = "1" if torch.get_num_threads() > 1 else "2"
    return {
        "ATEN_CPU_CAPABILITY": aten,
        "MKL_ENABLE_INSTRUCTIONS": mkl,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }


def test_the_second_configuration_takes_effect_and_differs_from_this_machines():
    env = second_configuration()
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
    out = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [{"avx2": "AVX2", "default": "DEFAULT"}[env["ATEN_CPU_CAPABILITY"]], env["OMP_NUM_THREADS"]]
    assert out != [torch.backends.cpu.get_cpu_capability(), str(torch.get_num_threads())]


_background: dict = {}


def start_in_background() -> None:
    """Start strict nbval over CHAPTERS in the second configuration (once per session)."""
    if _background:
        return
    log = tempfile.TemporaryFile(mode="w+")
    _background["log"] = log
    _background["process"] = subprocess.Popen(
        [sys.executable, "-m", "pytest", *CHAPTERS, "-q", "-p", "no:cacheprovider", "--no-header"],
        cwd=ROOT,
        env={**os.environ, **second_configuration()},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: os.nice(10),  # the suite in the foreground keeps its speed
    )


def stop_background() -> None:
    process = _background.get("process")
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def test_the_chapters_print_the_same_with_other_kernels_and_threads():
    start_in_background()  # already running when the session collected this test
    process, log = _background["process"], _background["log"]
    returncode = process.wait(timeout=1800)
    log.seek(0)
    output = log.read()
    assert returncode == 0, f"strict nbval failed under {second_configuration()}:\n" + output[-8000:]
