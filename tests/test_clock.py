"""TrainConfig.clock: a time budget in wall time (the default) or in the process's CPU time.

The clocks are simulated (a step takes so many CPU seconds and so many wall seconds) or
the time that does not count is a sleep, so no test depends on how fast the machine is."""

import re
import time

import pytest
import torch

import gptlib.trainer
from gptlib.checkpoint import load_checkpoint
from gptlib.cli import main
from gptlib.dataset import read_text, shakespeare_path
from gptlib.recipes import CLOCKS, TrainConfig
from gptlib.trainer import Trainer

from .conftest import tiny_train_args

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

DATA = torch.arange(400) % 512  # token ids for the tiny preset


class TwoClocks:
    """Stands in for the trainer's ``time``: each training step and each evaluation moves the
    CPU clock (process_time) and the wall clock (perf_counter) by set amounts. A step that
    takes 1 CPU second and 100 wall seconds is one that waited for a core held by another job."""

    def __init__(self, monkeypatch, step: tuple[float, float], evaluation: tuple[float, float]):
        self.cpu = self.wall = 0.0
        monkeypatch.setattr(gptlib.trainer, "time", self)
        for method, (cpu, wall) in (("train_step", step), ("estimate_loss", evaluation)):
            monkeypatch.setattr(Trainer, method, self.taking(getattr(Trainer, method), cpu, wall))

    def process_time(self) -> float:
        return self.cpu

    def perf_counter(self) -> float:
        return self.wall

    def taking(self, method, cpu, wall):
        def timed(trainer):
            self.cpu += cpu
            self.wall += wall
            return method(trainer)

        return timed


def budget(clock: str, **changes) -> TrainConfig:
    settings = dict(
        max_iters=10**6,
        max_seconds=20.0,
        schedule="time",
        eval_iters=3,
        eval_interval=10**6,
        warmup_iters=2,
        batch_size=4,
        clock=clock,
    )
    return TrainConfig(**(settings | changes))


def test_the_default_is_wall_time():
    assert TrainConfig().clock == "wall" and CLOCKS == ("wall", "cpu")


def test_a_bad_clock_is_named():
    with pytest.raises(ValueError, match=re.escape("TrainConfig.clock must be 'wall' (time that passes) or 'cpu'")):
        TrainConfig(clock="gpu")
    with pytest.raises(ValueError, match="got 'gpu'"):
        TrainConfig(clock="gpu")


def test_each_clock_reads_its_own_time(tiny_model, monkeypatch):
    clocks = TwoClocks(monkeypatch, step=(0, 0), evaluation=(0, 0))
    clocks.cpu, clocks.wall = 3.0, 50.0
    assert Trainer(tiny_model, DATA, DATA, TrainConfig()).clock() == 50.0
    assert Trainer(tiny_model, DATA, DATA, TrainConfig(clock="cpu")).clock() == 3.0


@pytest.mark.parametrize("clock", CLOCKS)
def test_the_budget_and_the_schedule_follow_the_chosen_clock(tiny_model, monkeypatch, clock):
    # Each step: 1 CPU second, 100 wall seconds (it waited); an evaluation: 2 CPU, 10 wall.
    TwoClocks(monkeypatch, step=(1.0, 100.0), evaluation=(2.0, 10.0))
    config = budget(clock)
    history = Trainer(tiny_model, DATA, DATA, config).train(progress=False)
    last = history[-1]
    if clock == "cpu":
        # The first evaluation is estimated as 2 x 3 forward passes of a third of a step each
        # (2 s): after step 17, 17 + 1 + 2 = 20 no longer fits. The evaluation takes 2 s: 19 s.
        assert (last["step"], last["elapsed_s"]) == (17, 19.0)
        # The learning rate of the last step followed the fraction of the CPU budget used then.
        assert last["lr"] == config.lr_at(16, 16.0)
    else:  # unchanged: wall time; one step already uses 100 of the 20 seconds
        assert (last["step"], last["elapsed_s"]) == (1, 110.0)


def test_waiting_does_not_count_on_the_cpu_clock(tiny_model, monkeypatch):
    """Measured, not simulated: each step sleeps 0.05 s, as a step that waits for a core
    would. In CPU time six steps cost almost nothing, so all six fit a budget of 0.25 s; in
    wall time at most four do (after four, 0.2 s have passed and one more step is 0.05 s)."""

    def sleeping_step(trainer):
        time.sleep(0.05)
        return 0.0

    monkeypatch.setattr(Trainer, "train_step", sleeping_step)
    monkeypatch.setattr(Trainer, "estimate_loss", lambda trainer: {"train": 1.0, "val": 1.0})
    steps = {}
    for clock in CLOCKS:
        config = budget(clock, max_iters=6, max_seconds=0.25, eval_iters=1)
        steps[clock] = Trainer(tiny_model, DATA, DATA, config).train(progress=False)[-1]["step"]
    assert steps["cpu"] == 6 and steps["wall"] <= 4, steps


def test_a_resumed_run_counts_on_from_the_checkpoint(tiny_model, tiny_config, monkeypatch, tmp_path):
    clocks = TwoClocks(monkeypatch, step=(1.0, 100.0), evaluation=(2.0, 10.0))
    first = Trainer(tiny_model, DATA, DATA, budget("cpu", max_iters=4), out_dir=tmp_path)
    assert first.train(progress=False)[-1]["elapsed_s"] == 6.0  # 4 steps and an evaluation
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["elapsed_s"] == 6.0 and ckpt["train_config"]["clock"] == "cpu"

    clocks.cpu = 0.5  # a new process: its CPU clock starts again near 0
    torch.manual_seed(0)
    second = Trainer(gptlib.trainer.GPT(tiny_config), DATA, DATA, budget("cpu", max_iters=8), out_dir=tmp_path)
    second.resume(ckpt)
    history = second.train(progress=False)
    assert [(r["step"], r["elapsed_s"]) for r in history] == [(4, 6.0), (8, 12.0)]  # 6 + 4 steps + evaluation


def test_the_command_line_flag(tmp_path, monkeypatch, capsys):
    data = tmp_path / "small.txt"
    data.write_text(read_text(shakespeare_path())[:20_000])
    clocks = TwoClocks(monkeypatch, step=(0.1, 100.0), evaluation=(0.5, 10.0))
    assert main(tiny_train_args(data, tmp_path / "cpu", "--max-seconds", "3", "--clock", "cpu")) == 0
    ckpt = load_checkpoint(tmp_path / "cpu")
    assert ckpt["train_config"]["clock"] == "cpu" and ckpt["train_config"]["schedule"] == "time"
    # 20 evaluation batches estimated at 2 x 20 / 3 steps (1.33 s): after step 16, 1.6 + 0.1 + 1.33 >= 3.
    assert (ckpt["step"], ckpt["elapsed_s"]) == (16, pytest.approx(2.1))

    # --resume continues on the checkpoint's clock, in a new process (its CPU clock near 0)
    clocks.cpu = 0.0
    assert main(tiny_train_args(data, tmp_path / "cpu", "--resume", "--max-seconds", "5")) == 0
    resumed = load_checkpoint(tmp_path / "cpu")
    assert resumed["train_config"]["clock"] == "cpu" and resumed["elapsed_s"] <= 5.0 and resumed["step"] > 16

    assert main(tiny_train_args(data, tmp_path / "wall", "--max-seconds", "3")) == 0
    assert load_checkpoint(tmp_path / "wall")["train_config"]["clock"] == "wall"  # the default, unchanged
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(tiny_train_args(data, tmp_path / "bad", "--clock", "gpu"))
    assert refused.value.code == 2 and "argument --clock: invalid choice: 'gpu'" in capsys.readouterr().err
