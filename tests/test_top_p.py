"""top-p at its edges: ties, and a p smaller than the tolerance."""

import torch

from gptlib.generate import TOP_P_TOLERANCE, next_token_probs


def kept(probs, top_p):
    logits = torch.tensor([probs]).log()
    return (next_token_probs(logits, top_p=top_p)[0] > 0).nonzero().flatten().tolist()


def test_of_tied_tokens_across_p_the_lower_id_stays_whatever_the_vocabulary_size():
    # 40 tokens: sorting more than 16 values is not stable unless asked to be.
    for tied in ((3, 30), (30, 3), (0, 39)):
        probs = [0.2 / 38] * 40
        for i in tied:
            probs[i] = 0.4
        assert kept(probs, 0.3) == [min(tied)], tied


def test_a_p_below_the_tolerance_keeps_the_most_likely_token():
    probs = next_token_probs(torch.tensor([[2.0, 1.0, 0.5]]), top_p=TOP_P_TOLERANCE / 2)
    assert probs.tolist() == [[1.0, 0.0, 0.0]]


def test_the_boundary_case_from_the_live_page_keeps_two():
    assert kept([0.5, 0.3, 0.15, 0.05], 0.8) == [0, 1]
