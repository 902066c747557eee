"""The data splits of chapter 9: the held-out end, and passages held out from inside the training part."""

import pytest
import torch

from gptlib.dataset import Splits, hold_out_passages, passage_split, read_text, shakespeare_path, train_val_split


def test_a_passage_is_the_end_of_every_whole_stretch():
    ids = torch.arange(25)
    kept, passages = hold_out_passages(ids, every=10, length=3)
    # Stretches 0..9 and 10..19 lose their last 3; the short stretch 20..24 is kept whole.
    assert passages.tolist() == [7, 8, 9, 17, 18, 19]
    assert kept.tolist() == [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 20, 21, 22, 23, 24]
    assert sorted(kept.tolist() + passages.tolist()) == ids.tolist()  # nothing lost, nothing doubled


def test_an_exact_number_of_stretches_leaves_no_tail():
    kept, passages = hold_out_passages(torch.arange(20), every=5, length=1)
    assert passages.tolist() == [4, 9, 14, 19]
    assert len(kept) == 16 and kept.dtype == passages.dtype == torch.long


def test_passage_split_of_the_bundled_corpus():
    from gptlib import CharTokenizer

    text = read_text(shakespeare_path())
    ids = torch.tensor(CharTokenizer(text).encode(text))
    splits = passage_split(ids)
    assert isinstance(splits, Splits)
    head, val = train_val_split(ids)
    assert torch.equal(splits.val, val)  # the end is train_val_split's, unchanged
    # 4,360,959 ids before the end: 109 whole stretches of 40,000, each losing its last 2,000.
    assert (len(splits.train), len(splits.passages), len(splits.val)) == (4_142_959, 218_000, 484_551)
    assert len(splits.train) + len(splits.passages) == len(head)
    first = head[38_000:40_000]
    assert torch.equal(splits.passages[:2_000], first) and torch.equal(splits.train[:38_000], head[:38_000])
    assert torch.equal(splits.train[38_000:76_000], head[40_000:78_000])  # training resumes after the passage
    assert torch.equal(splits.train[-(len(head) - 4_360_000) :], head[4_360_000:])  # the short last stretch


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(ids=[1, 2, 3], every=2, length=1), "1-D tensor"),
        (dict(ids=torch.zeros(2, 10, dtype=torch.long), every=2, length=1), "1-D tensor"),
        (dict(every=0, length=1), "every must be an int >= 1, got 0"),
        (dict(every=10.0, length=1), "every must be an int >= 1, got 10.0"),
        (dict(every=True, length=1), "every must be an int >= 1, got True"),
        (dict(every=10, length=0), "length must be an int >= 1, got 0"),
        (dict(every=10, length=10), "length 10 must be smaller than every 10"),
        (dict(every=200, length=10), "the ids are 100 long, shorter than one stretch of every=200"),
    ],
)
def test_hold_out_passages_names_each_bad_argument(args, message):
    args = {"ids": torch.arange(100), **args}
    with pytest.raises(ValueError, match=message):
        hold_out_passages(**args)


def test_passage_split_names_bad_arguments():
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\), got 1.5"):
        passage_split(torch.arange(100), val_fraction=1.5, every=10, length=2)
    with pytest.raises(ValueError, match="length 20 must be smaller than every 10"):
        passage_split(torch.arange(100), every=10, length=20)
