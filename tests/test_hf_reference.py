"""gptlib against Hugging Face's GPT2LMHeadModel, the PyTorch port of OpenAI's GPT-2 that
published GPT-2 checkpoints are loaded with, used here as the reference.

The reference model is built offline from a small GPT2Config with random weights.
"""

import pytest
import torch

from .conftest import skip_or_fail

try:
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError:  # pragma: no cover - depends on the environment
    skip_or_fail("transformers is not installed: pip install -e '.[test]'")

from gptlib import GPT  # noqa: E402
from gptlib.weights import config_from_hf, from_hf_state_dict, load_checked, load_gpt2, save_gpt2, to_hf_state_dict  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=300,
        n_positions=48,
        n_embd=64,
        n_layer=3,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # move every weight off its initial value, LayerNorms included
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def ours(hf_model):
    model = GPT(config_from_hf(hf_model.config.to_dict())).eval()
    return load_checked(model, from_hf_state_dict(hf_model.state_dict()))


def test_same_parameter_names_as_gpt2lmheadmodel(hf_model, ours):
    assert set(ours.state_dict()) == set(hf_model.state_dict())


def test_logits_equal(hf_model, ours):
    torch.manual_seed(1)
    idx = torch.randint(0, 300, (3, 48))
    with torch.no_grad():
        expected = hf_model(idx).logits
    logits, _ = ours(idx)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    for block in ours.transformer.h:  # the written-out attention path too
        block.attn.fast = False
    logits, _ = ours(idx)
    for block in ours.transformer.h:
        block.attn.fast = True
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_loss_equal(hf_model, ours):
    idx = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        expected = hf_model(idx, labels=idx).loss  # HF shifts the labels itself
    _, loss = ours(idx[:, :-1], idx[:, 1:])
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)


def test_twenty_greedy_tokens_identical(hf_model, ours):
    prompt = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        expected = hf_model.generate(prompt, max_new_tokens=20, do_sample=False, attention_mask=torch.ones_like(prompt))
    got = ours.generate(prompt, 20, temperature=0)
    assert got.shape == (1, 25)
    assert got.tolist() == expected.tolist()


def test_export_back_to_hugging_face(hf_model, ours):
    fresh = GPT2LMHeadModel(hf_model.config).eval()
    missing, unexpected = fresh.load_state_dict(to_hf_state_dict(ours), strict=False)
    assert not unexpected and all(k.endswith((".attn.bias", ".attn.masked_bias")) for k in missing)
    idx = torch.randint(0, 300, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(fresh(idx).logits, hf_model(idx).logits, atol=1e-5, rtol=0)


def test_safetensors_folder_round_trip_through_hugging_face(hf_model, ours, tmp_path):
    save_gpt2(ours, tmp_path / "ckpt")
    reloaded_hf = GPT2LMHeadModel.from_pretrained(tmp_path / "ckpt").eval()
    hf_model.save_pretrained(tmp_path / "hf")  # what the hub's files look like
    reloaded = load_gpt2(tmp_path / "hf")
    idx = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        expected = hf_model(idx).logits
        torch.testing.assert_close(reloaded_hf(idx).logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(reloaded(idx)[0], expected, atol=1e-5, rtol=0)


def test_reorder_and_upcast_attn_computes_the_same_logits(hf_model, ours):
    # The switch scales inside the product and computes the scores in float32 (Hugging Face's eager
    # attention only): in float32 the same function, which is why config_from_hf accepts it.
    config = GPT2Config(**{**hf_model.config.to_dict(), "reorder_and_upcast_attn": True})
    config._attn_implementation = "eager"
    reordered = GPT2LMHeadModel(config).eval()
    reordered.load_state_dict(hf_model.state_dict())
    assert reordered.transformer.h[0].attn.reorder_and_upcast_attn and reordered.config._attn_implementation == "eager"
    assert config_from_hf(reordered.config.to_dict()) == ours.config
    idx = torch.randint(0, 300, (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0], reordered(idx).logits, atol=1e-5, rtol=0)
