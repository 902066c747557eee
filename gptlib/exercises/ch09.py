"""Chapter 9 exercises: training (the loss, the learning-rate schedule, weight decay, a learning-rate sweep)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import GPTConfig
from ..model import GPT
from . import ExerciseError, Mistake, check

# ---------------------------------------------------------------------------
# Exercise 1: the cross-entropy loss over every position, by hand.


def cross_entropy_by_hand(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean over all B * T positions of -log softmax(logits)[target]: a 0-d tensor.

    logits is (B, T, V), targets is (B, T).
    """
    B, T, V = logits.shape
    flat = logits.reshape(B * T, V)  # one row of scores per position
    log_probs = flat - flat.logsumexp(dim=-1, keepdim=True)  # log-softmax of each row
    return -log_probs[torch.arange(B * T), targets.reshape(B * T)].mean()


def _pick(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """values[b, t, targets[b, t]]: shape (B, T)."""
    return values.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _ce_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(9)
    cases = []
    for B, T, V in ((2, 5, 7), (3, 4, 11), (1, 6, 3), (4, 8, 78)):  # T != V, so that an unflattened call fails
        logits = 3 * torch.randn(B, T, V, generator=g)
        cases.append((logits, torch.randint(0, V, (B, T), generator=g)))
    return cases


def check_cross_entropy_by_hand(fn) -> str:
    """Exercise: cross_entropy_by_hand(logits (B, T, V), targets (B, T)) -> the mean loss."""

    def learner(logits, targets):
        try:
            out = fn(logits, targets)
        except Exception as e:
            if "Expected target size" in str(e):
                raise ExerciseError(
                    "cross_entropy_by_hand: not yet. Hint: F.cross_entropy reads dimension 1 as the classes, "
                    "so with logits (B, T, V) it takes T for the vocabulary. Flatten first: logits to "
                    "(B * T, V) and targets to (B * T,)."
                ) from e
            raise
        return out if isinstance(out, torch.Tensor) else torch.tensor(float(out))

    return check(
        "cross_entropy_by_hand",
        learner,
        cross_entropy_by_hand,
        cases=_ce_cases(),
        mistakes=[
            Mistake(
                lambda lg, t: _pick(F.log_softmax(lg, dim=-1), t).mean(),
                "the loss is negative: log-probabilities are at most 0, so the loss is MINUS their mean.",
            ),
            Mistake(
                lambda lg, t: -_pick(lg, t).mean(),
                "you used the raw logits as if they were log-probabilities. Normalise each row first: "
                "log_softmax(logits) = logits - logsumexp(logits) over the vocabulary.",
            ),
            Mistake(
                lambda lg, t: -_pick(torch.softmax(lg, dim=-1), t).mean(),
                "you averaged the probabilities of the targets; the loss averages their negative LOG: -log p(target).",
            ),
            Mistake(
                lambda lg, t: -_pick(F.log_softmax(lg, dim=1), t).mean(),
                "the softmax ran over the wrong dimension. Each position's scores over the vocabulary "
                "must sum to probability 1: normalise over the last dimension (V), not over T.",
            ),
            Mistake(
                lambda lg, t: -_pick(F.log_softmax(lg, dim=-1), t).sum(),
                "you summed over the positions; the loss is the MEAN over all B * T positions, so that "
                "it does not grow with the batch or the context.",
            ),
            Mistake(
                lambda lg, t: -_pick(F.log_softmax(lg, dim=-1), t),
                "you returned the loss of every position, shape (B, T). The loss is one number: their mean.",
            ),
            Mistake(
                lambda lg, t: -_pick(F.log_softmax(lg, dim=-1), t).mean(dim=0),
                "you averaged over the batch only, leaving one loss per position t. Average over all "
                "B * T positions at once: every position is a training example.",
            ),
            Mistake(
                lambda lg, t: -F.log_softmax(lg, dim=-1).mean(),
                "you averaged the log-probabilities of every character of the vocabulary. Pick only the "
                "target's: log_probs[position, target].",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 2: the learning-rate schedule.


def lr_at(step: int, max_lr: float, min_lr: float, warmup_iters: int, decay_iters: int) -> float:
    """Linear warmup to max_lr, then cosine decay to min_lr at decay_iters, then min_lr."""
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    if step >= decay_iters:
        return min_lr
    progress = (step - warmup_iters) / (decay_iters - warmup_iters)  # 0 -> 1
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def _cosine(step, max_lr, min_lr, start, end):
    progress = min(max((step - start) / (end - start), 0.0), 1.0)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def _no_warmup(step, max_lr, min_lr, warmup_iters, decay_iters):
    return _cosine(step, max_lr, min_lr, 0, decay_iters)


def _warmup_from_zero(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * step / warmup_iters
    return lr_at(step, max_lr, min_lr, warmup_iters, decay_iters)


def _cosine_from_step_zero(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    return _cosine(step, max_lr, min_lr, 0, decay_iters)


def _decay_to_zero(step, max_lr, min_lr, warmup_iters, decay_iters):
    return lr_at(step, max_lr, 0.0, warmup_iters, decay_iters)


def _no_floor_after_decay(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    progress = (step - warmup_iters) / (decay_iters - warmup_iters)  # keeps going past 1
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def _linear_decay(step, max_lr, min_lr, warmup_iters, decay_iters):
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    progress = min((step - warmup_iters) / (decay_iters - warmup_iters), 1.0)
    return min_lr + (1 - progress) * (max_lr - min_lr)


def _lr_cases() -> list[tuple]:
    cases = []
    schedules = {
        (5e-3, 1e-4, 20, 1200): (0, 1, 10, 19, 20, 21, 300, 610, 1000, 1199, 1200, 1500),  # tuned-cpu
        (1e-3, 1e-4, 100, 2000): (0, 50, 99, 100, 700, 1500, 1999, 2000, 2600),  # nanogpt-cpu
        (6e-4, 6e-5, 2000, 600_000): (0, 1999, 2000, 150_000, 300_000, 599_999, 700_000),  # nanoGPT's GPT-2 schedule
    }
    for (max_lr, min_lr, warmup, decay), steps in schedules.items():
        cases += [(s, max_lr, min_lr, warmup, decay) for s in steps]
    return cases


def check_lr_at(fn) -> str:
    """Exercise: lr_at(step, max_lr, min_lr, warmup_iters, decay_iters) -> the learning rate."""

    def learner(*args):
        out = fn(*args)
        return float(out) if isinstance(out, torch.Tensor) else out

    return check(
        "lr_at",
        learner,
        lr_at,
        cases=_lr_cases(),
        atol=1e-12,  # learning rates are small numbers: compare them relative to their size
        rtol=1e-6,
        mistakes=[
            Mistake(
                _no_warmup,
                "there is no warmup: for step < warmup_iters the rate should climb in a straight line, "
                "max_lr * (step + 1) / (warmup_iters + 1), and the cosine starts after it.",
            ),
            Mistake(
                _warmup_from_zero,
                "your warmup starts at 0, so step 0 changes nothing. Use max_lr * (step + 1) / "
                "(warmup_iters + 1): it starts small but above 0 and reaches max_lr when the warmup ends.",
            ),
            Mistake(
                _cosine_from_step_zero,
                "the cosine runs over the wrong range: it must start where the warmup ends. Use "
                "progress = (step - warmup_iters) / (decay_iters - warmup_iters), 0 at the end of the "
                "warmup and 1 at decay_iters.",
            ),
            Mistake(
                _decay_to_zero,
                "the rate decays to 0; it should decay to min_lr: min_lr + 0.5 * (1 + cos(pi * progress)) "
                "* (max_lr - min_lr).",
            ),
            Mistake(
                _no_floor_after_decay,
                "after decay_iters your cosine keeps going and the rate climbs again. From decay_iters on, "
                "return min_lr.",
            ),
            Mistake(
                _linear_decay,
                "that is a straight-line decay. The schedule is a cosine: 0.5 * (1 + cos(pi * progress)) "
                "goes from 1 to 0, flat at both ends.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 3: which parameters get weight decay.


def weight_decay_split(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """(names of the parameters to decay, names of those not to decay): matrices are
    decayed (2 or more dimensions: embeddings and Linear weights), vectors are not
    (biases and LayerNorm weights). Each tensor is listed once."""
    decay = [name for name, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [name for name, p in model.named_parameters() if p.dim() < 2]
    return decay, no_decay


def _split_by(model, rule, remove_duplicate=True):
    named = list(model.named_parameters(remove_duplicate=remove_duplicate))
    return [n for n, p in named if rule(n, p)], [n for n, p in named if not rule(n, p)]


def _split_cases() -> list[tuple]:
    configs = (
        GPTConfig(vocab_size=78, block_size=64, n_layer=3, n_head=4, n_embd=128, bias=False),  # tuned-cpu
        GPTConfig.from_preset("tiny"),  # with biases
    )
    models = []
    for config in configs:
        with torch.device("meta"):  # shapes only: no memory, no time
            models.append(GPT(config))
    return [(m,) for m in models]


def check_weight_decay_split(fn) -> str:
    """Exercise: weight_decay_split(model) -> (names to decay, names not to decay)."""

    def as_sorted(split):
        decay, no_decay = split
        return sorted(decay), sorted(no_decay)

    return check(
        "weight_decay_split",
        lambda model: as_sorted(fn(model)),
        lambda model: as_sorted(weight_decay_split(model)),
        cases=_split_cases(),
        mistakes=[
            Mistake(
                lambda m: as_sorted(_split_by(m, lambda n, p: True)),
                "you decay every parameter. Biases and LayerNorm weights are vectors that shift and scale; "
                "pulling them toward 0 does not make the model simpler. Decay the matrices only (p.dim() >= 2).",
            ),
            Mistake(
                lambda m: as_sorted(_split_by(m, lambda n, p: "weight" in n)),
                "the LayerNorms' weights are called 'weight' too, but they are vectors of gains, which "
                "decay would pull toward 0. Decide by shape, not by name: decay when p.dim() >= 2.",
            ),
            Mistake(
                lambda m: as_sorted(_split_by(m, lambda n, p: p.dim() >= 2 and ".h." in n)),
                "the embeddings wte and wpe are matrices too, and the rule here decays every matrix, "
                "embeddings included (wte is also lm_head's weight). That is nanoGPT's rule and "
                "make_optimizer's; minGPT decayed only the Linear weights.",
            ),
            Mistake(
                lambda m: as_sorted(_split_by(m, lambda n, p: p.dim() < 2)),
                "the two groups are swapped: the matrices (p.dim() >= 2) are decayed, the vectors are not.",
            ),
            Mistake(
                lambda m: as_sorted(_split_by(m, lambda n, p: p.dim() >= 2, remove_duplicate=False)),
                "lm_head.weight is the same tensor as transformer.wte.weight (weight tying). List each "
                "tensor once: model.named_parameters() already skips the second name.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 4, an experiment: a learning-rate sweep.


def check_lr_sweep(fn, trial, atol: float = 1e-3) -> str:
    """Exercise: fn() -> {learning_rate: validation loss}, measured with trial(lr).

    An experiment has no single right answer, so the checker checks the measurements:
    at least four rates, spread over at least a factor of 100, and the best one agrees
    with a rerun of trial(best) within atol. It names the best rate and says whether
    both ends of the sweep are worse than it (the U shape a learning-rate sweep has).
    """
    name = "lr_sweep"
    try:
        results = fn()
    except NotImplementedError as e:
        return f"not attempted yet: {name}" + (f" ({e})" if str(e) else "")
    except Exception as e:
        raise ExerciseError(f"{name}: your function raised {type(e).__name__}: {e}") from e
    if not isinstance(results, dict) or not all(
        isinstance(k, (int, float)) and isinstance(v, (int, float)) for k, v in results.items()
    ):
        raise ExerciseError(
            f"{name}: not yet. Hint: return a dict {{learning_rate: validation loss}} of numbers, "
            f"got {type(results).__name__}"
        )
    rates = sorted(results)
    if len(rates) < 4:
        raise ExerciseError(f"{name}: not yet. Hint: try at least four learning rates; you tried {len(rates)}.")
    if rates[0] <= 0 or rates[-1] / rates[0] < 100:
        raise ExerciseError(
            f"{name}: not yet. Hint: spread the rates over at least a factor of 100 "
            f"(yours go from {rates[0]:g} to {rates[-1]:g}), for example 1e-4 to 1e-1."
        )
    best = min(rates, key=results.get)
    again = float(trial(best))
    if abs(again - results[best]) > atol:
        raise ExerciseError(
            f"{name}: not yet. Hint: at learning rate {best:g} you report {results[best]:.4f}, "
            f"but a rerun gives {again:.4f}: measure each rate with the same run "
            f"(no dropout, the same number of steps, a fresh model)."
        )
    u_shape = (
        "both ends are worse than it"
        if best not in (rates[0], rates[-1])
        else "it sits at an end of your sweep: extend the sweep past it to see the other side"
    )
    return (
        f"correct: {name}: {len(rates)} rates from {rates[0]:g} to {rates[-1]:g}; your best is {best:g} "
        f"(val loss {results[best]:.2f}), and {u_shape}"
    )
