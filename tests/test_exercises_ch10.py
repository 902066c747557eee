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
        (
            lambda z, k: z.masked_fill(
                z < torch.topk(z, min(k + 1, z.size(-1)), dim=-1).values[..., -1:], float("-inf")
            ),
            "you kept k \\+ 1 logits",
        ),
        (
            lambda z, k: z.masked_fill(z > torch.topk(z, k, dim=-1, largest=False).values[..., -1:], float("-inf")),
            "you kept the k smallest logits",
        ),
        (
            lambda z, k: z.masked_fill(z >= torch.topk(z, k, dim=-1).values[..., -1:], float("-inf")),
            "you removed the k largest",
        ),
        (
            lambda z, k: z.masked_fill(z < torch.topk(z, k, dim=-1).values[..., -1:], 0.0),
            "a removed logit must be -inf",
        ),
        (
            lambda z, k: torch.softmax(
                z.masked_fill(z < torch.topk(z, k, dim=-1).values[..., -1:], float("-inf")), dim=-1
            ),
            "return the filtered logits",
        ),
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


def _nucleus_without_the_crossing_token(probs, p):
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    kept = sorted_probs * (sorted_probs.cumsum(dim=-1) <= p)  # drops the token that crosses p
    kept = torch.zeros_like(probs).scatter(-1, order, kept)
    return kept / kept.sum(dim=-1, keepdim=True)


def _nucleus_not_renormalised(probs, p):
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    keep = sorted_probs.cumsum(dim=-1) - sorted_probs < p
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)


def _nucleus_left_sorted(probs, p):
    sorted_probs = probs.sort(dim=-1, descending=True).values
    kept = sorted_probs * (sorted_probs.cumsum(dim=-1) - sorted_probs < p)
    return kept / kept.sum(dim=-1, keepdim=True)


def test_excluding_the_crossing_token_gets_its_hint():
    # the usual form of the mistake keeps nothing in a confident row, which gives NaN
    with pytest.raises(ExerciseError, match="some rows are NaN.*Keep the token that makes the total reach p"):
        ch10.check_top_p_filter(_nucleus_without_the_crossing_token)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_nucleus_not_renormalised, "must sum to 1 again"),
        (_nucleus_left_sorted, "still in sorted order"),
    ],
    ids=["not-renormalised", "sorted-order"],
)
def test_top_p_filter_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_top_p_filter(wrong)


# ---------------------------------------------------------------------------
# Exercise 4: the greedy loop


@torch.no_grad()
def _greedy_last_token_only(model, idx, n):
    for _ in range(n):
        logits, _ = model(idx[:, -1:])  # forgets the context
        idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


@torch.no_grad()
def _greedy_first_window(model, idx, n):
    for _ in range(n):
        logits, _ = model(idx[:, : model.config.block_size])  # keeps the start, not the end
        idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


@torch.no_grad()
def _greedy_first_row(model, idx, n):
    for _ in range(n):
        logits, _ = model(idx[:, -model.config.block_size :])
        idx = torch.cat([idx, logits[:, 0].argmax(dim=-1, keepdim=True)], dim=1)  # row 0, not the last
    return idx


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
        (_greedy_last_token_only, "you fed the model only the newest token"),
        (_greedy_first_window, "keep its last block_size tokens"),
        (_greedy_first_row, "in the last row of the logits"),
    ],
    ids=["last-token-only", "first-block", "first-row"],
)
def test_greedy_generate_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_greedy_generate(wrong)


def test_a_stub_that_returns_the_prompt_fails_on_shape():
    with pytest.raises(ExerciseError, match="expected shape"):
        ch10.check_greedy_generate(lambda model, idx, n: idx)


def test_the_shakespeare_case_runs_past_the_models_window():
    model, idx, n = ch10._generation_cases()[-1]
    assert idx.size(1) + n > model.config.block_size


# ---------------------------------------------------------------------------
# Exercise 5: a repetition penalty


def test_repetition_penalty_reference_is_accepted_and_equals_hugging_face():
    assert ch10.check_repetition_penalty(ch10.repetition_penalty).startswith("correct")
    transformers = pytest.importorskip("transformers")
    hf = transformers.RepetitionPenaltyLogitsProcessor(penalty=1.3)
    g = torch.Generator().manual_seed(3)
    logits, context = 3 * torch.randn(2, 25, generator=g), torch.randint(0, 25, (2, 11), generator=g)
    torch.testing.assert_close(ch10.repetition_penalty(logits, context, 1.3), hf(context, logits.clone()))


def test_repetition_penalty_by_hand():
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0]])
    context = torch.tensor([[0, 1, 1]])  # tokens 0 and 1 occur (1 twice); 2 and 3 do not
    want = torch.tensor([[1.0, -4.0, 1.0, -1.0]])
    torch.testing.assert_close(ch10.repetition_penalty(logits, context, 2.0), want)


def _seen(z, ctx):
    return torch.zeros_like(z, dtype=torch.bool).scatter(-1, ctx, True)


def _penalty_per_occurrence(z, ctx, p):
    counts = torch.zeros_like(z)
    for b in range(z.size(0)):
        for t in ctx[b].tolist():
            counts[b, t] += 1
    return torch.where(z > 0, z / p**counts, z * p**counts)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda z, ctx, p: torch.where(_seen(z, ctx), z / p, z), "makes the token MORE likely"),
        (lambda z, ctx, p: torch.where(z > 0, z / p, z * p), "you penalised every token"),
        (lambda z, ctx, p: torch.where(_seen(z, ctx), torch.where(z > 0, z * p, z / p), z), "that rewards repetition"),
        (_penalty_per_occurrence, "once per token"),
        (lambda z, ctx, p: torch.where(_seen(z, ctx), z - p, z), "it is not subtracted"),
    ],
    ids=["divide-always", "whole-vocabulary", "inverted", "per-occurrence", "subtracted"],
)
def test_repetition_penalty_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_repetition_penalty(wrong)


def test_repetition_penalty_unknown_wrong_answer_fails_clearly():
    with pytest.raises(ExerciseError, match="values differ"):
        ch10.check_repetition_penalty(lambda z, ctx, p: z * 0.5)


# ---------------------------------------------------------------------------
# Every checker: an untouched stub is "not attempted yet", never correct


def _stub(*args):
    raise NotImplementedError("fill me in")


@pytest.mark.parametrize(
    "checker",
    [
        ch10.check_apply_temperature,
        ch10.check_top_k_filter,
        ch10.check_top_p_filter,
        ch10.check_greedy_generate,
        ch10.check_repetition_penalty,
    ],
    ids=["temperature", "top-k", "top-p", "greedy", "repetition-penalty"],
)
def test_an_untouched_stub_is_not_attempted_yet(checker):
    assert checker(_stub).startswith("not attempted yet")
