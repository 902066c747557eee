"""pytest settings for every run in this repository: the whole suite, `tests/` alone, or only
the chapters (`python -m pytest book/ -n 2`, as an instructor's CI may run nbval)."""

import os

import pytest


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py starts the portable run, which reads it
def pytest_sessionstart(session):
    """Under pytest-xdist (`-n 2`, `-n auto`) every worker, and every notebook kernel it starts,
    computes on one thread: the workers already keep the cores busy, and torch threads that wait
    for each other on busy cores make small models many times slower. Set here, before
    pytest-xdist starts the workers, which inherit this environment; a value already set wins."""
    if hasattr(session.config, "workerinput"):
        return  # a worker: it inherits the environment from the main process
    if getattr(session.config.option, "numprocesses", None):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")
