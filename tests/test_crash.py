"""Crash safety, measured: a training run killed with SIGKILL again and again.

A tiny model trains for 200 steps and saves its checkpoint every 8. The test kills the
process at random moments (some right after a checkpoint, some while ckpt.pt.tmp is being
written), and after every kill checks that ckpt.pt loads and that log.jsonl holds only
whole lines. Each time it continues with --resume. At the end, the losses equal those of
a run that was never killed, and the log lists every evaluation once, in order.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from gptlib.checkpoint import load_checkpoint
from gptlib.cli import main

from .conftest import tiny_train_args

STEPS, EVERY = 200, 8
KILLS = 12  # at least 10, and at least 2 of them during a checkpoint write
DURING_WRITE_EVERY = 3  # every third kill waits for ckpt.pt.tmp to appear


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("Now is the winter of our discontent\nMade glorious summer by this sun of York;\n" * 100)
    return path


# One thread: a tiny model gains nothing from more, and a busy machine slows it down a lot.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def train_args(text_file, out, resume):
    return [
        *tiny_train_args(text_file, out, "--max-iters", str(STEPS), "--eval-interval", str(EVERY)),
        *(["--resume"] if resume else []),
    ]


def command(text_file, out, resume):
    return [sys.executable, "-m", "gptlib", *train_args(text_file, out, resume)]


def log_rows(out):
    """The rows of log.jsonl; fails on a half-written line."""
    path = out / "log.jsonl"
    if not path.exists():
        return []
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "log.jsonl ends with half a line"
    return [json.loads(line) for line in text.splitlines()]


def wait_until(condition, proc, timeout=600.0):
    """Poll (busily: a checkpoint write lasts milliseconds) until condition() or the process ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
    raise AssertionError("the training process made no progress")


def test_sigkill_at_random_moments_then_resume_gives_the_same_losses(text_file, tmp_path):
    # The run that is never killed needs no process of its own: it runs here, on one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(train_args(text_file, tmp_path / "straight", resume=False)) == 0
    finally:
        torch.set_num_threads(threads)
    expected = [(r["step"], r["train_loss"], r["val_loss"]) for r in load_checkpoint(tmp_path / "straight")["history"]]
    assert [s for s, _, _ in expected] == list(range(EVERY, STEPS + 1, EVERY))

    out = tmp_path / "killed"
    rng = random.Random(0)
    kills = during_write = resumes = 0
    finished = False
    while not finished:
        ckpt = out / "ckpt.pt"
        resume = ckpt.exists()
        resumes += resume
        steps_before = len(log_rows(out))
        proc = subprocess.Popen(
            command(text_file, out, resume), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV
        )
        try:
            if kills >= KILLS:
                finished = True
            elif kills % DURING_WRITE_EVERY == DURING_WRITE_EVERY - 1:
                # Wait for fresh progress, then for the next checkpoint write to begin, and kill.
                wait_until(lambda n=steps_before: len(log_rows(out)) > n, proc)
                tmp = out / "ckpt.pt.tmp"
                if wait_until(tmp.exists, proc):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    during_write += tmp.exists()  # the kill landed inside the write
            else:
                wait_until(lambda n=steps_before: len(log_rows(out)) > n, proc)
                time.sleep(rng.uniform(0.0, 0.05))  # a random moment: training, evaluating or saving
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
            _, err = proc.communicate(timeout=300)
            if finished:
                assert proc.returncode == 0, err.decode()[-2000:]
            elif proc.returncode == 0:
                finished = True  # it got to the end between two kills
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if (out / "ckpt.pt").exists():
            load_checkpoint(out / "ckpt.pt")  # always loads: never half a file
        rows = log_rows(out)  # never half a line
        assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})  # no step twice

    history = load_checkpoint(out)["history"]
    got = [(r["step"], r["train_loss"], r["val_loss"]) for r in history]
    assert got == expected, "resumed losses differ from those of the run that never stopped"
    assert [(r["step"], r["train_loss"], r["val_loss"]) for r in log_rows(out)] == expected
    print(
        f"\n{kills} kills ({during_write} during a checkpoint write), {resumes} resumes, "
        f"{len(expected)} evaluations identical to the uninterrupted run"
    )
    assert kills >= 10 and during_write >= 2 and resumes >= kills - 1
    assert not os.path.exists(out / "log.jsonl.tmp")
