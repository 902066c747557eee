"""The ONNX export that the book's live pages run: the same numbers as gptlib, the same errors.

The exported file is run with onnxruntime (Python), the engine the pages run in the
browser as onnxruntime-web. The bundled model is exported once, through the command line.
"""

import contextlib
import io
import json

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.cli import main
from gptlib.dataset import read_text, shakespeare_path
from gptlib.export import FORMAT, ROLE_THRESHOLD, export_onnx, load_char_model, load_onnx, real_text_windows, sha256_of
from gptlib.interpret import attention_patterns, previous_token_scores
from gptlib.pretrained import load_shakespeare_char
from gptlib.train import run_training

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


@pytest.fixture(scope="module")
def exported(tmp_path_factory, bundled):
    """python -m gptlib export --pretrained shakespeare-char --onnx DIR/shakespeare-char.onnx"""
    path = tmp_path_factory.mktemp("site") / "shakespeare-char.onnx"
    code, out, err = run_cli("export", "--pretrained", "shakespeare-char", "--onnx", str(path))
    assert code == 0, err
    config = bundled[0].config
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
    assert meta["format"] == FORMAT and meta["onnx"] == exported.name
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
    for h in heads:
        expected = (
            "induction"
            if h["induction"] >= ROLE_THRESHOLD
            else "previous-token"
            if h["previous_token"] >= ROLE_THRESHOLD
            else "other"
        )
        assert h["role"] == expected, h


def test_previous_token_scores_in_the_json_are_those_of_the_exported_file(exported, bundled):
    """The page's hints come from the same attention the page draws."""
    model, tok = bundled
    meta = json.loads(exported.with_suffix(".json").read_text(encoding="utf-8"))
    windows = real_text_windows(tok, read_text(shakespeare_path()), model.config.block_size)
    _, attention = load_onnx(exported)(windows)  # [N, L, H, T, T]
    scores = torch.stack([previous_token_scores(a) for a in attention]).mean(0)  # [L, H]
    in_json = torch.tensor([h["previous_token"] for h in meta["heads"]]).view_as(scores)
    torch.testing.assert_close(in_json, scores, atol=1e-3, rtol=0)


def test_export_a_model_the_reader_trained(tmp_path):
    text = tmp_path / "small.txt"
    text.write_text(read_text(shakespeare_path())[:20_000])
    run_training(text, out=tmp_path / "run", preset="tiny", max_iters=2, progress=False)
    onnx_path = tmp_path / "site" / "mine.onnx"
    code, _, err = run_cli("export", "--ckpt", str(tmp_path / "run"), "--onnx", str(onnx_path), "--text", str(text))
    assert code == 0, err
    model, tok, name = load_char_model(tmp_path / "run")
    assert name == "run" and json.loads(onnx_path.with_suffix(".json").read_text())["chars"] == tok.chars
    idx = torch.tensor([tok.encode(read_text(text)[500 : 500 + model.config.block_size])])
    assert_same_as_gptlib(load_onnx(onnx_path), model, idx)


def test_clear_errors_before_exporting(tmp_path):
    with pytest.raises(TypeError, match="needs a gptlib GPT"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")
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
