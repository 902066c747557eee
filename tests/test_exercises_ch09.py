import math

import pytest
import torch
import torch.nn.functional as F

from gptlib import GPT, GPTConfig
from gptlib.exercises import ExerciseError, ch09
from gptlib.train import RECIPES, make_optimizer

# ---------------------------------------------------------------------------
# Exercise 1: cross_entropy_by_hand


def _pick(values, targets):
    return values.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def test_cross_entropy_reference_is_accepted():
    assert ch09.check_cross_entropy_by_hand(ch09.cross_entropy_by_hand).startswith("correct")


def test_cross_entropy_reference_agrees_with_torch_and_the_model():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny"))
    x = torch.randint(0, 512, (2, 32))
    y = torch.randint(0, 512, (2, 32))
    logits, loss = model(x, y)
    torch.testing.assert_close(ch09.cross_entropy_by_hand(logits, y), loss)
    torch.testing.assert_close(ch09.cross_entropy_by_hand(logits, y), F.cross_entropy(logits.view(64, -1), y.view(64)))


@pytest.mark.parametrize(
    "correct",
    [
        lambda lg, t: F.cross_entropy(lg.reshape(-1, lg.size(-1)), t.reshape(-1)),
        lambda lg, t: F.cross_entropy(lg.transpose(1, 2), t),  # classes in dimension 1: also right
        lambda lg, t: F.nll_loss(F.log_softmax(lg, dim=-1).flatten(0, 1), t.flatten()),
        lambda lg, t: float(F.cross_entropy(lg.reshape(-1, lg.size(-1)), t.reshape(-1))),  # a float is fine
    ],
    ids=["flattened", "transposed", "nll", "float"],
)
def test_cross_entropy_other_correct_answers_are_accepted(correct):
    assert ch09.check_cross_entropy_by_hand(correct).startswith("correct")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda lg, t: _pick(F.log_softmax(lg, dim=-1), t).mean(), "MINUS their mean"),
        (lambda lg, t: -_pick(lg, t).mean(), "raw logits as if they were log-probabilities"),
        (lambda lg, t: -_pick(lg.softmax(-1), t).mean(), "their negative LOG"),
        (lambda lg, t: -_pick(F.log_softmax(lg, dim=1), t).mean(), "softmax ran over the wrong dimension"),
        (lambda lg, t: -_pick(F.log_softmax(lg, dim=-1), t).sum(), "you summed over the positions"),
        (lambda lg, t: -_pick(F.log_softmax(lg, dim=-1), t), r"loss of every position, shape \(B, T\)"),
        (lambda lg, t: -_pick(F.log_softmax(lg, dim=-1), t).mean(0), "averaged over the batch only"),
        (lambda lg, t: -F.log_softmax(lg, dim=-1).mean(), "every character of the vocabulary"),
        (lambda lg, t: F.cross_entropy(lg, t), "Flatten first"),
    ],
    ids=[
        "no-minus",
        "raw-logits",
        "no-log",
        "wrong-dim",
        "sum",
        "no-reduction",
        "batch-mean",
        "all-vocab",
        "not-flattened",
    ],
)
def test_cross_entropy_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch09.check_cross_entropy_by_hand(wrong)


def test_cross_entropy_stub_and_unknown_mistakes_fail_clearly():
    with pytest.raises(ExerciseError, match="values differ"):
        ch09.check_cross_entropy_by_hand(lambda lg, t: torch.tensor(0.0))
    with pytest.raises(ExerciseError, match="your function raised ZeroDivisionError"):
        ch09.check_cross_entropy_by_hand(lambda lg, t: 1 / 0)


# ---------------------------------------------------------------------------
# Exercise 2: lr_at


def test_lr_at_reference_is_accepted_and_matches_trainconfig():
    assert ch09.check_lr_at(ch09.lr_at).startswith("correct")
    for recipe in RECIPES.values():
        cfg = recipe[1]
        decay = cfg.lr_decay_iters or cfg.max_iters
        for step in range(0, cfg.max_iters + 300, 7):
            assert math.isclose(
                ch09.lr_at(step, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, decay), cfg.lr_at(step), rel_tol=1e-12
            )


def test_lr_at_reference_values():
    assert math.isclose(ch09.lr_at(0, 5e-3, 1e-4, 20, 1200), 5e-3 / 21)
    assert ch09.lr_at(20, 5e-3, 1e-4, 20, 1200) == 5e-3
    assert math.isclose(ch09.lr_at(610, 5e-3, 1e-4, 20, 1200), (5e-3 + 1e-4) / 2)
    assert ch09.lr_at(1200, 5e-3, 1e-4, 20, 1200) == ch09.lr_at(5000, 5e-3, 1e-4, 20, 1200) == 1e-4


def test_lr_at_accepts_a_tensor_answer():
    def with_torch(step, max_lr, min_lr, warmup, decay):
        return torch.tensor(ch09.lr_at(step, max_lr, min_lr, warmup, decay), dtype=torch.float64)

    assert ch09.check_lr_at(with_torch).startswith("correct")


def _cos(step, hi, lo, start, end):
    progress = min(max((step - start) / (end - start), 0.0), 1.0)
    return lo + (hi - lo) * (1 + math.cos(math.pi * progress)) / 2


def _warm(step, hi, warmup):
    return hi * (step + 1) / (warmup + 1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda s, hi, lo, w, d: _cos(s, hi, lo, 0, d), "there is no warmup"),
        (lambda s, hi, lo, w, d: hi * s / w if s < w else _cos(s, hi, lo, w, d), "your warmup starts at 0"),
        (
            lambda s, hi, lo, w, d: _warm(s, hi, w) if s < w else _cos(s, hi, lo, 0, d),
            "the cosine runs over the wrong range",
        ),
        (
            lambda s, hi, lo, w, d: _warm(s, hi, w) if s < w else _cos(s, hi, 0.0, w, d),
            "the rate decays to 0; it should decay to min_lr",
        ),
        (
            lambda s, hi, lo, w, d: (
                _warm(s, hi, w) if s < w else lo + (hi - lo) * (1 + math.cos(math.pi * (s - w) / (d - w))) / 2
            ),
            "the rate climbs again",
        ),
        (
            lambda s, hi, lo, w, d: _warm(s, hi, w) if s < w else lo + (hi - lo) * (1 - min((s - w) / (d - w), 1.0)),
            "straight-line decay",
        ),
    ],
    ids=["no-warmup", "warmup-from-zero", "cosine-range", "to-zero", "no-floor", "linear"],
)
def test_lr_at_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch09.check_lr_at(wrong)


def test_lr_at_stub_fails_clearly():
    with pytest.raises(ExerciseError, match=r"values differ \(input 1\)"):
        ch09.check_lr_at(lambda step, max_lr, min_lr, warmup, decay: max_lr)


# ---------------------------------------------------------------------------
# Exercise 3: weight_decay_split


def test_weight_decay_split_reference_is_accepted():
    assert ch09.check_weight_decay_split(ch09.weight_decay_split).startswith("correct")


def test_weight_decay_split_matches_make_optimizer():
    shape, cfg = RECIPES["tuned-cpu"]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=78, **shape))
    decay, no_decay = ch09.weight_decay_split(model)
    params = dict(model.named_parameters())
    groups = make_optimizer(model, cfg).param_groups
    assert [g["weight_decay"] for g in groups] == [cfg.weight_decay, 0.0]
    assert [id(p) for p in groups[0]["params"]] == [id(params[n]) for n in decay]
    assert [id(p) for p in groups[1]["params"]] == [id(params[n]) for n in no_decay]
    assert (len(decay), len(no_decay)) == (14, 7)
    assert sum(params[n].numel() for n in decay) == 608_000 and sum(params[n].numel() for n in no_decay) == 896


def test_weight_decay_split_accepts_sets_in_any_order():
    def as_sets(model):
        decay, no_decay = ch09.weight_decay_split(model)
        return set(decay), set(reversed(no_decay))

    assert ch09.check_weight_decay_split(as_sets).startswith("correct")


def _split(rule, remove_duplicate=True):
    def split(model):
        named = list(model.named_parameters(remove_duplicate=remove_duplicate))
        return [n for n, p in named if rule(n, p)], [n for n, p in named if not rule(n, p)]

    return split


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_split(lambda n, p: True), "you decay every parameter"),
        (_split(lambda n, p: n.endswith("weight")), "Decide by shape, not by name"),
        (
            _split(lambda n, p: p.dim() == 2 and "wte" not in n and "wpe" not in n),
            "embeddings wte and wpe are matrices",
        ),
        (_split(lambda n, p: p.dim() == 1), "the two groups are swapped"),
        (_split(lambda n, p: p.dim() >= 2, remove_duplicate=False), "List each tensor once"),
    ],
    ids=["all", "by-name", "no-embeddings", "swapped", "tied-twice"],
)
def test_weight_decay_split_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch09.check_weight_decay_split(wrong)


def test_weight_decay_split_stub_fails_clearly():
    with pytest.raises(ExerciseError, match="values differ"):
        ch09.check_weight_decay_split(lambda model: ([], []))


# ---------------------------------------------------------------------------
# Exercise 4: the learning-rate sweep (an experiment). The trial here is a cheap
# stand-in for a training run: a U-shaped loss with its minimum at 1e-2.


def _trial(lr):
    return 2.0 + (math.log10(lr) + 2) ** 2 / 4


def test_lr_sweep_accepts_measured_results_and_names_the_best():
    message = ch09.check_lr_sweep(lambda: {lr: _trial(lr) for lr in (1e-4, 1e-3, 1e-2, 1e-1)}, _trial)
    assert message.startswith("correct") and "your best is 0.01" in message and "both ends are worse" in message


def test_lr_sweep_says_when_the_best_is_at_an_end():
    message = ch09.check_lr_sweep(lambda: {lr: _trial(lr) for lr in (1e-1, 1, 10, 100)}, _trial)
    assert "extend the sweep" in message


@pytest.mark.parametrize(
    "answer, hint",
    [
        (lambda: [2.0, 2.1, 2.2, 2.3], "return a dict"),
        (lambda: {1e-3: 2.5, 1e-2: 2.0, 1e-1: 2.5}, "at least four learning rates"),
        (lambda: {1e-3: 2.5, 2e-3: 2.2, 5e-3: 2.1, 1e-2: 2.0}, "at least a factor of 100"),
        (lambda: {1e-4: 3.0, 1e-3: 2.25, 1e-2: 1.5, 1e-1: 2.25}, "a rerun gives 2.0000"),  # a made-up best
    ],
    ids=["not-a-dict", "three-rates", "narrow", "not-measured"],
)
def test_lr_sweep_wrong_answers_get_their_hints(answer, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch09.check_lr_sweep(answer, _trial)


def test_lr_sweep_untouched_stub_is_not_attempted_yet():
    def stub():
        raise NotImplementedError("fill me in")

    message = ch09.check_lr_sweep(stub, _trial)
    assert message.startswith("not attempted yet") and "fill me in" in message


@pytest.mark.parametrize(
    "checker",
    [ch09.check_cross_entropy_by_hand, ch09.check_lr_at, ch09.check_weight_decay_split],
    ids=["cross_entropy", "lr_at", "weight_decay_split"],
)
def test_an_untouched_stub_is_not_attempted_yet(checker):
    def stub(*args):
        raise NotImplementedError("fill me in")

    assert checker(stub).startswith("not attempted yet")
