"""Chapter 11's checkers accept right answers and name typical wrong ones. The wrong
answers are written here as a reader would write them, independently of the checkers'
own list of mistakes; the right answers are checked against Hugging Face's GPT-2."""

import re

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from gptlib import GPT
from gptlib.exercises import ExerciseError, ch11
from gptlib.weights import config_from_hf, load_checked


def _stub(*args):
    raise NotImplementedError("fill me in")


@pytest.fixture(scope="module")
def hf_model():
    """Hugging Face's GPT2LMHeadModel, built offline with random weights, every one of them
    moved off its initial value (biases off 0, LayerNorm weights off 1)."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=50,
        n_positions=12,
        n_embd=16,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def conv1d_weight_names(model):
    """The names of the weights that Hugging Face's model keeps in Conv1D layers (stored (in, out))."""
    return {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, Conv1D)}


# ---------------------------------------------------------------------------
# Exercise 1: needs_transpose


def test_needs_transpose_reference_is_accepted():
    assert ch11.check_needs_transpose(ch11.needs_transpose).startswith("correct")
    assert ch11.check_needs_transpose(
        lambda n: n.split(".")[-2] in ("c_attn", "c_proj", "c_fc") and n.endswith(".weight")
    ).startswith("correct")


def test_needs_transpose_picks_hugging_faces_conv1d_weights(hf_model):
    # GPT2LMHeadModel's names ("transformer.h.0.attn.c_attn.weight") and those of the GPT2Model
    # inside it ("h.0.attn.c_attn.weight"), as the hub's model.safetensors for gpt2 stores them
    for model in (hf_model, hf_model.transformer):
        conv1d = conv1d_weight_names(model)
        assert len(conv1d) == 4 * hf_model.config.n_layer
        names = [name for name, _ in model.named_parameters(remove_duplicate=False)]
        assert {name for name in names if ch11.needs_transpose(name)} == conv1d


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (
            lambda name: name.split(".")[-1] == "weight" and not name.split(".")[-2].startswith("ln_"),
            "wte, wpe and lm_head are not Conv1D weights",
        ),
        (
            lambda name: any(layer in name.split(".") for layer in ("c_attn", "c_proj", "c_fc")),
            r"only the \.weight of the four projections",
        ),
        (lambda name: bool(re.search(r"(c_attn|c_fc|mlp\.c_proj)\.weight$", name)), "It is square"),
        (lambda name: ".attn." in name and name.endswith(".weight"), "the MLP's c_fc and c_proj are Conv1D"),
    ],
    ids=["all-matrices", "biases-too", "forgot-square-c_proj", "attention-only"],
)
def test_needs_transpose_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch11.check_needs_transpose(wrong)


def test_needs_transpose_unknown_wrong_answer_fails_clearly():
    with pytest.raises(ExerciseError, match=r"expected False, got True; values differ \(input 1\)"):
        ch11.check_needs_transpose(lambda n: True)


# ---------------------------------------------------------------------------
# Exercise 2: conv1d_forward


def test_conv1d_forward_reference_is_accepted():
    assert ch11.check_conv1d_forward(ch11.conv1d_forward).startswith("correct")
    assert ch11.check_conv1d_forward(lambda x, w, b: F.linear(x, w.t(), b)).startswith("correct")
    assert ch11.check_conv1d_forward(
        lambda x, w, b: torch.addmm(b, x.reshape(-1, w.size(0)), w).reshape(*x.shape[:-1], w.size(1))
    ).startswith("correct")


def test_conv1d_forward_agrees_with_hugging_faces_conv1d():
    layer = Conv1D(nf=24, nx=8)  # nf outputs, nx inputs: weight (8, 24)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(ch11.conv1d_forward(x, layer.weight, layer.bias), layer(x))


@pytest.mark.parametrize(
    "wrong",
    [
        lambda x, w, b: torch.einsum("...i,oi->...o", x, w) + b,
        lambda x, w, b: F.linear(x, w, b),
    ],
    ids=["einsum-transposed", "F.linear"],
)
def test_conv1d_forward_transposed_weight_gets_its_hint_with_the_error_it_raises(wrong):
    # w.T fits x only when w is square: the answer raises on inputs 1 and 3 and is wrong on 2 and 4
    with pytest.raises(ExerciseError) as error:
        ch11.check_conv1d_forward(wrong)
    assert str(error.value).startswith("conv1d_forward: your function raised RuntimeError")
    assert "(on input 1)" in str(error.value) and r"Hint: you multiplied by w.T" in str(error.value)


def test_conv1d_forward_missing_bias_gets_its_hint():
    with pytest.raises(ExerciseError, match="not yet. Hint: the bias is missing"):
        ch11.check_conv1d_forward(lambda x, w, b: F.linear(x, w.t()))


def test_conv1d_forward_crash_is_reported():
    with pytest.raises(ExerciseError, match="your function raised RuntimeError") as error:
        ch11.check_conv1d_forward(lambda x, w, b: w @ x)
    assert "Hint" not in str(error.value)


# ---------------------------------------------------------------------------
# Exercise 3: convert_name_and_tensor


def test_convert_name_and_tensor_reference_is_accepted():
    assert ch11.check_convert_name_and_tensor(ch11.convert_name_and_tensor).startswith("correct")


@pytest.mark.parametrize("names", ["GPT2LMHeadModel", "GPT2Model"])
def test_convert_name_and_tensor_turns_hugging_faces_gpt2_into_the_same_model(hf_model, names):
    # GPT2LMHeadModel's names start with "transformer."; those of the GPT2Model inside it do not
    source = hf_model if names == "GPT2LMHeadModel" else hf_model.transformer
    converted = dict(
        ch11.convert_name_and_tensor(name, tensor.detach())
        for name, tensor in source.named_parameters()  # lm_head.weight is wte's: listed once
    )
    converted["lm_head.weight"] = converted["transformer.wte.weight"]
    ours = load_checked(GPT(config_from_hf(hf_model.config.to_dict())), converted).eval()
    idx = torch.randint(0, hf_model.config.vocab_size, (3, hf_model.config.n_positions))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0], hf_model(idx).logits, atol=1e-5, rtol=1e-5)


def transposes_every_matrix(name, tensor):
    if not name.startswith("transformer."):
        name = f"transformer.{name}"
    if tensor.ndim == 2:
        tensor = tensor.T
    return name, tensor


def transposes_nothing(name, tensor):
    return (name if name.startswith("transformer.") else "transformer." + name), tensor


def never_adds_the_prefix(name, tensor):
    layer, kind = name.split(".")[-2:]
    if kind == "weight" and layer in ("c_attn", "c_proj", "c_fc"):
        tensor = tensor.transpose(0, 1).contiguous()
    return name, tensor


def always_adds_the_prefix(name, tensor):
    if re.search(r"(c_attn|c_proj|c_fc)\.weight$", name):
        tensor = tensor.t()
    return "transformer." + name, tensor


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (transposes_every_matrix, "you transposed every 2-D tensor, wte and wpe included"),
        (transposes_nothing, "nothing was transposed"),
        (never_adds_the_prefix, "have no 'transformer.' prefix"),
        (always_adds_the_prefix, "add the prefix only when it is missing"),
    ],
    ids=["transpose-all-2d", "transpose-nothing", "no-prefix", "prefix-twice"],
)
def test_convert_name_and_tensor_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch11.check_convert_name_and_tensor(wrong)


def test_convert_name_and_tensor_accepts_an_answer_written_from_scratch():
    def mine(name, tensor):
        name = name if name.startswith("transformer.") else "transformer." + name
        conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
        return name, tensor.transpose(0, 1) if name.endswith(conv1d) else tensor

    assert ch11.check_convert_name_and_tensor(mine).startswith("correct")


# ---------------------------------------------------------------------------
# The notebook's untouched stubs: "not attempted yet", never correct.


@pytest.mark.parametrize(
    "checker",
    [ch11.check_needs_transpose, ch11.check_conv1d_forward, ch11.check_convert_name_and_tensor],
    ids=["needs_transpose", "conv1d_forward", "convert_name_and_tensor"],
)
def test_an_untouched_stub_is_not_attempted_yet(checker):
    message = checker(_stub)
    assert message.startswith("not attempted yet") and "fill me in" in message
    assert not message.startswith("correct")
