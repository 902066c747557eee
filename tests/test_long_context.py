"""scripts/train_long_context.py: its probe strings, its settings checks, a tiny run that is
the same twice, and the log it shipped in gptlib/data/long_context; and the in-context
learning score that scripts/train_induction_model.py logs, against the shipped model."""

import dataclasses
import importlib.util
import json
import sys

import pytest
import torch

from gptlib.dataset import read_text, shakespeare_path, train_val_split
from gptlib.interpret import in_context_score, loss_by_context, spread_windows
from gptlib.pretrained import data_path, load_induction_model
from gptlib.tokenizer import CharTokenizer

from .conftest import ROOT


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_long_context", ROOT / "scripts" / "train_long_context.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_copy_probe_has_one_earlier_occurrence_for_every_character(script):
    seqs = script.distinct_repeats(83, 50, 8, torch.Generator().manual_seed(0))
    assert seqs.shape == (8, 100)
    assert torch.equal(seqs[:, :50], seqs[:, 50:])
    assert all(len(set(row[:50].tolist())) == 50 for row in seqs)  # no character twice inside one copy
    assert int(seqs.max()) < 83
    assert len({tuple(row.tolist()) for row in seqs}) == 8  # different strings
    with pytest.raises(ValueError, match=r"1 <= period <= vocab_size = 83"):
        script.distinct_repeats(83, 84, 1, torch.Generator())


def test_settings_the_probes_cannot_use_are_named(script):
    with pytest.raises(ValueError, match=r"n_layer >= 2, got 1"):
        script.Recipe(n_layer=1).check(83)
    with pytest.raises(ValueError, match=r"probe_period 70 twice does not fit in block_size 128"):
        script.Recipe(block_size=128, probe_period=70, icl_late=(119, 128)).check(83)
    with pytest.raises(ValueError, match=r"icl_late \(247, 256\) needs 1 <= first <= last <= block_size 128"):
        script.Recipe(block_size=128, text_period=60).check(83)
    with pytest.raises(ValueError, match=r"probe_period must be 2..83"):
        script.Recipe(probe_period=90).check(83)


TINY = dict(
    n_layer=2,
    n_head=2,
    n_embd=16,
    block_size=32,
    batch_size=2,
    iters=4,
    probe_every=2,
    probe_period=10,
    probe_count=2,
    text_period=12,
    icl_early=(3, 6),
    icl_late=(29, 32),
    icl_windows=4,
)


def test_a_tiny_run_is_the_same_twice(script):
    torch.set_num_threads(1)
    text = (ROOT / "gptlib" / "data" / "shakespeare" / "shakespeare.txt").read_text()[:20_000]
    recipe = script.Recipe(**TINY)
    (m1, log1), (m2, log2) = script.run(recipe, None, text=text), script.run(recipe, None, text=text)
    assert [row["step"] for row in log1] == [0, 2, 4]
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    clock = ("wall_s", "cpu_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in clock} for r in log1] == [
        {k: v for k, v in r.items() if k not in clock} for r in log2
    ]
    last = log1[-1]
    assert len(last["induction_scores"]) == 2 and len(last["induction_scores"][0]) == 2  # [L][H]
    assert len(last["loss_by_context_band"]) == 16
    assert last["induction_score_later"] == pytest.approx(max(last["induction_scores"][1]), abs=1e-3)


def shipped_log():
    with open(data_path("long_context", "log.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def held_out_ids():
    text = read_text(shakespeare_path())
    return train_val_split(torch.tensor(CharTokenizer(text).encode(text)))[1]


def test_the_induction_log_ends_with_the_shipped_models_icl_score(held_out_ids):
    """The last probe of the 2-layer model's log is the shipped model's score, computed here
    again: 512 windows of the held-out text, 55 to 64 characters of context minus 6 to 10."""
    model, log, _ = load_induction_model()
    windows = spread_windows(held_out_ids, model.config.block_size + 1, 512)
    score, se = in_context_score(loss_by_context(model, windows), (6, 10), (55, 64))
    assert all("icl_score" in row and "icl_se" in row for row in log)
    assert log[-1]["icl_score"] == pytest.approx(score, abs=2e-4) and log[-1]["icl_se"] == pytest.approx(se, abs=2e-4)


def test_the_shipped_log_is_the_default_recipes_run(script):
    with open(data_path("long_context", "recipe.json")) as f:
        recipe = json.load(f)
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(script.Recipe()).items()}
    assert recipe == defaults  # made by the command in SOURCE.md, with no settings changed
    log = shipped_log()
    assert [row["step"] for row in log] == list(range(0, recipe["iters"] + 1, recipe["probe_every"]))
    L, H = recipe["n_layer"], recipe["n_head"]
    for row in log:
        assert len(row["induction_scores"]) == L and all(len(r) == H for r in row["induction_scores"])
        # the best scores to 4 decimals, every head's to 3
        assert row["induction_score_later"] == pytest.approx(max(max(r) for r in row["induction_scores"][1:]), abs=1e-3)
        assert row["prev_token_score_l0"] == pytest.approx(max(row["prev_token_scores"][0]), abs=1e-3)
    cpu = [row["cpu_s"] for row in log[1:]]
    assert cpu == sorted(cpu)


def test_a_run_with_an_out_folder_writes_the_model_recipe_and_log(script, tmp_path):
    torch.set_num_threads(1)
    text = (ROOT / "gptlib" / "data" / "shakespeare" / "shakespeare.txt").read_text()[:20_000]
    recipe = script.Recipe(**TINY)
    model, log = script.run(recipe, tmp_path, text=text, snapshot_every=4)
    from gptlib.pretrained import load_safetensors_model

    loaded, meta = load_safetensors_model(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert json.loads(meta["recipe"]) == json.loads((tmp_path / "recipe.json").read_text())
    assert [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()] == log
    assert (tmp_path / "snapshots" / "step000004" / "model.safetensors").is_file()
    assert not (tmp_path / "snapshots" / "step000002").exists()
