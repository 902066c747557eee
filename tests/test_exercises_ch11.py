import pytest
import torch
import torch.nn.functional as F

from gptlib import GPT, GPTConfig
from gptlib.exercises import ExerciseError, ch11
from gptlib.weights import from_hf_state_dict, to_hf_state_dict

PROJECTIONS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _prefixed(name):
    return name if name.startswith("transformer.") else "transformer." + name


def _stub(*args):
    raise NotImplementedError("fill me in")


# ---------------------------------------------------------------------------
# Exercise 1: needs_transpose


def test_needs_transpose_reference_is_accepted():
    assert ch11.check_needs_transpose(ch11.needs_transpose).startswith("correct")
    assert ch11.check_needs_transpose(
        lambda n: n.split(".")[-2] in ("c_attn", "c_proj", "c_fc") and n.endswith(".weight")
    ).startswith("correct")


def test_needs_transpose_agrees_with_the_loader():
    model = GPT(GPTConfig.from_preset("tiny"))
    hf = to_hf_state_dict(model)
    flipped = {n for n, t in hf.items() if t.dim() == 2 and t.shape != model.state_dict()[n].shape}
    assert flipped <= {n for n in hf if ch11.needs_transpose(n)}
    assert sum(ch11.needs_transpose(n) for n in hf) == 4 * model.config.n_layer


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n: n.endswith(".weight") and "ln_" not in n, "wte, wpe and lm_head are not Conv1D weights"),
        (lambda n: any(p in n for p in ("c_attn", "c_proj", "c_fc")), r"only the \.weight of the four projections"),
        (lambda n: n.endswith(("c_attn.weight", "c_fc.weight", "mlp.c_proj.weight")), "It is square"),
        (lambda n: n.endswith(("c_attn.weight", "attn.c_proj.weight")), "the MLP's c_fc and c_proj are Conv1D"),
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


@pytest.mark.parametrize(
    "wrong",
    [lambda x, w, b: x @ w.T + b, lambda x, w, b: F.linear(x, w, b)],
    ids=["matmul-transposed", "F.linear"],
)
def test_conv1d_forward_transposed_weight_gets_its_hint(wrong):
    with pytest.raises(ExerciseError, match=r"you multiplied by w\.T"):
        ch11.check_conv1d_forward(wrong)


def test_conv1d_forward_missing_bias_gets_its_hint():
    with pytest.raises(ExerciseError, match="the bias is missing"):
        ch11.check_conv1d_forward(lambda x, w, b: x @ w)


def test_conv1d_forward_crash_is_reported():
    with pytest.raises(ExerciseError, match="your function raised RuntimeError"):
        ch11.check_conv1d_forward(lambda x, w, b: w @ x)


# ---------------------------------------------------------------------------
# Exercise 3: convert_name_and_tensor


def test_convert_name_and_tensor_reference_is_accepted():
    assert ch11.check_convert_name_and_tensor(ch11.convert_name_and_tensor).startswith("correct")


def test_convert_name_and_tensor_agrees_with_the_loader():
    model = GPT(GPTConfig.from_preset("tiny"))
    hf = {k: v for k, v in to_hf_state_dict(model).items() if k != "lm_head.weight"}
    mine = dict(ch11.convert_name_and_tensor(k, v) for k, v in hf.items())
    theirs = {k: v for k, v in from_hf_state_dict(hf).items() if k != "lm_head.weight"}
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    openai_style = {k.removeprefix("transformer."): v for k, v in hf.items()}
    assert dict(ch11.convert_name_and_tensor(k, v) for k, v in openai_style.items()).keys() == mine.keys()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (
            lambda n, t: (_prefixed(n), t.t() if t.dim() == 2 else t),
            "you transposed every 2-D tensor, wte and wpe included",
        ),
        (
            lambda n, t: (_prefixed(n), t),
            "nothing was transposed",
        ),
        (
            lambda n, t: (n, t.t() if n.endswith(PROJECTIONS) else t),
            "have no 'transformer.' prefix",
        ),
        (
            lambda n, t: ("transformer." + n, t.t() if n.endswith(PROJECTIONS) else t),
            "add the prefix only when it is missing",
        ),
    ],
    ids=["transpose-all-2d", "transpose-nothing", "no-prefix", "prefix-twice"],
)
def test_convert_name_and_tensor_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch11.check_convert_name_and_tensor(wrong)


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


def test_convert_name_and_tensor_accepts_an_answer_written_from_scratch():
    def mine(name, tensor):
        name = _prefixed(name)
        return name, tensor.transpose(0, 1) if name.endswith(PROJECTIONS) else tensor

    assert ch11.check_convert_name_and_tensor(mine).startswith("correct")
