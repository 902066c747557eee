"""The command line, run in this process through gptlib.cli.main (one test runs it as a program)."""

import subprocess
import sys

import pytest

from gptlib.cli import main

from .conftest import tiny_train_args

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def cli(capsys, *args):
    """`python -m gptlib ARGS`, run in this process: (exit status, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_python_dash_m_gptlib_runs_and_prints_the_total():
    result = subprocess.run(
        [sys.executable, "-m", "gptlib", "params", "gpt2"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "total 124,439,808"
    assert any(line.startswith("wte (token embeddings") and line.endswith("38,597,376") for line in lines)


@pytest.mark.parametrize("name, total", [("gpt2-512", "124,046,592"), ("gpt2-xl", "1,557,611,200")])
def test_params_in_process(capsys, name, total):
    assert main(["params", name]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"total {total}"


def test_trace_prints_the_shape_table(capsys):
    code, out, err = cli(capsys, "trace", "gpt2-512", "--batch", "2")
    assert code == 0, err
    assert "token ids            [2, 512]" in out
    assert "block 11" in out
    assert out.strip().splitlines()[-1].startswith("logits               [2, 512, 50257]")


def test_unknown_preset_is_a_clear_error(capsys):
    code, out, err = cli(capsys, "params", "gpt5")
    assert code == 2 and out == ""
    assert err.startswith("error: unknown preset 'gpt5'; known presets: gpt2, gpt2-512") and err.count("\n") == 1


def test_trace_too_long_is_a_clear_error(capsys):
    assert main(["trace", "tiny", "--seq-len", "33"]) == 2
    assert "sequence length 33 is longer than block_size 32" in capsys.readouterr().err


# -- sample: the bundled model, a few tokens, every sampling flag --------------------------------
def sample(capsys, *flags):
    """The text `python -m gptlib sample --pretrained shakespeare-char --tokens 12 FLAGS` prints."""
    code, out, err = cli(capsys, "sample", "--pretrained", "shakespeare-char", "--tokens", "12", *flags)
    assert code == 0, err
    return out


def test_the_seed_decides_the_sample(capsys):
    first = sample(capsys, "--seed", "1")
    assert sample(capsys, "--seed", "1") == first
    assert sample(capsys, "--seed", "2") != first
    assert len(first.removesuffix("\n")) == 1 + 12  # the default start (a newline) and 12 characters


def test_top_k_1_and_a_tiny_top_p_are_greedy(capsys):
    """Keeping only the most likely token leaves nothing to chance: the greedy text, for any seed."""
    greedy = sample(capsys, "--temperature", "0")
    assert sample(capsys, "--top-k", "1", "--seed", "1") == greedy
    assert sample(capsys, "--top-k", "1", "--seed", "2") == greedy
    assert sample(capsys, "--top-p", "0.001", "--seed", "2") == greedy
    assert sample(capsys, "--seed", "2") != greedy  # without them, this seed strays from greedy


@pytest.mark.parametrize("top_p", ["0", "1.5", "-0.5"])
def test_top_p_out_of_range_is_a_clear_error(capsys, top_p):
    code, out, err = cli(capsys, "sample", "--pretrained", "shakespeare-char", "--tokens", "5", "--top-p", top_p)
    assert code == 2 and out == ""
    assert err == f"error: top_p must be in (0, 1], got {float(top_p)}\n"


def test_top_k_below_1_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sample", "--pretrained", "shakespeare-char", "--top-k", "0"])
    assert info.value.code == 2
    assert "argument --top-k: 0 must be at least 1" in capsys.readouterr().err


def test_an_empty_prompt_is_a_clear_error(capsys):
    """An empty --prompt is most likely an empty variable in a script: it is refused, and the
    message says how to get the default start, rather than silently using it."""
    code, out, err = cli(capsys, "sample", "--pretrained", "shakespeare-char", "--prompt", "")
    assert code == 2 and out == ""
    assert err == (
        "error: the prompt is empty; give at least one character, or leave out the prompt (--prompt) "
        "to start from a newline (a character-level model) or <|endoftext|> (a GPT-2 tokenizer model)\n"
    )


# -- train --data ------------------------------------------------------------------------------
def test_train_data_that_is_a_folder(capsys, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    code, out, err = cli(capsys, *tiny_train_args(folder, tmp_path / "run", "--max-iters", "1"))
    assert code == 2 and err == f"error: data file {folder} is a folder; give a UTF-8 text file\n"
    assert not (tmp_path / "run").exists()  # nothing was written


def test_resuming_with_data_that_is_a_folder_keeps_the_checkpoint(capsys, tmp_path):
    text = tmp_path / "small.txt"
    text.write_text("To be, or not to be, that is the question:\n" * 100)
    assert cli(capsys, *tiny_train_args(text, tmp_path / "run", "--max-iters", "1"))[0] == 0
    before = (tmp_path / "run" / "ckpt.pt").read_bytes()
    code, _, err = cli(capsys, *tiny_train_args(tmp_path, tmp_path / "run", "--max-iters", "2", "--resume"))
    assert code == 2 and err == f"error: data file {tmp_path} is a folder; give a UTF-8 text file\n"
    assert (tmp_path / "run" / "ckpt.pt").read_bytes() == before
