"""The shared checker: an untouched stub is 'not attempted yet', never correct."""

import pytest
import torch

from gptlib.exercises import ExerciseError, check


def reference(x):
    return 2 * x


CASES = [(torch.arange(4.0),), (torch.ones(2, 3),)]


def test_untouched_stub_is_not_attempted():
    def my_double(x):
        raise NotImplementedError("multiply x by 2")

    message = check("double", my_double, reference, CASES)
    assert message == "not attempted yet: double (multiply x by 2)"
    assert "correct" not in message


def test_a_stub_that_returns_its_input_is_wrong_not_correct():
    with pytest.raises(ExerciseError, match="values differ"):
        check("double", lambda x: x, reference, CASES)


def test_other_errors_are_reported_as_the_answer():
    def my_double(x):
        raise ValueError("oops")

    with pytest.raises(ExerciseError, match="your function raised ValueError: oops"):
        check("double", my_double, reference, CASES)


def test_right_answer_is_correct():
    assert check("double", lambda x: x + x, reference, CASES).startswith("correct: double agrees")
