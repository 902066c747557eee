import pytest
import torch

from gptlib.exercises import ExerciseError, ch10
from gptlib.generate import generate, next_token_probs

# ---------------------------------------------------------------------------
# Exercise 1: temperature


def test_apply_temperature_reference_is_accepted():
    assert ch10.check_apply_temperature(ch10.apply_temperature).startswith("correct")
    # the same numbers as gptlib's next_token_probs
    logits = torch.randn(2, 30, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ch10.apply_temperature(logits, 0.7), next_token_probs(logits, temperature=0.7))


def test_apply_temperature_accepts_an_equivalent_answer():
    # p ** (1 / T), renormalised, is the same distribution as softmax(logits / T)
    def via_powers(logits, T):
        p = torch.softmax(logits, dim=-1) ** (1 / T)
        return p / p.sum(dim=-1, keepdim=True)

    assert ch10.check_apply_temperature(via_powers).startswith("correct")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda z, T: torch.softmax(z * T, dim=-1), "you multiplied the logits by the temperature"),
        (lambda z, T: torch.softmax(z, dim=-1) / T, "not the probabilities after it"),
        (lambda z, T: torch.softmax(z, dim=-1), "the temperature has no effect"),
        (lambda z, T: torch.softmax(z / T, dim=0), "wrong dimension"),
    ],
    ids=["multiplied", "divided-probs", "ignored", "wrong-dim"],
)
def test_apply_temperature_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_apply_temperature(wrong)


def test_apply_temperature_unknown_wrong_answer_fails_clearly():
    with pytest.raises(ExerciseError, match="values differ"):
        ch10.check_apply_temperature(lambda z, T: torch.softmax(z / (T + 1), dim=-1))


# ---------------------------------------------------------------------------
# Exercise 2: top-k


def test_top_k_filter_reference_is_accepted():
    assert ch10.check_top_k_filter(ch10.top_k_filter).startswith("correct")
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(1))
    filtered = ch10.top_k_filter(logits, 7)
    assert (filtered > float("-inf")).sum(dim=-1).tolist() == [7, 7, 7]
    torch.testing.assert_close(torch.softmax(filtered, dim=-1), next_token_probs(logits, top_k=7))


def test_top_k_filter_accepts_a_scatter_answer():
    def via_scatter(logits, k):
        values, indices = torch.topk(logits, k, dim=-1)
        return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)

    assert ch10.check_top_k_filter(via_scatter).startswith("correct")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (ch10._keep_k_plus_one, "you kept k \\+ 1 logits"),
        (ch10._keep_k_smallest, "you kept the k smallest logits"),
        (
            lambda z, k: z.masked_fill(z >= torch.topk(z, k, dim=-1).values[..., -1:], float("-inf")),
            "you removed the k largest",
        ),
        (
            lambda z, k: z.masked_fill(z < torch.topk(z, k, dim=-1).values[..., -1:], 0.0),
            "a removed logit must be -inf",
        ),
        (lambda z, k: torch.softmax(ch10.top_k_filter(z, k), dim=-1), "return the filtered logits"),
    ],
    ids=["k-plus-one", "k-smallest", "inverted", "zero-fill", "probabilities"],
)
def test_top_k_filter_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_top_k_filter(wrong)


# ---------------------------------------------------------------------------
# Exercise 3: top-p


def test_top_p_filter_reference_is_accepted():
    assert ch10.check_top_p_filter(ch10.top_p_filter).startswith("correct")
    logits = torch.randn(2, 30, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        ch10.top_p_filter(torch.softmax(logits, dim=-1), 0.8), next_token_probs(logits, top_p=0.8)
    )


def test_top_p_keeps_the_smallest_set_that_reaches_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    torch.testing.assert_close(ch10.top_p_filter(probs, 0.7), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    torch.testing.assert_close(ch10.top_p_filter(probs, 0.4), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))


def test_excluding_the_crossing_token_gets_its_hint():
    # the usual form of the mistake keeps nothing in a confident row, which gives NaN
    with pytest.raises(ExerciseError, match="some rows are NaN.*Keep the token that makes the total reach p"):
        ch10.check_top_p_filter(ch10._without_the_crossing_token)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (ch10._without_renormalising, "must sum to 1 again"),
        (ch10._left_sorted, "still in sorted order"),
    ],
    ids=["not-renormalised", "sorted-order"],
)
def test_top_p_filter_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_top_p_filter(wrong)


# ---------------------------------------------------------------------------
# Exercise 4: the greedy loop


def test_greedy_generate_reference_is_accepted_and_matches_gptlib():
    assert ch10.check_greedy_generate(ch10.greedy_generate).startswith("correct")
    for model, idx, n in ch10._generation_cases():
        want = generate(model, idx, n, temperature=0, kv_cache=False)
        assert torch.equal(ch10.greedy_generate(model, idx, n), want)


def test_gptlib_generate_is_accepted():
    assert ch10.check_greedy_generate(lambda m, idx, n: m.generate(idx, n, temperature=0)).startswith("correct")


def test_not_cropping_to_block_size_gets_its_hint():
    def uncropped(model, idx, n):
        for _ in range(n):
            logits, _ = model(idx)
            idx = torch.cat([idx, logits[:, -1, :].argmax(dim=-1, keepdim=True)], dim=1)
        return idx

    with pytest.raises(ExerciseError, match=r"crop the context to its last block_size tokens"):
        ch10.check_greedy_generate(uncropped)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (ch10._last_token_only, "you fed the model only the newest token"),
        (ch10._first_block, "keep its last block_size tokens"),
        (ch10._first_position, "in the last row of the logits"),
    ],
    ids=["last-token-only", "first-block", "first-row"],
)
def test_greedy_generate_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_greedy_generate(wrong)


def test_a_stub_that_returns_the_prompt_fails_on_shape():
    with pytest.raises(ExerciseError, match="expected shape"):
        ch10.check_greedy_generate(lambda model, idx, n: idx)
