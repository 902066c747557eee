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


def test_openai_layout_without_prefix_and_with_mask_buffers(tiny_model):
    hf = {k.removeprefix("transformer."): v for k, v in to_hf_state_dict(tiny_model).items() if k != "lm_head.weight"}
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


def test_torch_files_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": Boom()}, f)
    with pytest.raises(pickle.UnpicklingError):
        read_state_dict(path)


def test_torch_state_dict_file_loads(tiny_model, tmp_path):
    torch.save(to_hf_state_dict(tiny_model), tmp_path / "pytorch_model.bin")
    model = load_gpt2(tmp_path / "pytorch_model.bin", config=tiny_model.config)
    idx = torch.randint(0, 512, (1, 5))
    assert torch.equal(model(idx)[0], tiny_model(idx)[0])


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        read_state_dict(tmp_path / "nothing.safetensors")
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no config.json beside"):
        load_gpt2(tmp_path / "w.safetensors")


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
