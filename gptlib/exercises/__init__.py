"""Checkers for the book's exercises.

Each chapter's checkers live in their own module (``gptlib.exercises.ch03`` and so on).
A checker runs the reader's function and gptlib's reference on the same random inputs.
When they disagree it does not stop at "wrong": it also runs the typical mistakes it
knows, and when the reader's output matches one of them it says which, as a hint.

    >>> from gptlib.exercises import ch04
    >>> ch04.check_allowed_pairs(lambda T: T * (T + 1) // 2)
    'correct: allowed_pairs agrees with the reference on 4 inputs'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


class ExerciseError(AssertionError):
    """The reader's answer disagrees with the reference; the message says how."""


_CRASHED = object()  # stands for the output of an input on which the reader's function raised


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer, and what to tell the reader whose output matches it."""

    wrong: Callable[..., Any]
    hint: str


def same(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when two outputs agree: tensors in shape and value, tuples item by item."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            return False
        return bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol, equal_nan=False))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y, atol, rtol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= atol + rtol * abs(float(b))
        except (TypeError, ValueError):
            return False
    return a == b


def describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {list(x.shape)}"
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}: " + ", ".join(describe(v) for v in x)
    return repr(x)


def check(
    name: str,
    learner: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[tuple],
    mistakes: Iterable[Mistake] = (),
    atol: float = 1e-5,
    rtol: float = 1e-4,
    nan_hint: str | None = None,
) -> str:
    """Compare learner(*case) with reference(*case) on every case.

    Returns a one-line success message, or raises ExerciseError saying what differs
    and, when the output matches a known mistake, the likely cause. With nan_hint, an
    output holding NaN or inf gets that hint (such outputs match no reference).

    A stub the reader has not filled in yet raises NotImplementedError: then the check
    returns "not attempted yet: ..." instead of failing, so that running a whole
    notebook never stops at an untouched exercise (and never calls it correct).

    Any other exception is reported as the answer, with the first input it was raised
    on. The function still runs on the other inputs: a typical mistake often fails only
    on some (a transposed weight on the non-square ones, k + 1 on a row of k), and when
    its outputs on the inputs where it ran are wrong and match a mistake on every one of
    them, the report adds that mistake's hint. An ExerciseError raised inside learner (a
    checker's own wrapper that recognised a mistake) is passed on as it is.
    """
    outputs: list[Any] = []
    crash: tuple[int, Exception] | None = None
    for i, case in enumerate(cases):
        try:
            outputs.append(learner(*case))
        except ExerciseError:  # raised by a checker's wrapper, already worded for the reader
            raise
        except NotImplementedError as e:
            if crash is None:  # the untouched stub: nothing to grade yet
                return f"not attempted yet: {name}" + (f" ({e})" if str(e) else "")
            outputs.append(_CRASHED)
        except Exception as e:  # the reader's code raised: report it as the answer
            crash = crash or (i, e)
            outputs.append(_CRASHED)
    if crash is not None:
        i, e = crash
        message = f"{name}: your function raised {type(e).__name__}: {e} (on input {i + 1})"
        ran = [(case, got) for case, got in zip(cases, outputs) if got is not _CRASHED]
        if any(not same(got, reference(*case), atol, rtol) for case, got in ran):
            for mistake in mistakes:
                if all(matches(mistake.wrong, case, got, atol, rtol) for case, got in ran):
                    message += f". On the inputs where it ran, it matches a known mistake. Hint: {mistake.hint}"
                    break
        raise ExerciseError(message) from e
    if nan_hint is not None and any(
        isinstance(out, torch.Tensor) and out.is_floating_point() and not torch.isfinite(out).all() for out in outputs
    ):
        raise ExerciseError(f"{name}: not yet. Hint: {nan_hint}")
    expected = [reference(*case) for case in cases]
    wrong = [i for i, (got, want) in enumerate(zip(outputs, expected)) if not same(got, want, atol, rtol)]
    if not wrong:
        return f"correct: {name} agrees with the reference on {len(cases)} input{'' if len(cases) == 1 else 's'}"
    for mistake in mistakes:  # a hint only when the output matches the mistake on every input
        if all(matches(mistake.wrong, case, got, atol, rtol) for case, got in zip(cases, outputs)):
            raise ExerciseError(f"{name}: not yet. Hint: {mistake.hint}")
    i = wrong[0]
    raise ExerciseError(f"{name}: {difference(expected[i], outputs[i], atol, rtol)} (input {i + 1})")


def difference(want: Any, got: Any, atol: float = 1e-5, rtol: float = 1e-4) -> str:
    """Say how got differs from want (two outputs that are not the same): the shapes when
    they differ, otherwise the values, without describing equal shapes as a difference."""
    if isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor):
        if got.shape != want.shape:
            return f"expected shape {list(want.shape)}, got {list(got.shape)}"
        if got.is_floating_point() and not torch.isfinite(got).all():
            return f"the shape, {list(got.shape)}, is right, but the values differ: some of yours are NaN or infinite"
        if not (got.is_floating_point() or want.is_floating_point()):  # ids, counts, masks: which ones differ
            n = int((got != want).sum())
            return f"the shape, {list(got.shape)}, is right, but {n} of the {got.numel()} values differ"
        gap = (got.double() - want.double()).abs().max().item()
        return f"the shape, {list(got.shape)}, is right, but the values differ, by up to {gap:.3g}"
    if describe(got) == describe(want) and isinstance(got, (tuple, list)) and isinstance(want, (tuple, list)):
        j = next(j for j, (w, g) in enumerate(zip(want, got)) if not same(g, w, atol, rtol))
        return f"in item {j + 1} of the {type(got).__name__}, {difference(want[j], got[j], atol, rtol)}"
    return f"expected {describe(want)}, got {describe(got)}; values differ"


def whole_number(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap fn so that a whole-number answer (a float like 124046592.0, a one-element
    tensor) becomes an int, and counts are compared exactly."""

    def run(*args):
        result = fn(*args)
        if isinstance(result, torch.Tensor) and result.numel() == 1:
            result = result.item()
        if isinstance(result, float):
            return int(result) if result.is_integer() else f"{result!r}, not a whole number"
        return result

    return run


def matches(wrong: Callable[..., Any], case: tuple, got: Any, atol: float, rtol: float) -> bool:
    try:
        return same(got, wrong(*case), atol, rtol)
    except Exception:
        return False
