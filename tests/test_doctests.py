import doctest

import pytest

import gptlib.exercises
import gptlib.tokenizer


@pytest.mark.parametrize("module", [gptlib.tokenizer, gptlib.exercises], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
