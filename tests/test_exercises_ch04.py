import pytest

from gptlib.exercises import ExerciseError, ch04


def test_reference_solution_is_accepted():
    assert ch04.check_allowed_pairs(ch04.allowed_pairs).startswith("correct")
    assert ch04.allowed_pairs(512) == 131_328


def test_forgetting_the_diagonal_gets_its_hint():
    with pytest.raises(ExerciseError, match="look at itself: count the diagonal"):
        ch04.check_allowed_pairs(lambda T: T * (T - 1) // 2)


def test_an_unknown_wrong_answer_still_fails_clearly():
    with pytest.raises(ExerciseError, match=r"expected 1, got 0; values differ \(input 1\)"):
        ch04.check_allowed_pairs(lambda T: 0)


def test_a_crashing_answer_is_reported():
    with pytest.raises(ExerciseError, match="your function raised ZeroDivisionError"):
        ch04.check_allowed_pairs(lambda T: 1 // 0)
