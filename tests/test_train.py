"""The trainer and the train/sample command line, on small data so that they run in seconds."""

import json
import math
import re
import subprocess
import sys

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.dataset import get_batch, read_text, shakespeare_path, train_val_split
from gptlib.train import DEFAULT_RECIPE, RECIPES, TrainConfig, Trainer, load_checkpoint, make_optimizer, run_training

from .conftest import tiny_train_args

SMALL = dict(preset="tiny", max_iters=12, progress=False)


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


def test_resuming_after_an_interruption_continues_exactly(text_file, tmp_path, monkeypatch):
    straight = run_training(text_file, out=tmp_path / "straight", **{**SMALL, "max_iters": 24})

    original = Trainer.next_batch

    def interrupt_at_step_10(self):
        if self.step == 10:
            raise KeyboardInterrupt  # as if the reader pressed Ctrl-C
        return original(self)

    monkeypatch.setattr(Trainer, "next_batch", interrupt_at_step_10)
    with pytest.raises(KeyboardInterrupt):
        run_training(text_file, out=tmp_path / "stopped", **{**SMALL, "max_iters": 24})
    assert load_checkpoint(tmp_path / "stopped" / "ckpt.pt")["step"] == 10
    monkeypatch.setattr(Trainer, "next_batch", original)

    resumed = run_training(text_file, out=tmp_path / "stopped", resume=True, preset="tiny", progress=False)
    assert [r["step"] for r in resumed] == [24]  # the schedule of the checkpoint: 24 steps
    assert resumed[-1]["train_loss"] == straight[-1]["train_loss"]
    assert resumed[-1]["val_loss"] == straight[-1]["val_loss"]
    a = load_checkpoint(tmp_path / "straight" / "ckpt.pt")["model"]
    b = load_checkpoint(tmp_path / "stopped" / "ckpt.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_default_recipe_is_the_tuned_one():
    model_shape, config = RECIPES[DEFAULT_RECIPE]
    assert DEFAULT_RECIPE == "tuned-cpu" and config.learning_rate > RECIPES["nanogpt-cpu"][1].learning_rate
    assert config.max_iters >= 1 and model_shape["block_size"] == 64


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gptlib", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_command_line_train_then_sample(text_file, tmp_path):
    out = tmp_path / "cli"
    result = cli(
        "train", "--data", str(text_file), "--preset", "tiny", "--max-iters", "5", "--out", str(out), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert "step 5: train loss" in result.stdout
    assert (out / "ckpt.pt").is_file() and len((out / "log.jsonl").read_text().splitlines()) == 1
    sample = cli("sample", "--ckpt", str(out), "--prompt", "ROMEO:", "--tokens", "20")
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("ROMEO:") and len(sample.stdout.rstrip("\n")) >= 20
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
def test_command_line_errors(text_file, tmp_path, setup, args, message):
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


def test_corrupt_checkpoint(text_file, tmp_path):
    out = tmp_path / "corrupt"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=f"checkpoint {out}/ckpt.pt is corrupt or not a gptlib checkpoint"):
        run_training(text_file, out=out, resume=True, **SMALL)
    result = cli("sample", "--ckpt", str(out))
    assert result.returncode == 2 and "is corrupt or not a gptlib checkpoint" in result.stderr


def test_prompt_outside_the_char_vocabulary(text_file, tmp_path):
    out = tmp_path / "vocab"
    run_training(text_file, out=out, **{**SMALL, "max_iters": 2})
    result = cli("sample", "--ckpt", str(out), "--prompt", "Ωmega")
    assert result.returncode == 2
    assert "1 character(s) not in this tokenizer's vocabulary" in result.stderr and "'Ω'" in result.stderr


def test_two_processes_match_one_with_the_same_global_batch(text_file, tmp_path):
    common = ["--data", str(text_file), "--preset", "tiny", "--max-iters", "6", "--quiet", "--device", "cpu"]
    one = cli("train", *common, "--out", str(tmp_path / "one"))
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
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_checkpoint(tmp_path / "one" / "ckpt.pt")
    b = load_checkpoint(tmp_path / "two" / "ckpt.pt")
    assert b["step"] == 6
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], atol=1e-5, rtol=1e-4)
    assert abs(a["history"][-1]["val_loss"] - b["history"][-1]["val_loss"]) < 1e-3


def test_gpt2_tokenizer_training_and_sampling(text_file, tmp_path):
    out = tmp_path / "bpe"
    history = run_training(text_file, tokenizer="gpt2", out=out, **{**SMALL, "max_iters": 3})
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["tokenizer"] == {"kind": "gpt2"} and ckpt["model_config"]["vocab_size"] == 50257
    assert history[-1]["val_loss"] < math.log(50257) + 1
    result = cli("sample", "--ckpt", str(out), "--prompt", "ROMEO:", "--tokens", "5")
    assert result.returncode == 0 and result.stdout.startswith("ROMEO:")


def test_sample_from_the_bundled_model():
    result = cli(
        "sample", "--pretrained", "shakespeare-char", "--prompt", "JULIET:\n", "--tokens", "40", "--temperature", "0"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("JULIET:\n") and len(result.stdout) > 40
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


def test_max_seconds_is_a_budget_that_includes_the_final_evaluation(text_file, tmp_path):
    history = run_training(text_file, out=tmp_path / "budget", max_seconds=3.0, preset="tiny", progress=False)
    ckpt = load_checkpoint(tmp_path / "budget")
    assert ckpt["train_config"]["schedule"] == "time" and ckpt["train_config"]["max_seconds"] == 3.0
    assert 1 <= history[-1]["step"] < 10**9  # it stopped by time, not by steps
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
    assert stopped[-1]["step"] < 10**6 and load_checkpoint(tmp_path / "stop")["train_config"]["schedule"] == "steps"


def test_training_stops_when_a_step_and_the_final_evaluation_would_not_fit(tiny_model):
    data = torch.arange(400) % 512
    trainer = Trainer(tiny_model, data, data, TrainConfig(max_seconds=4.0, schedule="time"))
    trainer.step, trainer.eval_seconds = 10, 0.5
    trainer.elapsed_s = 3.0  # 0.3 s per step: 3.0 + 0.3 + 0.5 = 3.8 fits in 4
    assert not trainer.out_of_time()
    trainer.elapsed_s = 3.3  # 0.33 s per step: 3.3 + 0.33 + 0.5 = 4.13 does not
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


def test_grad_accum_from_the_command_line(text_file, tmp_path):
    runs = {}
    for accum in ("1", "3"):
        out = tmp_path / f"acc{accum}"
        result = cli(*tiny_train_args(text_file, out, "--max-iters", "4", "--batch-size", "6", "--grad-accum", accum))
        assert result.returncode == 0, result.stderr
        runs[accum] = load_checkpoint(out)
    assert runs["3"]["train_config"]["grad_accum"] == 3 and runs["3"]["train_config"]["batch_size"] == 6
    assert abs(runs["1"]["history"][-1]["val_loss"] - runs["3"]["history"][-1]["val_loss"]) < 1e-3
    bad = cli(*tiny_train_args(text_file, tmp_path / "bad", "--batch-size", "6", "--grad-accum", "4"))
    assert bad.returncode == 2 and "batch_size 6 does not split into grad_accum=4" in bad.stderr


def test_ctrl_c_exits_with_130_and_keeps_the_last_step(text_file, tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "ctrlc"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gptlib",
            *tiny_train_args(text_file, out, "--max-iters", "100000", "--eval-interval", "5"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 240
    while not ((out / "log.jsonl").exists() and (out / "log.jsonl").read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"interrupted; the last finished step is saved in {out / 'ckpt.pt'}: continue with --resume" in err
    assert "Traceback" not in err
    ckpt = load_checkpoint(out)
    assert ckpt["step"] >= 5
    resumed = run_training(text_file, out=out, resume=True, max_iters=ckpt["step"] + 2, progress=False)
    assert resumed[-1]["step"] == ckpt["step"] + 2


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
