"""Chapter 9's checkers accept right answers and name typical wrong ones. The wrong
answers are written here as a reader would write them, independently of the checkers'
own list of mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F

from gptlib import GPT, GPTConfig
from gptlib.exercises import ExerciseError, ch09
from gptlib.train import RECIPES, make_optimizer

# ---------------------------------------------------------------------------
# Exercise 1: cross_entropy_by_hand


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


def ce_without_the_minus(logits, targets):
    log_probs = torch.log_softmax(logits, dim=-1).flatten(0, 1)
    return log_probs[torch.arange(log_probs.size(0)), targets.flatten()].mean()


def ce_on_raw_logits(logits, targets):
    return F.nll_loss(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))  # nll_loss takes log-probs


def ce_of_probabilities(logits, targets):
    probs = torch.softmax(logits, dim=-1)
    return -probs.gather(-1, targets[..., None]).mean()


def ce_softmax_over_positions(logits, targets):
    log_probs = torch.log(torch.softmax(logits, dim=1))
    B, T = targets.shape
    return -torch.stack([log_probs[b, t, targets[b, t]] for b in range(B) for t in range(T)]).mean()


def ce_summed(logits, targets):
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), reduction="sum")


def ce_per_position(logits, targets):
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)


def ce_averaged_over_the_batch(logits, targets):
    return F.cross_entropy(logits.permute(0, 2, 1), targets, reduction="none").mean(dim=0)


def ce_over_the_whole_vocabulary(logits, targets):
    return -(logits - logits.logsumexp(dim=-1, keepdim=True)).mean()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (ce_without_the_minus, "MINUS their mean"),
        (ce_on_raw_logits, "raw logits as if they were log-probabilities"),
        (ce_of_probabilities, "their negative LOG"),
        (ce_softmax_over_positions, "softmax ran over the wrong dimension"),
        (ce_summed, "you summed over the positions"),
        (ce_per_position, r"loss of every position, shape \(B, T\)"),
        (ce_averaged_over_the_batch, "averaged over the batch only"),
        (ce_over_the_whole_vocabulary, "every character of the vocabulary"),
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
    ],
)
def test_cross_entropy_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch09.check_cross_entropy_by_hand(wrong)


def test_cross_entropy_without_flattening_gets_the_checkers_own_hint_as_it_is():
    with pytest.raises(ExerciseError) as error:
        ch09.check_cross_entropy_by_hand(lambda logits, targets: F.cross_entropy(logits, targets))
    message = str(error.value)
    assert message.startswith("cross_entropy_by_hand: not yet. Hint: F.cross_entropy reads dimension 1")
    assert "Flatten first" in message and "your function raised" not in message


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


def lr_without_warmup(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step >= decay_iters:
        return min_lr
    return min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * step / decay_iters)) / 2


def lr_warmup_from_zero(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * step / warmup_iters  # 0 at step 0
    if step >= decay_iters:
        return min_lr
    ratio = (step - warmup_iters) / (decay_iters - warmup_iters)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * ratio))


def lr_cosine_from_step_zero(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    if step >= decay_iters:
        return min_lr
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * step / decay_iters))


def lr_decaying_to_zero(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    ratio = min(1.0, (step - warmup_iters) / (decay_iters - warmup_iters))
    return max_lr * 0.5 * (1.0 + math.cos(math.pi * ratio))  # min_lr never used


def lr_without_a_floor(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    ratio = (step - warmup_iters) / (decay_iters - warmup_iters)  # goes past 1 after decay_iters
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * ratio))


def lr_decaying_linearly(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    if step >= decay_iters:
        return min_lr
    return max_lr - (max_lr - min_lr) * (step - warmup_iters) / (decay_iters - warmup_iters)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lr_without_warmup, "there is no warmup"),
        (lr_warmup_from_zero, "your warmup starts at 0"),
        (lr_cosine_from_step_zero, "the cosine runs over the wrong range"),
        (lr_decaying_to_zero, "the rate decays to 0; it should decay to min_lr"),
        (lr_without_a_floor, "the rate climbs again"),
        (lr_decaying_linearly, "straight-line decay"),
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


def decay_everything(model):
    return [name for name, _ in model.named_parameters()], []


def decay_by_name(model):
    names = [name for name, _ in model.named_parameters()]
    return [n for n in names if n.endswith("weight")], [n for n in names if n.endswith("bias")]


def decay_the_linear_weights_only(model):
    linear = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    names = [name for name, _ in model.named_parameters()]
    return [n for n in names if n in linear], [n for n in names if n not in linear]


def decay_groups_returned_swapped(model):
    decay = [name for name, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [name for name, p in model.named_parameters() if p.ndim < 2]
    return no_decay, decay


def decay_from_the_state_dict(model):
    state = model.state_dict()  # lists the tied lm_head.weight under its own name too
    return [n for n, t in state.items() if t.dim() >= 2], [n for n, t in state.items() if t.dim() < 2]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (decay_everything, "you decay every parameter"),
        (decay_by_name, "Decide by shape, not by name"),
        (decay_the_linear_weights_only, "embeddings wte and wpe are matrices"),
        (decay_groups_returned_swapped, "the two groups are swapped"),
        (decay_from_the_state_dict, "List each tensor once"),
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
