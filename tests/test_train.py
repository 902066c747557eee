"""The trainer and the train/sample command line, on small data so that they run in seconds."""

import json
import math
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.checkpoint import encode_text
from gptlib.cli import main
from gptlib.dataset import get_batch, read_text, shakespeare_path, train_val_split
from gptlib.train import (
    DEFAULT_RECIPE,
    RECIPES,
    TUNED_CPU,
    TrainConfig,
    Trainer,
    estimate_loss,
    load_checkpoint,
    make_optimizer,
    run_training,
)

from .conftest import tiny_train_args

SMALL = dict(preset="tiny", max_iters=12, progress=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: a tiny model gains nothing from more, and on a busy machine two threads
    can make it ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cli(capsys):
    """`python -m gptlib ARGS`, run in this process: its exit status, stdout and stderr."""

    def run(*args):
        capsys.readouterr()  # only this command's output
        try:
            returncode = main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors
            returncode = e.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=returncode, stdout=out.out, stderr=out.err)

    return run


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(read_text(shakespeare_path())[:30_000])
    return path


def test_bundled_corpus_is_the_documented_one():
    import hashlib

    raw = open(shakespeare_path(), "rb").read()
    assert hashlib.sha256(raw).hexdigest() == "f74ceb0acc88a4d46e32edb1a5f3439e7cfbdb35574ae5eb073b781092db8e75"
    text = raw.decode("utf-8")
    assert len(text) == 4_845_510 and len(set(text)) == 83


def test_split_is_fixed_and_batches_are_shifted_windows():
    ids = torch.arange(1000)
    train, val = train_val_split(ids)
    assert len(train) == 900 and torch.equal(val, torch.arange(900, 1000))
    x, y = get_batch(train, 64, 12, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (12, 64)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    with pytest.raises(ValueError, match="the data has 10 tokens, too few for one window of block_size 64"):
        get_batch(torch.arange(10), 64, 2)


def test_learning_rate_schedule():
    cfg = TrainConfig(max_iters=1000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100)
    lrs = [cfg.lr_at(s) for s in range(1200)]
    assert all(a < b for a, b in zip(lrs[:100], lrs[1:101]))  # warmup rises
    assert math.isclose(lrs[100], 1e-3)  # peak after warmup
    assert all(a >= b for a, b in zip(lrs[100:1000], lrs[101:1001]))  # cosine falls
    assert math.isclose(lrs[550], 0.5 * (1e-3 + 1e-4))  # halfway down the cosine
    assert lrs[1000] == lrs[1199] == 1e-4


def test_weight_decay_only_on_matrices(tiny_model):
    opt = make_optimizer(tiny_model, TrainConfig(weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(tiny_model.parameters()))


def test_training_lowers_the_loss_and_logs_each_evaluation(text_file, tmp_path):
    history = run_training(text_file, out=tmp_path / "run", **{**SMALL, "max_iters": 60})
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log == history and log[-1]["step"] == 60
    assert {"step", "train_loss", "val_loss", "elapsed_s"} <= set(log[-1])
    vocab = len(set(text_file.read_text()))
    assert log[-1]["train_loss"] < math.log(vocab) - 0.5  # it learned something
    ckpt = load_checkpoint(tmp_path / "run" / "ckpt.pt")
    assert ckpt["step"] == 60 and ckpt["tokenizer"]["kind"] == "char"


def test_default_recipe_is_the_tuned_one():
    assert DEFAULT_RECIPE == "tuned-cpu" and RECIPES[DEFAULT_RECIPE] is TUNED_CPU
    model_shape, config = TUNED_CPU
    nanogpt_shape, nanogpt = RECIPES["nanogpt-cpu"]
    assert config.learning_rate == 5 * nanogpt.learning_rate and config.warmup_iters < nanogpt.warmup_iters
    assert model_shape == {**nanogpt_shape, "n_layer": nanogpt_shape["n_layer"] - 1}  # one layer fewer


def test_command_line_train_then_sample(text_file, tmp_path, cli):
    out = tmp_path / "cli"
    result = cli(
        "train", "--data", str(text_file), "--preset", "tiny", "--max-iters", "5", "--out", str(out), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert "step 5: train loss" in result.stdout
    assert (out / "ckpt.pt").is_file() and len((out / "log.jsonl").read_text().splitlines()) == 1
    sample = cli("sample", "--ckpt", str(out), "--prompt", "ROMEO:", "--tokens", "20")
    assert sample.returncode == 0, sample.stderr
    # The prompt, 20 generated characters (a newline among them counts too), print's newline.
    assert sample.stdout.startswith("ROMEO:") and len(sample.stdout) == len("ROMEO:") + 20 + 1
    again = cli("sample", "--ckpt", str(out), "--prompt", "ROMEO:", "--tokens", "20")
    assert again.stdout == sample.stdout  # seeded


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ["--data", "{tmp}/missing.txt"], "data file {tmp}/missing.txt does not exist"),
        ("empty", ["--data", "{tmp}/empty.txt"], "is empty; it needs some text"),
        ("binary", ["--data", "{tmp}/binary.bin"], "is not text: it contains NUL bytes"),
        ("latin1", ["--data", "{tmp}/latin1.txt"], "is not UTF-8 text: byte 0xe9 at offset 3"),
        ("outfile", ["--data", "{data}", "--out", "{tmp}/afile"], "--out {tmp}/afile is a file; give a folder"),
        (
            None,
            ["--data", "{data}", "--out", "{tmp}/none", "--resume"],
            "--resume: there is no checkpoint at {tmp}/none/ckpt.pt",
        ),
    ],
)
def test_command_line_errors(text_file, tmp_path, setup, args, message, cli):
    files = {
        "empty": ("empty.txt", b"  \n"),
        "binary": ("binary.bin", b"\x00\x01\x02abc"),
        "latin1": ("latin1.txt", "caf\u00e9".encode("latin-1")),
        "outfile": ("afile", b"keep"),
    }
    if setup:
        name, content = files[setup]
        (tmp_path / name).write_bytes(content)
    fill = lambda s: s.format(tmp=tmp_path, data=text_file)  # noqa: E731
    result = cli("train", *[fill(a) for a in args], "--preset", "tiny", "--max-iters", "2", "--quiet")
    assert result.returncode == 2
    assert fill(message) in result.stderr and "Traceback" not in result.stderr
    if setup == "outfile":
        assert (tmp_path / "afile").read_bytes() == b"keep"


def test_nothing_already_written_is_lost(text_file, tmp_path):
    out = tmp_path / "keep"
    run_training(text_file, out=out, **{**SMALL, "max_iters": 3})
    before = (out / "ckpt.pt").read_bytes()
    with pytest.raises(FileExistsError, match="already exists; continue it with --resume"):
        run_training(text_file, out=out, **SMALL)
    with pytest.raises(
        ValueError,
        match="another model configuration: block_size: 32 in the checkpoint, 64 now; n_layer: 2 in the checkpoint, 4 now",
    ):
        run_training(text_file, out=out, resume=True, recipe="nanogpt-cpu", max_iters=5, progress=False)
    assert (out / "ckpt.pt").read_bytes() == before


def test_corrupt_checkpoint(text_file, tmp_path, cli):
    out = tmp_path / "corrupt"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=f"checkpoint {out}/ckpt.pt is corrupt or not a gptlib checkpoint"):
        run_training(text_file, out=out, resume=True, **SMALL)
    result = cli("sample", "--ckpt", str(out))
    assert result.returncode == 2 and "is corrupt or not a gptlib checkpoint" in result.stderr


def test_prompt_outside_the_char_vocabulary(text_file, tmp_path, cli):
    out = tmp_path / "vocab"
    run_training(text_file, out=out, **{**SMALL, "max_iters": 2})
    result = cli("sample", "--ckpt", str(out), "--prompt", "Ωmega")
    assert result.returncode == 2
    assert "1 character(s) not in this tokenizer's vocabulary" in result.stderr and "'Ω'" in result.stderr


def test_two_processes_match_one_with_the_same_global_batch(text_file, tmp_path, cli):
    common = ["--data", str(text_file), "--preset", "tiny", "--max-iters", "6", "--quiet", "--device", "cpu"]
    one = cli("train", *common, "--out", str(tmp_path / "one"))  # in this process; torchrun starts two
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "gptlib",
            "train",
            *common,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_checkpoint(tmp_path / "one" / "ckpt.pt")
    b = load_checkpoint(tmp_path / "two" / "ckpt.pt")
    assert b["step"] == 6
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], atol=1e-5, rtol=1e-4)
    assert abs(a["history"][-1]["val_loss"] - b["history"][-1]["val_loss"]) < 1e-3


def untrained_val_loss(text_file, ckpt, batches):
    """The validation loss training started from: the model as run_training initialises it,
    on the first batches of the trainer's own evaluation (the same generator seed)."""
    ids, _ = encode_text(read_text(text_file), ckpt["tokenizer"]["kind"], ckpt["tokenizer"].get("chars"))
    _, val = train_val_split(ids)
    cfg = TrainConfig(**ckpt["train_config"])
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig(**ckpt["model_config"]))
    return estimate_loss(model, val, cfg.batch_size, batches, seed=cfg.seed + 2)


def test_gpt2_tokenizer_training_and_sampling(text_file, tmp_path, cli):
    out = tmp_path / "bpe"
    history = run_training(text_file, tokenizer="gpt2", out=out, **{**SMALL, "max_iters": 3})
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["tokenizer"] == {"kind": "gpt2"} and ckpt["model_config"]["vocab_size"] == 50257
    # 3 steps, still warming up, lower it by about 0.18 from ln(50257) = 10.8. (4 of the 20
    # evaluation batches suffice: an untrained model's loss hardly varies from batch to batch.)
    assert history[-1]["val_loss"] < untrained_val_loss(text_file, ckpt, batches=4) - 0.1
    result = cli("sample", "--ckpt", str(out), "--prompt", "ROMEO:", "--tokens", "5")
    assert result.returncode == 0 and result.stdout.startswith("ROMEO:") and result.stdout.endswith("\n")


def test_sample_from_the_bundled_model(cli):
    result = cli(
        "sample", "--pretrained", "shakespeare-char", "--prompt", "JULIET:\n", "--tokens", "40", "--temperature", "0"
    )
    assert result.returncode == 0, result.stderr
    # The prompt, 40 generated characters, print's newline.
    assert result.stdout.startswith("JULIET:\n") and len(result.stdout) == len("JULIET:\n") + 40 + 1
    both = cli("sample", "--pretrained", "shakespeare-char", "--ckpt", "out")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(batch_size=0), "TrainConfig.batch_size must be an int >= 1, got 0"),
        (dict(max_iters=2.5), "TrainConfig.max_iters must be an int >= 1, got 2.5"),
        (dict(eval_interval=True), "TrainConfig.eval_interval must be an int >= 1, got True"),
        (dict(grad_accum=0), "TrainConfig.grad_accum must be an int >= 1, got 0"),
        (dict(warmup_iters=-1), "TrainConfig.warmup_iters must be an int >= 0, got -1"),
        (dict(learning_rate=0.0), "need 0 <= min_lr <= learning_rate and learning_rate > 0"),
        (dict(min_lr=1.0), "got learning_rate=0.001, min_lr=1.0"),
        (dict(max_seconds=0), "TrainConfig.max_seconds must be > 0, got 0"),
        (dict(batch_size=12, grad_accum=5), "batch_size 12 does not split into grad_accum=5 equal micro-batches"),
        (dict(schedule="epochs"), "TrainConfig.schedule must be 'steps' or 'time', got 'epochs'"),
        (dict(schedule="time"), "schedule='time' decays the learning rate over max_seconds: set max_seconds"),
    ],
)
def test_train_config_names_each_bad_value(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**changes)


def test_pick_device():
    from gptlib.train import pick_device

    assert pick_device("cpu") == "cpu" and pick_device("auto") in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="unknown device 'tpu'; choose auto, cpu, cuda or mps"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available on this machine"):
            pick_device("cuda")


def test_unknown_recipe(text_file, tmp_path):
    with pytest.raises(ValueError, match="unknown recipe 'fast'; known recipes: tuned-cpu, nanogpt-cpu, bundled-char"):
        run_training(text_file, recipe="fast", out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_time_schedule_follows_the_fraction_of_the_budget():
    cfg = TrainConfig(schedule="time", max_seconds=100.0, learning_rate=1e-3, min_lr=1e-4, warmup_iters=10)
    assert cfg.lr_at(0, 0.0) == pytest.approx(1e-3 / 11)  # warmup is counted in steps
    assert cfg.lr_at(10, 0.0) == pytest.approx(1e-3)
    assert cfg.lr_at(10**6, 50.0) == pytest.approx(0.55e-3)  # half the budget: half way down the cosine
    assert cfg.lr_at(5, 99.0) == pytest.approx(1e-3 * 6 / 11)  # still warming up: the step decides
    assert cfg.lr_at(10**6, 100.0) == cfg.lr_at(10**6, 500.0) == pytest.approx(1e-4)
    lrs = [cfg.lr_at(1000, t) for t in range(0, 101, 5)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_budget_recipe_sizes_the_model_to_the_budget():
    from gptlib.train import budget_recipe

    sizes = []
    for seconds in (20, 180, 3600):
        shape, cfg = budget_recipe(seconds)
        assert cfg.schedule == "time" and cfg.max_seconds == seconds
        sizes.append(12 * shape["n_layer"] * shape["n_embd"] ** 2 * shape["block_size"])
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # a bigger budget affords a bigger model
    with pytest.raises(ValueError, match="a time budget must be a number of seconds > 0, got -5"):
        budget_recipe(-5)


class SimulatedClock:
    """Stands in for the trainer's ``time``: a step takes step_s and an evaluation eval_s,
    however fast the machine is."""

    def __init__(self, monkeypatch, step_s: float, eval_s: float):
        import gptlib.trainer

        self.now = 0.0
        monkeypatch.setattr(gptlib.trainer, "time", self)
        for method, seconds in (("train_step", step_s), ("estimate_loss", eval_s)):
            monkeypatch.setattr(Trainer, method, self.taking(getattr(Trainer, method), seconds))

    def perf_counter(self) -> float:
        return self.now

    def taking(self, method, seconds):
        def timed(trainer):
            self.now += seconds
            return method(trainer)

        return timed


def test_max_seconds_is_a_budget_that_includes_the_final_evaluation(text_file, tmp_path, monkeypatch):
    SimulatedClock(monkeypatch, step_s=0.05, eval_s=0.5)
    history = run_training(text_file, out=tmp_path / "budget", max_seconds=3.0, preset="tiny", progress=False)
    ckpt = load_checkpoint(tmp_path / "budget")
    assert ckpt["train_config"]["schedule"] == "time" and ckpt["train_config"]["max_seconds"] == 3.0
    assert history[-1]["step"] < ckpt["train_config"]["max_iters"]  # it stopped by time, not by steps
    # It stops when one more step (0.05 s) and the final evaluation (not yet timed: estimated
    # as 2 x 20 forward passes, a third of a step each, 0.67 s) would not fit: after step 46,
    # at 2.3 s. The evaluation then takes 0.5 s: 2.8 s in all, within the 3 s.
    assert (history[-1]["step"], history[-1]["elapsed_s"]) == (46, 2.8)
    assert history[-1]["lr"] < ckpt["train_config"]["learning_rate"] / 2  # decayed by the end of the budget

    # With a recipe (or --max-iters) the budget is only a hard stop on its step schedule.
    stopped = run_training(
        text_file,
        out=tmp_path / "stop",
        recipe="tuned-cpu",
        max_iters=10**6,
        max_seconds=1.0,
        preset="tiny",
        progress=False,
    )
    config = TrainConfig(**load_checkpoint(tmp_path / "stop")["train_config"])
    assert config.schedule == "steps" and stopped[-1]["elapsed_s"] <= 1.0
    assert stopped[-1]["lr"] == config.lr_at(stopped[-1]["step"] - 1)  # the step schedule's, still warming up


def test_training_stops_when_a_step_and_the_final_evaluation_would_not_fit(tiny_model):
    data = torch.arange(400) % 512
    trainer = Trainer(tiny_model, data, data, TrainConfig(max_seconds=4.0, schedule="time", eval_iters=3))
    trainer.step, trainer.eval_seconds = 10, 0.5
    trainer.elapsed_s = 3.0  # 0.3 s per step: 3.0 + 0.3 + 0.5 = 3.8 fits in 4
    assert not trainer.out_of_time()
    trainer.elapsed_s = 3.3  # 0.33 s per step: 3.3 + 0.33 + 0.5 = 4.13 does not
    assert trainer.out_of_time()
    # Before any evaluation is timed, it is estimated as 2 x 3 forward passes, each a third
    # of a step: 0.6 s here, so 3.0 + 0.3 + 0.6 = 3.9 fits and 3.1 + 0.31 + 0.62 = 4.03 does not.
    trainer.eval_seconds = 0.0
    trainer.elapsed_s = 3.0
    assert not trainer.out_of_time()
    trainer.elapsed_s = 3.1
    assert trainer.out_of_time()
    trainer.config = TrainConfig()  # no budget: never out of time
    assert not trainer.out_of_time()


def test_grad_accum_equals_one_big_batch(text_file):
    """8 sequences in 4 micro-batches of 2 make the same steps as 8 at once."""
    ids = torch.tensor(list(text_file.read_bytes()[:20_000]), dtype=torch.long)
    train, val = train_val_split(ids)
    config = GPTConfig.from_preset("tiny", vocab_size=256)
    states = []
    for accum in (1, 4):
        torch.manual_seed(0)
        trainer = Trainer(
            GPT(config),
            train,
            val,
            TrainConfig(batch_size=8, max_iters=5, grad_accum=accum, eval_interval=5, eval_iters=2, warmup_iters=1),
        )
        trainer.train(progress=False)
        states.append(trainer.model.state_dict())
    for name in states[0]:
        torch.testing.assert_close(states[1][name], states[0][name], atol=1e-5, rtol=1e-4)  # Adam: rounding
    # ...and not the same as 2 sequences at a time (the test can tell batches apart)
    torch.manual_seed(0)
    small = Trainer(
        GPT(config), train, val, TrainConfig(batch_size=2, max_iters=5, eval_interval=5, eval_iters=2, warmup_iters=1)
    )
    small.train(progress=False)
    assert not torch.allclose(small.model.transformer.wte.weight, states[0]["transformer.wte.weight"], atol=1e-4)


def test_grad_accum_from_the_command_line(text_file, tmp_path, cli):
    runs = {}
    for accum in ("1", "3"):
        out = tmp_path / f"acc{accum}"
        result = cli(*tiny_train_args(text_file, out, "--max-iters", "4", "--batch-size", "6", "--grad-accum", accum))
        assert result.returncode == 0, result.stderr
        runs[accum] = load_checkpoint(out)
    assert runs["3"]["train_config"]["grad_accum"] == 3 and runs["3"]["train_config"]["batch_size"] == 6
    for name, weight in runs["1"]["model"].items():  # the same steps, up to float rounding
        torch.testing.assert_close(runs["3"]["model"][name], weight, atol=1e-5, rtol=1e-4)
    bad = cli(*tiny_train_args(text_file, tmp_path / "bad", "--batch-size", "6", "--grad-accum", "4"))
    assert bad.returncode == 2 and "batch_size 6 does not split into grad_accum=4" in bad.stderr


def test_log_rows_after_a_resume_do_not_repeat_steps(text_file, tmp_path):
    out = tmp_path / "log"
    run_training(
        text_file, out=out, max_iters=12, eval_interval=4, **{k: v for k, v in SMALL.items() if k != "max_iters"}
    )
    # As after a crash between an evaluation's log row and the end: rows for steps the
    # checkpoint does not hold, and half a line.
    ckpt = load_checkpoint(out)
    ckpt["history"] = ckpt["history"][:1]
    ckpt_step = ckpt["history"][0]["step"]
    with open(out / "log.jsonl", "a") as f:
        f.write('{"step": 16, "train_lo')
    from gptlib.checkpoint import save_atomically

    # A checkpoint at step 4 (rewind the saved history and step as a crash would leave them).
    state = load_checkpoint(out)
    state["step"], state["history"] = ckpt_step, ckpt["history"]
    save_atomically(state, out / "ckpt.pt")
    run_training(text_file, out=out, resume=True, max_iters=16, progress=False)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 8, 12, 16]
