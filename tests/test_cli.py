import subprocess
import sys

import pytest

from gptlib.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "gptlib", *args], capture_output=True, text=True, timeout=120)


def test_params_last_line_is_the_total():
    result = run("params", "gpt2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "total 124,439,808"
    assert any(line.startswith("wte (token embeddings") and line.endswith("38,597,376") for line in lines)


@pytest.mark.parametrize("name, total", [("gpt2-512", "124,046,592"), ("gpt2-xl", "1,557,611,200")])
def test_params_in_process(capsys, name, total):
    assert main(["params", name]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"total {total}"


def test_trace_prints_the_shape_table():
    result = run("trace", "gpt2-512", "--batch", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "token ids            [2, 512]" in out
    assert "block 11" in out
    assert out.strip().splitlines()[-1].startswith("logits               [2, 512, 50257]")


def test_unknown_preset_is_a_clear_error():
    result = run("params", "gpt5")
    assert result.returncode == 2
    assert "unknown preset 'gpt5'; known presets: gpt2, gpt2-512" in result.stderr
    assert "Traceback" not in result.stderr


def test_trace_too_long_is_a_clear_error(capsys):
    assert main(["trace", "tiny", "--seq-len", "33"]) == 2
    assert "sequence length 33 is longer than block_size 32" in capsys.readouterr().err
