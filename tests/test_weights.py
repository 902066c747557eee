import pickle

import pytest
import torch

from gptlib import GPT, GPTConfig
from gptlib.weights import (
    from_hf_state_dict,
    load_checked,
    load_gpt2,
    read_state_dict,
    save_gpt2,
    to_hf_state_dict,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_conv1d_weights_are_transposed(tiny_model):
    hf = to_hf_state_dict(tiny_model)
    ours = tiny_model.state_dict()
    assert hf["transformer.h.0.attn.c_attn.weight"].shape == (64, 192)  # (in, out)
    assert ours["transformer.h.0.attn.c_attn.weight"].shape == (192, 64)  # (out, in)
    assert torch.equal(hf["transformer.h.0.mlp.c_fc.weight"], ours["transformer.h.0.mlp.c_fc.weight"].t())
    assert torch.equal(hf["transformer.wte.weight"], ours["transformer.wte.weight"])  # embeddings unchanged
    back = from_hf_state_dict(hf)
    assert set(back) == set(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)


def test_gpt2model_names_without_prefix_and_with_mask_buffers(tiny_model):
    """Hugging Face's GPT2Model names its weights without GPT2LMHeadModel's "transformer."
    prefix (h.0.attn.c_attn.weight), as the hub's model.safetensors for gpt2 stores them,
    and some of its files carry the old causal-mask buffers (h.0.attn.bias)."""
    hf = {k.removeprefix("transformer."): v for k, v in to_hf_state_dict(tiny_model).items() if k != "lm_head.weight"}
    assert "h.0.attn.c_attn.weight" in hf and "wte.weight" in hf
    hf["h.0.attn.bias"] = torch.ones(1, 1, 32, 32)
    model = load_checked(GPT(tiny_model.config), from_hf_state_dict(hf))
    idx = torch.randint(0, 512, (1, 9))
    torch.testing.assert_close(model.eval()(idx)[0], tiny_model(idx)[0])


def test_state_dict_from_another_configuration_lists_the_mismatches(tiny_model):
    other = GPT(GPTConfig.from_preset("tiny", block_size=16, n_layer=3))
    with pytest.raises(ValueError) as err:
        load_checked(tiny_model, other.state_dict())
    message = str(err.value)
    assert "shape mismatch: transformer.wpe.weight is [16, 64] in the file, [32, 64] in the model" in message
    assert "unexpected: transformer.h.2.ln_1.weight [64]" in message
    assert "missing" not in message


def test_missing_names_are_listed(tiny_model):
    sd = dict(tiny_model.state_dict())
    del sd["transformer.ln_f.bias"]
    with pytest.raises(ValueError, match=r"missing: transformer.ln_f.bias \[64\]"):
        load_checked(GPT(tiny_model.config), sd)


def test_save_and_load_folder(tiny_model, tmp_path):
    save_gpt2(tiny_model, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_gpt2(tmp_path / "out")
    assert loaded.config == tiny_model.config
    idx = torch.randint(0, 512, (2, 32))
    assert torch.equal(loaded(idx)[0], tiny_model(idx)[0])


def test_save_refuses_a_file_as_folder(tiny_model, tmp_path):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        save_gpt2(tiny_model, tmp_path / "file")
    assert (tmp_path / "file").read_text() == "keep me"


class Boom:
    def __reduce__(self):
        return (print, ("unpickled!",))


def assert_one_safe_line(message: str):
    """One line, and no advice to load the file with weights_only=False (which would run its code)."""
    assert "\n" not in message and "weights_only" not in message, message


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the plain pickle
def test_torch_files_are_never_unpickled(tmp_path, capsys):
    """A file that names Python code is refused without running it: a plain pickle (not torch.save's
    format), torch.save's zip archive, and torch.save's older non-zip format."""
    raw = tmp_path / "evil.pt"
    with open(raw, "wb") as f:
        pickle.dump({"x": Boom()}, f)
    with pytest.raises(ValueError) as info:
        read_state_dict(raw)
    assert str(info.value) == (
        f"{raw} is not a weights file gptlib can read: "
        f"it is not a complete file written by torch.save (truncated or another format)"
    )
    for name, zip_format in [("archive.pt", True), ("legacy.pt", False)]:
        path = tmp_path / name
        torch.save({"wte.weight": torch.zeros(3), "x": Boom()}, path, _use_new_zipfile_serialization=zip_format)
        with pytest.raises(pickle.UnpicklingError) as info:  # chapter 11 shows this type
            read_state_dict(path)
        assert str(info.value) == (
            f"{path} is refused: it holds Python objects other than tensors and plain data, which gptlib does not load"
        )
        assert_one_safe_line(str(info.value))
    assert "unpickled!" not in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_safetensors_file_is_named(tiny_model, tmp_path, damage):
    folder = save_gpt2(tiny_model, tmp_path / "out")
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes({"truncated": whole[: len(whole) // 2], "garbage": b"not safetensors", "empty": b""}[damage])
    for load in (lambda: read_state_dict(weights), lambda: load_gpt2(folder)):
        with pytest.raises(ValueError) as info:
            load()
        message = str(info.value)
        assert message.startswith(
            f"{weights} is not a readable safetensors file (damaged, truncated or another format): "
        )
        assert_one_safe_line(message)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_torch_file_is_named(tiny_model, tmp_path, damage):
    path = tmp_path / "pytorch_model.bin"
    torch.save(to_hf_state_dict(tiny_model), path)
    whole = path.read_bytes()
    path.write_bytes({"truncated": whole[: len(whole) // 2], "garbage": b"not a torch file", "empty": b""}[damage])
    with pytest.raises(ValueError) as info:
        load_gpt2(path, config=tiny_model.config)
    assert str(info.value) == (
        f"{path} is not a weights file gptlib can read: "
        f"it is not a complete file written by torch.save (truncated or another format)"
    )


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    """The --out folder of `python -m gptlib train` after one step: ckpt.pt and log.jsonl."""
    from gptlib.train import run_training

    text = tmp_path_factory.mktemp("data") / "small.txt"
    text.write_text("To be, or not to be, that is the question:\n" * 100)
    out = tmp_path_factory.mktemp("run") / "out"
    run_training(text, out=out, preset="tiny", max_iters=1, progress=False)
    return out


def test_load_gpt2_names_a_training_checkpoint(training_run):
    """load_gpt2 reads GPT-2 checkpoints; handed what the trainer writes, it says so and names
    the function that reads it."""
    from gptlib.checkpoint import load_checkpoint, model_from_checkpoint

    what = (
        "a gptlib training checkpoint (written by `python -m gptlib train`), not GPT-2 weights; "
        "load_gpt2 reads config.json and model.safetensors (what save_gpt2 and Hugging Face's save_pretrained "
        "write); read a training checkpoint with gptlib.checkpoint.load_checkpoint and model_from_checkpoint"
    )
    ckpt = training_run / "ckpt.pt"
    config = GPTConfig.from_preset("tiny")
    for args, expected in [
        ((training_run,), f"{training_run} holds no model.safetensors but ckpt.pt, {what}"),
        ((ckpt,), f"{ckpt} is {what}"),
        ((ckpt, config), f"{ckpt} is {what}"),
    ]:
        with pytest.raises(ValueError) as info:
            load_gpt2(*args)
        assert str(info.value) == expected
    assert isinstance(model_from_checkpoint(load_checkpoint(training_run)), GPT)  # the advice works


def test_load_gpt2_says_what_a_folder_holds(tmp_path):
    (tmp_path / "notes.txt").write_text("not weights")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as info:
        load_gpt2(tmp_path)
    assert str(info.value) == (
        f"no model.safetensors in {tmp_path} (it holds config.json, notes.txt); "
        f"load_gpt2 reads a folder with config.json and model.safetensors, or a weights file"
    )


def test_a_file_that_is_not_a_state_dict(tmp_path):
    torch.save({"wte.weight": torch.zeros(3), "step": 7}, tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"w.pt is not a state dict of tensors: 'step' is of type int"):
        read_state_dict(tmp_path / "w.pt")
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list.pt does not hold a state dict \(found list\)"):
        read_state_dict(tmp_path / "list.pt")


def test_torch_state_dict_file_loads(tiny_model, tmp_path):
    torch.save(to_hf_state_dict(tiny_model), tmp_path / "pytorch_model.bin")
    model = load_gpt2(tmp_path / "pytorch_model.bin", config=tiny_model.config)
    idx = torch.randint(0, 512, (1, 5))
    assert torch.equal(model(idx)[0], tiny_model(idx)[0])


def test_missing_files(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        read_state_dict(tmp_path / "nothing.safetensors")
    save_gpt2(tiny_model, tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json beside .*model.safetensors; pass config="):
        load_gpt2(tmp_path / "model.safetensors")


GPT2_FIELDS = dict(vocab_size=300, n_positions=48, n_layer=2, n_head=4, n_embd=64)


def test_config_from_hf_reads_gpt2_fields():
    from gptlib.weights import config_from_hf

    config = config_from_hf({**GPT2_FIELDS, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5})
    assert config == GPTConfig(vocab_size=300, block_size=48, n_layer=2, n_head=4, n_embd=64, dropout=0.0, bias=True)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(activation_function="relu"), "this config has activation 'relu' and layer_norm_epsilon 1e-05"),
        (dict(activation_function="gelu"), "this config has activation 'gelu' and layer_norm_epsilon 1e-05"),
        (dict(layer_norm_epsilon=1e-6), "this config has activation 'gelu_new' and layer_norm_epsilon 1e-06"),
    ],
)
def test_config_from_hf_rejects_what_gptlib_does_not_model(changes, message):
    from gptlib.weights import config_from_hf

    with pytest.raises(
        ValueError, match=r"gptlib models GPT-2 exactly \(activation gelu_new, layer_norm_epsilon 1e-05\)"
    ):
        config_from_hf({**GPT2_FIELDS, **changes})
    with pytest.raises(ValueError, match=message):
        config_from_hf({**GPT2_FIELDS, **changes})


def test_config_from_hf_names_a_missing_field():
    from gptlib.weights import config_from_hf

    fields = dict(GPT2_FIELDS)
    del fields["n_head"]
    with pytest.raises(ValueError, match="GPT-2 config is missing the field 'n_head'"):
        config_from_hf(fields)


@pytest.mark.parametrize("option", [dict(position="rope"), dict(n_kv_head=2), dict(tie_embeddings=False)])
def test_save_gpt2_refuses_a_model_with_options_gpt2_lacks(tmp_path, option):
    with torch.device("meta"):
        model = GPT(GPTConfig.from_preset("tiny", **option))
    name = next(iter(option))
    with pytest.raises(ValueError, match=f"GPT-2 has none of the options this model sets \\({name}="):
        save_gpt2(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("switch, value", [("scale_attn_by_inverse_layer_idx", True), ("scale_attn_weights", False)])
def test_config_from_hf_rejects_attention_switches_that_change_the_scores(switch, value):
    from gptlib.weights import config_from_hf

    fields = {**GPT2_FIELDS, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
    with pytest.raises(ValueError, match=f"this config has {switch}={value}, which changes the attention scores"):
        config_from_hf({**fields, switch: value})
    config_from_hf({**fields, switch: not value})  # GPT-2's own value is accepted
