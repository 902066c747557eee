"""Ctrl-C during training, at every kind of moment, then --resume.

Each test delivers a real SIGINT to this process (``os.kill(os.getpid(), signal.SIGINT)``)
from inside the training loop, at a chosen moment: before the first step, between the
optimiser's update and the step counter, in the middle of an evaluation, in the middle
of a checkpoint write. The run must exit with status 130 and say what it saved; then
``--resume`` must end with exactly the evaluation history and the weights of a run that
was never interrupted. One test does the same with a real ``python -m gptlib train``
process.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.checkpoint import load_checkpoint
from gptlib.cli import main
from gptlib.dataset import read_text, shakespeare_path
from gptlib.train import TrainConfig, Trainer, TrainingInterrupted

from .conftest import tiny_train_args

STEPS, EVERY = 12, 4  # evaluations (and checkpoints) at steps 4, 8 and 12
EVAL_ITERS = 20  # the recipe's: each evaluation runs 20 batches of each split


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: a tiny model gains nothing from more, and on a busy machine two threads
    can make it ten times slower. (The same number for every run, so losses compare with ==.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(read_text(shakespeare_path())[:20_000])
    return path


def train_args(text_file, out, *extra):
    return tiny_train_args(text_file, out, "--max-iters", str(STEPS), "--eval-interval", str(EVERY), *extra)


@pytest.fixture(scope="module")
def straight(text_file, tmp_path_factory):
    """The checkpoint of a run that was never interrupted."""
    out = tmp_path_factory.mktemp("straight")
    assert main(train_args(text_file, out)) == 0
    return load_checkpoint(out)


def losses(history):
    """Everything an evaluation row holds but its wall time."""
    return [(r["step"], r["train_loss"], r["val_loss"], r["lr"]) for r in history]


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler before the next line of the caller


def before_the_first_step(monkeypatch):
    original = Trainer.open_log  # the first thing Trainer.train does

    def open_log(self):
        ctrl_c()
        return original(self)

    monkeypatch.setattr(Trainer, "open_log", open_log)


def between_update_and_counter(at_step):
    """Ctrl-C after optimizer.step() has updated the weights, before self.step counts the step."""

    def install(monkeypatch):
        original = Trainer.train_step

        def train_step(self):
            loss = original(self)
            if self.step + 1 == at_step:
                ctrl_c()
            return loss

        monkeypatch.setattr(Trainer, "train_step", train_step)

    return install


def during_an_evaluation(at_step):
    """Ctrl-C in the middle of the evaluation after at_step: between two of its batches."""

    def install(monkeypatch):
        original = GPT.forward
        earlier = (at_step // EVERY - 1) * 2 * EVAL_ITERS  # the batches of the earlier evaluations
        batches = itertools.count(1)

        def forward(self, *args, **kwargs):
            if not self.training and next(batches) == earlier + EVAL_ITERS + 5:  # 5 batches into val
                ctrl_c()
            return original(self, *args, **kwargs)

        monkeypatch.setattr(GPT, "forward", forward)

    return install


def during_a_checkpoint_write(at_step):
    """Ctrl-C once torch.save has written the checkpoint to ckpt.pt.tmp, before it replaces ckpt.pt."""

    def install(monkeypatch):
        original = torch.save

        def save(obj, f, *args, **kwargs):
            original(obj, f, *args, **kwargs)
            if isinstance(obj, dict) and obj.get("step") == at_step and not fired:
                fired.append(True)  # once: the write of at_step's checkpoint, not a later one
                ctrl_c()

        fired = []

        monkeypatch.setattr(torch, "save", save)

    return install


MOMENTS = {
    "before the first step": (before_the_first_step, 0),
    "during step 6, after the update": (between_update_and_counter(6), 6),
    "during step 8, after the update (then its evaluation)": (between_update_and_counter(8), 8),
    "during the evaluation of step 4": (during_an_evaluation(4), 4),
    "during the evaluation of step 8": (during_an_evaluation(8), 8),
    "during the checkpoint write of step 8": (during_a_checkpoint_write(8), 8),
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_ctrl_c_then_resume_gives_the_losses_of_a_run_never_interrupted(
    moment, text_file, straight, tmp_path, monkeypatch, capsys
):
    install, stopped_after = MOMENTS[moment]
    handler = signal.getsignal(signal.SIGINT)
    install(monkeypatch)
    assert main(train_args(text_file, tmp_path)) == 130
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is handler  # Python's own Ctrl-C again, after training
    when = "before the first step" if stopped_after == 0 else f"after step {stopped_after}"
    message = f"interrupted {when}; saved in {tmp_path / 'ckpt.pt'}: continue with --resume"
    assert capsys.readouterr().err.strip() == message
    saved = load_checkpoint(tmp_path)
    assert saved["step"] == stopped_after
    assert losses(saved["history"]) == losses(straight["history"][: stopped_after // EVERY])

    # --resume alone: the checkpoint's schedule (12 steps, evaluated every 4) continues.
    assert main(tiny_train_args(text_file, tmp_path, "--resume")) == 0
    resumed = load_checkpoint(tmp_path)
    assert losses(resumed["history"]) == losses(straight["history"])
    assert all(torch.equal(resumed["model"][k], straight["model"][k]) for k in straight["model"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert losses(log) == losses(straight["history"])


def test_a_second_ctrl_c_stops_at_once_and_saves_nothing_half_done(text_file, straight, tmp_path, monkeypatch, capsys):
    """Two Ctrl-C between step 6's update and its counter: nothing of step 5 or 6 is saved,
    the checkpoint keeps step 4, and --resume from it is still exact."""
    original = Trainer.train_step

    def train_step(self):
        loss = original(self)
        if self.step + 1 == 6:
            ctrl_c()
            ctrl_c()
        return loss

    monkeypatch.setattr(Trainer, "train_step", train_step)
    assert main(train_args(text_file, tmp_path)) == 130
    monkeypatch.undo()
    ckpt = tmp_path / "ckpt.pt"
    assert capsys.readouterr().err.strip() == (
        f"stopped at once by a second Ctrl-C; {ckpt} holds step 4: continue with --resume"
    )
    assert load_checkpoint(tmp_path)["step"] == 4
    assert main(train_args(text_file, tmp_path, "--resume")) == 0
    assert losses(load_checkpoint(tmp_path)["history"]) == losses(straight["history"])


def test_ctrl_c_before_training_started_saves_nothing(text_file, tmp_path, monkeypatch, capsys):
    import gptlib.train

    original = gptlib.train.read_text

    def read_text_then_ctrl_c(path):
        text = original(path)
        ctrl_c()
        return text

    monkeypatch.setattr(gptlib.train, "read_text", read_text_then_ctrl_c)
    assert main(train_args(text_file, tmp_path / "run")) == 130
    assert capsys.readouterr().err.strip() == "interrupted before training started; nothing was saved"
    assert not (tmp_path / "run" / "ckpt.pt").exists()


def test_trainer_without_out_dir_stops_between_steps_too(text_file, monkeypatch):
    """In a notebook (no out_dir), Ctrl-C stops the loop after the step, saving nothing."""
    ids = torch.tensor(list(text_file.read_bytes()[:5_000]), dtype=torch.long)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=256))
    trainer = Trainer(model, ids, ids, TrainConfig(max_iters=10, eval_iters=2))
    between_update_and_counter(3)(monkeypatch)
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.train(progress=False)
    assert (stopped.value.step, stopped.value.saved_step, trainer.step) == (3, None, 3)
    assert str(stopped.value) == "training stopped after step 3; nothing saved"


def test_python_m_gptlib_train_exits_130_on_sigint_and_resumes_exactly(text_file, tmp_path):
    """A real process gets SIGINT after its first checkpoint. It runs until stopped
    (--max-iters 100000), so where it stops depends on timing: the resumed run and the
    reference both stop, by an in-process Ctrl-C, at the same later step."""
    out = tmp_path / "signalled"
    args = tiny_train_args(text_file, out, "--max-iters", "100000", "--eval-interval", str(EVERY))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gptlib", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        log = out / "log.jsonl"
        while not (log.exists() and log.read_text()) and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    step = load_checkpoint(out)["step"]
    assert step >= EVERY and "Traceback" not in err
    assert err.strip().endswith(f"interrupted after step {step}; saved in {out / 'ckpt.pt'}: continue with --resume")

    stop_at = step + EVERY + 1  # past one more evaluation
    reference = tiny_train_args(
        text_file, tmp_path / "reference", "--max-iters", "100000", "--eval-interval", str(EVERY)
    )
    for run in (args + ["--resume"], reference):
        with pytest.MonkeyPatch.context() as monkeypatch:
            between_update_and_counter(stop_at)(monkeypatch)
            assert main(run) == 130
    a, b = load_checkpoint(out), load_checkpoint(tmp_path / "reference")
    assert a["step"] == b["step"] == stop_at
    assert [r["step"] for r in b["history"]] == list(range(EVERY, stop_at + 1, EVERY))
    assert losses(a["history"]) == losses(b["history"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
