"""The ONNX export that the book's live pages run: the same numbers as gptlib, the same errors.

The exported file is run with onnxruntime (Python), the engine the pages run in the
browser as onnxruntime-web. Exporting takes tens of seconds, so the bundled model is
exported once per test session, through the command line, and every test reads that file.
"""

import contextlib
import io
import json
import os
from pathlib import Path

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.cli import main
from gptlib.dataset import read_text, shakespeare_path
from gptlib.export import (
    FORMAT,
    ROLE_THRESHOLD,
    export_onnx,
    head_roles,
    load_char_model,
    load_onnx,
    real_text_windows,
    sha256_of,
)
from gptlib.interpret import attention_patterns, previous_token_scores
from gptlib.pretrained import load_shakespeare_char
from gptlib.tokenizer import CharTokenizer
from gptlib.train import run_training

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

TOL = dict(atol=1e-4, rtol=0)


def run_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bundled():
    model, tok, _ = load_shakespeare_char()
    return model, tok


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """python -m gptlib export --pretrained shakespeare-char --onnx DIR/shakespeare-char.onnx,
    once per session: the files the book's pages load."""
    path = tmp_path_factory.mktemp("site") / "shakespeare-char.onnx"
    code, out, err = run_cli("export", "--pretrained", "shakespeare-char", "--onnx", str(path))
    assert code == 0, err
    config = load_shakespeare_char()[0].config
    assert f"logits [B, T, {config.vocab_size}], attention [B, {config.n_layer}, {config.n_head}, T, T]" in out
    return path


def assert_same_as_gptlib(onnx_gpt, model, idx):
    """The exported file's logits and attention for idx [B, T] equal gptlib's."""
    logits, attention = onnx_gpt(idx)
    B, T = idx.shape
    assert logits.shape == (B, T, model.config.vocab_size)
    assert attention.shape == (B, model.config.n_layer, model.config.n_head, T, T)
    with torch.no_grad():
        expected, _ = model(idx)
    torch.testing.assert_close(logits, expected, **TOL)
    for b in range(B):
        torch.testing.assert_close(attention[b], attention_patterns(model, idx[b]), **TOL)


def prompts(tok, block_size):
    """Real lines of the corpus, cut to several lengths up to block_size."""
    text = read_text(shakespeare_path())
    start = text.index("ROMEO")
    known = "".join(c for c in text[start : start + 4 * block_size] if c in tok.stoi)
    return [known[:n] for n in sorted({1, 2, 9, block_size // 2 + 3, block_size})]


def test_logits_and_attention_equal_gptlib(exported, bundled):
    model, tok = bundled
    onnx_gpt = load_onnx(exported)
    for text in prompts(tok, model.config.block_size):
        assert_same_as_gptlib(onnx_gpt, model, torch.tensor([tok.encode(text)]))
        torch.testing.assert_close(onnx_gpt.run_text(text)[0], onnx_gpt(torch.tensor([tok.encode(text)]))[0])


def test_a_batch_of_several_sequences(exported, bundled):
    model, _ = bundled
    idx = torch.randint(
        model.config.vocab_size, (3, model.config.block_size // 2), generator=torch.Generator().manual_seed(1)
    )
    assert_same_as_gptlib(load_onnx(exported), model, idx)


def error_of(call):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    return str(info.value)


def test_bad_input_gets_gptlib_errors(exported, bundled):
    model, tok = bundled
    onnx_gpt = load_onnx(exported)
    block_size, V = model.config.block_size, model.config.vocab_size
    too_long = torch.zeros(1, block_size + 1, dtype=torch.long)
    assert error_of(lambda: onnx_gpt(too_long)) == error_of(lambda: model(too_long))
    assert f"longer than block_size {block_size}" in error_of(lambda: onnx_gpt(too_long))
    assert error_of(lambda: onnx_gpt.run_text("a" * (block_size + 1))) == error_of(lambda: model(too_long))
    outside = torch.tensor([[0, V]])
    assert error_of(lambda: onnx_gpt(outside)) == error_of(lambda: model(outside))
    unknown = next(c for c in "~#%$@é\u00e6" if c not in tok.stoi)
    message = error_of(lambda: onnx_gpt.run_text(f"ROMEO{unknown}"))
    assert message == error_of(lambda: tok.encode(f"ROMEO{unknown}")) and repr(unknown) in message
    assert "empty" in error_of(lambda: onnx_gpt.run_text(""))
    assert "shape (B, T)" in error_of(lambda: onnx_gpt(torch.zeros(4, dtype=torch.long)))


def test_page_meta_describes_the_model(exported, bundled):
    model, tok = bundled
    meta = json.loads(exported.with_suffix(".json").read_text(encoding="utf-8"))
    config = model.config
    assert meta["format"] == FORMAT and meta["onnx"] == exported.name and meta["name"] == "shakespeare-char"
    assert meta["onnx_sha256"] == sha256_of(exported)
    assert meta["chars"] == tok.chars and len(meta["chars"]) == config.vocab_size
    assert meta["config"] == {
        k: getattr(config, k) for k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")
    }
    assert 1 <= len(meta["default_text"]) <= config.block_size and set(meta["default_text"]) <= set(tok.chars)
    heads = meta["heads"]
    assert [(h["layer"], h["head"]) for h in heads] == [
        (layer, head) for layer in range(config.n_layer) for head in range(config.n_head)
    ]
    assert {h["role"] for h in heads} <= {"induction", "previous-token", "other"}
    assert meta["role_threshold"] == ROLE_THRESHOLD


def attend(T: int, *parts) -> torch.Tensor:
    """A [T, T] attention pattern built by hand: parts are (weight, where), and position t
    gives that weight to position where(t)."""
    pattern = torch.zeros(T, T)
    for t in range(T):
        for weight, where in parts:
            pattern[t, where(t)] += weight
    return pattern


def test_head_roles_of_patterns_whose_roles_are_known(monkeypatch):
    """head_roles scores and names heads whose attention is built by hand (standing in for
    the model's), so that each head's scores and role are known without gptlib's scoring."""
    block_size, period = 16, 8  # head_roles repeats period = block_size // 2 random tokens twice
    text = "".join(chr(ord("a") + (i * 7) % 26) for i in range(2000))
    tok = CharTokenizer(text)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=6, n_embd=24))

    def previous(t):  # position 0 has no previous token: it attends to itself
        return max(t - 1, 0)

    def itself(t):
        return t

    def after_last_time(t):  # an induction head's target once the sequence repeats (t >= period)
        return t - period + 1 if t >= period else t

    def patterns(model, idx):  # [L, H, T, T], whatever the tokens
        T = idx.numel()
        heads = [
            attend(T, (1.0, previous)),
            attend(T, (1.0, after_last_time)),
            attend(T, (1.0, itself)),
            attend(T, (0.6, previous), (0.4, itself)),
            attend(T, (0.5, previous), (0.5, after_last_time)),
            attend(T, (0.49, previous), (0.51, itself)),
        ]
        return torch.stack(heads)[None]

    monkeypatch.setattr("gptlib.interpret.attention_patterns", patterns)
    assert ROLE_THRESHOLD == 0.5
    got = [(h["role"], h["previous_token"], h["induction"]) for h in head_roles(model, tok, text)]
    assert got == [
        ("previous-token", 1.0, 0.0),
        ("induction", 0.0, 1.0),
        ("other", 0.0, 0.0),
        ("previous-token", 0.6, 0.0),
        ("induction", 0.5, 0.5),  # both reach the threshold: induction is named first
        ("other", 0.49, 0.0),
    ]


def test_previous_token_scores_in_the_json_are_those_of_the_exported_file(exported, bundled):
    """The page's hints come from the same attention the page draws."""
    model, tok = bundled
    meta = json.loads(exported.with_suffix(".json").read_text(encoding="utf-8"))
    windows = real_text_windows(tok, read_text(shakespeare_path()), model.config.block_size)
    _, attention = load_onnx(exported)(windows)  # [N, L, H, T, T]
    scores = torch.stack([previous_token_scores(a) for a in attention]).mean(0)  # [L, H]
    in_json = torch.tensor([h["previous_token"] for h in meta["heads"]]).view_as(scores)
    torch.testing.assert_close(in_json, scores, atol=1e-3, rtol=0)


def test_export_a_model_the_reader_trained(exported, tmp_path, monkeypatch):
    """export --ckpt RUN --text FILE: the model, its characters, the name and the text for the
    head roles come from the reader's run. Writing the ONNX file is what the bundled model's
    tests check; here a copy of that file stands in, so that the session exports only once."""
    text = tmp_path / "small.txt"
    text.write_text(read_text(shakespeare_path())[:20_000])
    run_training(text, out=tmp_path / "run", preset="tiny", max_iters=2, progress=False)

    def copy_of_the_bundled_export(model, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(exported.read_bytes())
        return path

    monkeypatch.setattr("gptlib.export.export_onnx", copy_of_the_bundled_export)
    onnx_path = tmp_path / "site" / "mine.onnx"
    code, out, err = run_cli("export", "--ckpt", str(tmp_path / "run"), "--onnx", str(onnx_path), "--text", str(text))
    assert code == 0, err
    model, tok, name = load_char_model(tmp_path / "run")
    assert name == "run" and model.config.n_layer == GPTConfig.from_preset("tiny").n_layer
    meta = json.loads(onnx_path.with_suffix(".json").read_text(encoding="utf-8"))
    assert meta["name"] == "run" and meta["chars"] == tok.chars and meta["onnx_sha256"] == sha256_of(onnx_path)
    assert meta["config"]["vocab_size"] == tok.vocab_size and meta["config"]["block_size"] == model.config.block_size
    assert meta["heads"] == head_roles(model, tok, read_text(text))
    assert f"{tok.vocab_size} characters, config, and the role of each of the 8 heads" in out


@pytest.mark.parametrize("name", ["x.json", "x", "x.onnx.txt"])
def test_an_onnx_name_that_does_not_end_in_onnx_writes_nothing(tmp_path, name):
    """The page's JSON is written beside the model, with the name ending in .json: --onnx x.json
    would write the JSON over the model. Such names are refused before anything is written."""
    (tmp_path / "x.json").write_text("the reader's own file")
    code, out, err = run_cli("export", "--pretrained", "shakespeare-char", "--onnx", str(tmp_path / name))
    assert code == 2 and out == ""
    assert err == (
        f"error: the ONNX file {tmp_path / name} does not end in .onnx; give a name ending in .onnx "
        f"(the page's JSON is written beside it, with the same name ending in .json)\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert (tmp_path / "x.json").read_text() == "the reader's own file"


def test_an_onnx_name_linked_to_its_json_writes_nothing(tmp_path):
    (tmp_path / "x.json").write_text("the reader's own file")
    os.symlink(tmp_path / "x.json", tmp_path / "x.onnx")
    code, _, err = run_cli("export", "--pretrained", "shakespeare-char", "--onnx", str(tmp_path / "x.onnx"))
    assert code == 2
    assert err == (
        f"error: {tmp_path / 'x.onnx'} and {tmp_path / 'x.json'} are the same file (a link); "
        f"the model and its JSON need two files\n"
    )
    assert (tmp_path / "x.json").read_text() == "the reader's own file"


def test_text_that_is_a_folder_writes_nothing(tmp_path):
    code, _, err = run_cli(
        "export",
        "--pretrained",
        "shakespeare-char",
        "--onnx",
        str(tmp_path / "site" / "x.onnx"),
        "--text",
        str(tmp_path),
    )
    assert code == 2 and err == f"error: data file {tmp_path} is a folder; give a UTF-8 text file\n"
    assert not (tmp_path / "site").exists()


def test_clear_errors_before_exporting(tmp_path):
    with pytest.raises(TypeError, match="needs a gptlib GPT"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")
    (tmp_path / "site.onnx").mkdir()
    with pytest.raises(
        IsADirectoryError, match=f"^{tmp_path / 'site.onnx'} is a folder; give the name of the ONNX file"
    ):
        export_onnx(GPT(GPTConfig.from_preset("tiny")), tmp_path / "site.onnx")
    tiny = GPT(GPTConfig.from_preset("tiny"))
    torch.save(
        {"model": tiny.state_dict(), "model_config": vars(tiny.config), "step": 0, "tokenizer": {"kind": "gpt2"}},
        tmp_path / "ckpt.pt",
    )
    code, _, err = run_cli("export", "--ckpt", str(tmp_path), "--onnx", str(tmp_path / "x.onnx"))
    assert code == 2 and "uses the 'gpt2' tokenizer; the page's explorers need a character-level model" in err
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(FileNotFoundError, match="no x.json beside"):
        load_onnx(tmp_path / "x.onnx")


def test_a_model_with_options_gpt2_lacks_is_refused_by_name(tmp_path):
    config = GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8, position="rope", norm="rmsnorm")
    with pytest.raises(ValueError, match="position='rope', norm='rmsnorm'"):
        export_onnx(GPT(config), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
