"""Checkpoints: what a user can hand to gptlib, and the one clear message for each mistake."""

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.checkpoint import (
    checkpoint_file,
    encode_text,
    load_checkpoint,
    model_from_checkpoint,
    save_atomically,
    tokenizer_from_spec,
)
from gptlib.cli import main
from gptlib.sampling import sample_text
from gptlib.train import run_training

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

SMALL = dict(preset="tiny", progress=False)


def cli(capsys, *args):
    """`python -m gptlib ARGS`, run in this process: (exit status, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text("To be, or not to be, that is the question:\n" * 200)
    return path


@pytest.fixture(scope="module")
def trained(text_file, tmp_path_factory):
    """A finished three-step run: its --out folder."""
    out = tmp_path_factory.mktemp("run") / "out"
    run_training(text_file, out=out, max_iters=3, **SMALL)
    return out


def test_a_checkpoint_round_trips(trained):
    ckpt = load_checkpoint(trained / "ckpt.pt")
    assert load_checkpoint(trained)["step"] == ckpt["step"] == 3  # the folder names its ckpt.pt
    model = model_from_checkpoint(ckpt)
    assert model.config == GPTConfig.from_preset("tiny", vocab_size=len(ckpt["tokenizer"]["chars"]))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt["model"].items())
    tok = tokenizer_from_spec(ckpt["tokenizer"])
    assert tok.decode(tok.encode("To be")) == "To be"
    assert (
        checkpoint_file(trained) == trained / "ckpt.pt" and checkpoint_file(trained / "ckpt.pt") == trained / "ckpt.pt"
    )


def test_save_atomically_leaves_no_temporary_file(tmp_path):
    save_atomically({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["a"], torch.ones(2))


def test_sample_accepts_the_folder_or_the_file(trained, capsys):
    greedy = ("--prompt", "To", "--tokens", "12", "--temperature", "0")
    from_folder = cli(capsys, "sample", "--ckpt", str(trained), *greedy)
    from_file = cli(capsys, "sample", "--ckpt", str(trained / "ckpt.pt"), *greedy)
    assert from_folder[0] == from_file[0] == 0, from_file[2]
    assert from_folder[1] == from_file[1]
    printed = from_file[1].removesuffix("\n")  # print's newline only: generated newlines count
    assert printed.startswith("To") and len(printed) == 2 + 12  # one character per token
    assert printed == sample_text(trained, prompt="To", tokens=12, temperature=0)


def test_a_checkpoint_without_a_tokenizer(trained, tmp_path, capsys):
    ckpt = load_checkpoint(trained)
    del ckpt["tokenizer"]
    torch.save(ckpt, tmp_path / "ckpt.pt")
    with pytest.raises(
        ValueError, match=r"ckpt.pt was not written by `python -m gptlib train` \(it names no tokenizer\)"
    ):
        sample_text(tmp_path, prompt="To", tokens=2)
    code, _, err = cli(capsys, "sample", "--ckpt", str(tmp_path), "--tokens", "2")
    assert code == 2 and err.startswith("error: ") and "it names no tokenizer" in err


def test_an_unknown_tokenizer_kind(trained, tmp_path):
    ckpt = load_checkpoint(trained)
    ckpt["tokenizer"] = {"kind": "sentencepiece"}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="names an unknown tokenizer .*'sentencepiece'.*known kinds: char, gpt2"):
        sample_text(tmp_path, prompt="To", tokens=2)


def test_resuming_with_another_tokenizer(text_file, trained):
    before = (trained / "ckpt.pt").read_bytes()
    with pytest.raises(ValueError, match="trained with the char tokenizer, not gpt2; resume it with --tokenizer char"):
        run_training(text_file, out=trained, resume=True, tokenizer="gpt2", max_iters=5, progress=False)
    assert (trained / "ckpt.pt").read_bytes() == before


@pytest.mark.parametrize("drop", ["model", "model_config", "step"])
def test_a_checkpoint_missing_a_key(trained, tmp_path, drop):
    ckpt = load_checkpoint(trained)
    del ckpt[drop]
    torch.save(ckpt, tmp_path / "ckpt.pt")
    with pytest.raises(
        ValueError, match=rf"checkpoint {tmp_path}/ckpt.pt is not a gptlib checkpoint: it lacks \['{drop}'\]"
    ):
        load_checkpoint(tmp_path / "ckpt.pt")


def test_a_checkpoint_missing_a_weight(trained, tmp_path):
    ckpt = load_checkpoint(trained)
    del ckpt["model"]["transformer.h.1.mlp.c_fc.weight"]
    torch.save(ckpt, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match=r"1 problem\(s\):\n  missing: transformer.h.1.mlp.c_fc.weight \[256, 64\]"):
        model_from_checkpoint(load_checkpoint(tmp_path / "ckpt.pt"))


def test_a_checkpoint_that_is_not_a_dict(tmp_path):
    torch.save([torch.ones(1)], tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="is not a gptlib checkpoint: it holds a list, not a dict"):
        load_checkpoint(tmp_path / "ckpt.pt")


class Payload:
    """Stands for any Python object a file could carry: unpickling it would run its code."""


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("garbage", "it is not a complete file written by torch.save (truncated or another format)"),
        ("truncated", "it is not a complete file written by torch.save (truncated or another format)"),
        ("pickled object", "it holds Python objects other than tensors and plain data, which gptlib does not load"),
        (
            "pickled object, legacy format",
            "it holds Python objects other than tensors and plain data, which gptlib does not load",
        ),
        ("empty", "it is not a complete file written by torch.save (truncated or another format)"),
    ],
)
def test_a_corrupt_or_foreign_checkpoint_gets_one_safe_message(trained, tmp_path, capsys, kind, reason):
    path = tmp_path / "ckpt.pt"
    if kind == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif kind == "truncated":
        path.write_bytes((trained / "ckpt.pt").read_bytes()[:5000])
    elif kind == "pickled object":
        torch.save({"model": Payload(), "model_config": {}, "step": 0}, path)
    elif kind == "pickled object, legacy format":  # torch.save's format before torch 1.6: not a zip archive
        torch.save({"model": Payload(), "model_config": {}, "step": 0}, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message == f"checkpoint {path} is corrupt or not a gptlib checkpoint: {reason}"
    assert "weights_only" not in message and "\n" not in message
    code, _, err = cli(capsys, "sample", "--ckpt", str(path))
    assert code == 2 and err == f"error: {message}\n"


def test_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=f"no checkpoint at {tmp_path}/nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    code, _, err = cli(capsys, "sample", "--ckpt", str(tmp_path / "nothing.pt"))
    assert code == 2 and err == f"error: no checkpoint at {tmp_path}/nothing.pt\n"


def test_a_model_config_that_is_not_a_gptconfig(trained):
    ckpt = load_checkpoint(trained)
    ckpt["model_config"] = {**ckpt["model_config"], "n_heads": 4}
    with pytest.raises(ValueError, match="the checkpoint's model_config is not a GPTConfig:.*n_heads"):
        model_from_checkpoint(ckpt)


def test_encode_text_names_an_unknown_tokenizer():
    ids, spec = encode_text("abca", "char")
    assert ids.tolist() == [0, 1, 2, 0] and spec == {"kind": "char", "chars": "abc"}
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe'; choose char or gpt2"):
        encode_text("abc", "bpe")


def test_sample_needs_exactly_one_source():
    with pytest.raises(ValueError, match="give either a checkpoint"):
        sample_text()
    with pytest.raises(ValueError, match="unknown pretrained model 'gpt5'"):
        sample_text(pretrained="gpt5")


def test_model_from_checkpoint_gives_a_gpt(trained):
    assert isinstance(model_from_checkpoint(load_checkpoint(trained)), GPT)


def test_a_checkpoint_of_a_model_with_llamas_options_round_trips(tmp_path):
    from gptlib.train import TrainConfig, Trainer

    config = GPTConfig.from_preset(
        "tiny", position="rope", norm="rmsnorm", norm_eps=1e-6, mlp="swiglu", n_kv_head=2, tie_embeddings=False
    )
    torch.manual_seed(0)
    data = torch.randint(0, 512, (2000,))
    schedule = TrainConfig(batch_size=4, max_iters=2, eval_interval=2, eval_iters=1, warmup_iters=0)
    Trainer(GPT(config), data[:1800], data[1800:], schedule, out_dir=tmp_path).train(progress=False)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["model_config"]["position"] == "rope" and ckpt["model_config"]["n_kv_head"] == 2
    model = model_from_checkpoint(ckpt)
    assert model.config == config and model.lm_head.weight is not model.transformer.wte.weight
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt["model"].items())
    resumed = Trainer(GPT(config), data[:1800], data[1800:], TrainConfig(**ckpt["train_config"]))
    resumed.resume(ckpt)  # the same configuration: accepted
    with pytest.raises(ValueError, match="another model configuration: n_kv_head: 2 in the checkpoint, None now"):
        Trainer(GPT(config.replace(n_kv_head=None)), data[:1800], data[1800:], schedule).resume(ckpt)


def test_a_checkpoint_written_before_the_options_existed_loads_as_gpt2(trained):
    from gptlib.config import OPTIONS

    ckpt = load_checkpoint(trained)
    ckpt["model_config"] = {k: v for k, v in ckpt["model_config"].items() if k not in OPTIONS}
    assert set(ckpt["model_config"]) == {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias"}
    model = model_from_checkpoint(ckpt)
    assert model.config == GPTConfig.from_preset("tiny", vocab_size=len(ckpt["tokenizer"]["chars"]))
    assert model.config.non_gpt2_options() == {}
