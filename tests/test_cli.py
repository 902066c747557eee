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


# -- Llama's pieces from the command line ---------------------------------------------------------
LLAMA_FLAGS = ("--position", "rope", "--norm", "rmsnorm", "--mlp", "swiglu", "--n-kv-head", "2", "--no-tie-embeddings")


def test_params_counts_a_model_with_llamas_options(capsys):
    import torch

    from gptlib import GPT, GPTConfig

    code, out, err = cli(capsys, "params", "gpt2-512", *LLAMA_FLAGS, "--no-bias")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].endswith(
        "vocab_size=50257, position=rope, norm=rmsnorm, mlp=swiglu, n_kv_head=2, tie_embeddings=False"
    )
    config = GPTConfig.from_preset(
        "gpt2-512", position="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=2, tie_embeddings=False, bias=False
    )
    with torch.device("meta"):
        total = GPT(config).num_parameters()
    assert (
        lines[-1] == f"total {total:,}"
        and total == 2 * 50257 * 768 + 12 * (768 * 1024 + 768 * 768 + 3 * 768 * 2048 + 2 * 768) + 768
    )
    assert not [line for line in lines if line.startswith("wpe")]
    assert any(line.startswith("lm_head (output embeddings, not tied to wte)") for line in lines)


def test_params_of_a_preset_alone_is_unchanged(capsys):
    code, out, _ = cli(capsys, "params", "gpt2-512")
    assert code == 0 and out.splitlines()[0] == (
        "gpt2-512: n_layer=12, n_head=12, n_embd=768, head_size=64, block_size=512, vocab_size=50257"
    )


def test_trace_with_llamas_options(capsys):
    code, out, err = cli(capsys, "trace", "tiny", "--seq-len", "8", *LLAMA_FLAGS)
    assert code == 0, err
    assert "position embeddings" not in out
    assert "4 heads x 16 (2 key/value heads), rotary positions, mlp 64->256->64 (SwiGLU)" in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--position", "alibi"], "argument --position: invalid choice: 'alibi' (choose from 'learned', 'rope')"),
        (["--mlp", "relu"], "argument --mlp: invalid choice: 'relu' (choose from 'gelu', 'swiglu')"),
        (["--n-kv-head", "0"], "argument --n-kv-head: 0 must be at least 1"),
        (["--mlp-hidden", "0"], "argument --mlp-hidden: 0 must be at least 1"),
        (["--norm-eps=0"], "argument --norm-eps: 0.0 must be greater than 0"),
    ],
)
def test_bad_model_options_are_refused_by_the_parser(capsys, flags, message):
    with pytest.raises(SystemExit):
        main(["params", "tiny", *flags])
    assert message in capsys.readouterr().err


def test_options_that_do_not_fit_the_preset_are_a_clear_error(capsys):
    code, out, err = cli(capsys, "params", "tiny", "--n-kv-head", "3")
    assert code == 2 and out == ""
    assert err.startswith("error: GPTConfig.n_head=4 is not divisible by n_kv_head=3") and "among 1, 2, 4" in err
    code, _, err = cli(capsys, "params", "shakespeare-char", "--position", "rope", "--n-kv-head", "4")
    assert code == 2 and "n_head=6 is not divisible by n_kv_head=4" in err and "among 1, 2, 3, 6" in err


def test_train_then_sample_a_model_with_llamas_options(capsys, tmp_path):
    from gptlib.checkpoint import load_checkpoint, model_from_checkpoint

    text = tmp_path / "small.txt"
    text.write_text("To be, or not to be, that is the question:\n" * 100)
    run = tmp_path / "run"
    code, out, err = cli(capsys, *tiny_train_args(text, run, "--max-iters", "3", *LLAMA_FLAGS, "--no-bias"))
    assert code == 0, err
    model = model_from_checkpoint(load_checkpoint(run))
    c = model.config
    assert (c.position, c.norm, c.mlp, c.n_kv_head, c.tie_embeddings, c.bias) == (
        "rope",
        "rmsnorm",
        "swiglu",
        2,
        False,
        False,
    )
    assert "wpe" not in model.transformer and model.lm_head.weight is not model.transformer.wte.weight
    code, out, err = cli(capsys, "sample", "--ckpt", str(run), "--prompt", "To", "--tokens", "12")
    assert code == 0 and out.startswith("To") and len(out) == len("To") + 12 + 1, err
    # the same flags continue the run; other ones name the difference
    assert cli(capsys, *tiny_train_args(text, run, "--max-iters", "4", "--resume", *LLAMA_FLAGS, "--no-bias"))[0] == 0
    code, _, err = cli(capsys, *tiny_train_args(text, run, "--max-iters", "5", "--resume", "--n-kv-head", "4"))
    assert code == 2 and "another model configuration: " in err and "n_kv_head: 2 in the checkpoint, 4 now" in err
