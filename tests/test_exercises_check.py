"""The shared checker: an untouched stub is "not attempted yet", never correct; errors, hints
and differences are reported truthfully."""

import pytest
import torch

from gptlib.exercises import ExerciseError, Mistake, check


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


def test_a_wrong_answer_of_the_right_shape_is_not_told_its_shape_differs():
    with pytest.raises(ExerciseError) as error:
        check("double", lambda x: 3 * x, reference, CASES)
    message = str(error.value)
    assert message == "double: the shape, [4], is right, but the values differ, by up to 3 (input 1)"
    assert "got a tensor of shape" not in message


def test_a_wrong_shape_is_reported_as_one():
    with pytest.raises(ExerciseError, match=r"double: expected shape \[4\], got \[1, 4\] \(input 1\)"):
        check("double", lambda x: 2 * x.unsqueeze(0), reference, CASES)


def test_nan_in_an_answer_of_the_right_shape_is_named():
    with pytest.raises(ExerciseError, match=r"is right, but the values differ: some of yours are NaN or infinite"):
        check("double", lambda x: x / 0 * 0, reference, CASES)


def test_a_tuple_of_right_shapes_names_the_item_that_differs():
    def pair(x):
        return x, 2 * x

    with pytest.raises(ExerciseError) as error:
        check("pair", lambda x: (x, 2 * x + 1), pair, CASES)
    assert (
        str(error.value)
        == "pair: in item 2 of the tuple, the shape, [4], is right, but the values differ, by up to 1 (input 1)"
    )


def test_answers_that_are_not_tensors_still_say_what_was_expected():
    with pytest.raises(ExerciseError, match=r"count: expected 4, got 5; values differ \(input 1\)"):
        check("count", lambda x: x.numel() + 1, lambda x: x.numel(), CASES)


TRIPLE = Mistake(lambda x: 3 * x, "you multiplied by 3")


def test_a_mistake_that_raises_on_some_inputs_gets_its_hint_with_the_error():
    def triple_vectors_only(x):
        if x.dim() != 1:
            raise ValueError("only vectors")
        return x * 3

    with pytest.raises(ExerciseError) as error:
        check("double", triple_vectors_only, reference, CASES, [TRIPLE])
    message = str(error.value)
    assert message.startswith("double: your function raised ValueError: only vectors (on input 2)")
    assert message.endswith("Hint: you multiplied by 3")


def test_an_answer_right_where_it_runs_gets_no_hint_for_its_error():
    def double_vectors_only(x):
        if x.dim() != 1:
            raise ValueError("only vectors")
        return x * 2

    with pytest.raises(ExerciseError) as error:
        check("double", double_vectors_only, reference, CASES, [TRIPLE, Mistake(lambda x: 2 * x, "never")])
    assert str(error.value) == "double: your function raised ValueError: only vectors (on input 2)"


def test_a_wrong_answer_that_raises_and_matches_no_mistake_gets_no_hint():
    def halve_vectors_only(x):
        if x.dim() != 1:
            raise ValueError("only vectors")
        return x / 2

    with pytest.raises(ExerciseError) as error:
        check("double", halve_vectors_only, reference, CASES, [TRIPLE])
    assert "Hint" not in str(error.value)


def test_a_stub_raising_after_an_error_is_not_called_not_attempted():
    def half_written(x):
        if x.dim() == 1:
            raise ValueError("oops")
        raise NotImplementedError("the rest")

    with pytest.raises(ExerciseError, match=r"your function raised ValueError: oops \(on input 1\)"):
        check("double", half_written, reference, CASES)


def test_an_exercise_error_from_a_checkers_wrapper_is_passed_on_unchanged():
    def wrapper(x):
        raise ExerciseError("double: not yet. Hint: a hint the checker found itself")

    with pytest.raises(ExerciseError) as error:
        check("double", wrapper, reference, CASES)
    assert str(error.value) == "double: not yet. Hint: a hint the checker found itself"


def test_whole_number_tensors_of_the_right_shape_say_how_many_values_differ():
    def next_ids(ids):
        return ids + 1

    with pytest.raises(ExerciseError) as error:
        check("next_ids", lambda ids: ids + torch.tensor([1, 1, 2, 3]), next_ids, [(torch.arange(4),)])
    assert str(error.value) == "next_ids: the shape, [4], is right, but 2 of the 4 values differ (input 1)"
