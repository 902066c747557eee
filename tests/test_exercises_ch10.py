"""Chapter 10's checkers accept right answers and name typical wrong ones. The wrong
answers are written here as a reader would write them, independently of the checkers'
own list of mistakes."""

import pytest
import torch
import torch.nn.functional as F
from transformers import RepetitionPenaltyLogitsProcessor

from gptlib import pretrained
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


def temperature_multiplied(logits, T):
    scaled = logits * T  # T < 1 should sharpen, so this is backwards
    e = torch.exp(scaled - scaled.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def temperature_on_the_probabilities(logits, T):
    probs = torch.exp(logits) / torch.exp(logits).sum(dim=-1, keepdim=True)
    return probs / T


def temperature_computed_but_unused(logits, T):
    scaled = logits / T  # noqa: F841 (the bug: scaled is never used)
    return F.softmax(logits, dim=-1)


def temperature_softmax_over_rows(logits, T):
    return torch.nn.Softmax(dim=0)(logits / T)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (temperature_multiplied, "you multiplied the logits by the temperature"),
        (temperature_on_the_probabilities, "not the probabilities after it"),
        (temperature_computed_but_unused, "the temperature has no effect"),
        (temperature_softmax_over_rows, "wrong dimension"),
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


def top_k_plus_one(logits, k):
    kth = torch.topk(logits, k + 1, dim=-1).values[..., -1:]  # one too many
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))


def top_k_smallest(logits, k):
    kept = logits.sort(dim=-1).values[..., k - 1 : k]  # ascending: the k-th smallest
    return logits.masked_fill(logits > kept, float("-inf"))


def top_k_inverted(logits, k):
    out = logits.clone()
    out.scatter_(-1, logits.topk(k, dim=-1).indices, float("-inf"))  # removes the top k
    return out


def top_k_zero_filled(logits, k):
    values, indices = torch.topk(logits, k, dim=-1)
    return torch.zeros_like(logits).scatter(-1, indices, values)


def top_k_as_probabilities(logits, k):
    kth = logits.topk(k, dim=-1).values[..., -1, None]
    return F.softmax(logits.masked_fill(logits < kth, float("-inf")), dim=-1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (top_k_smallest, "you kept the k smallest logits"),
        (top_k_inverted, "you removed the k largest"),
        (top_k_zero_filled, "a removed logit must be -inf"),
        (top_k_as_probabilities, "return the filtered logits"),
    ],
    ids=["k-smallest", "inverted", "zero-fill", "probabilities"],
)
def test_top_k_filter_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_top_k_filter(wrong)


def test_keeping_k_plus_one_gets_its_hint_with_the_error_it_raises_when_k_is_the_vocabulary():
    # topk(k + 1) raises on the row of 10 logits with k = 10; on the other rows it keeps k + 1
    with pytest.raises(ExerciseError) as error:
        ch10.check_top_k_filter(top_k_plus_one)
    assert "your function raised RuntimeError" in str(error.value) and "(on input 4)" in str(error.value)
    assert "Hint: you kept k + 1 logits" in str(error.value)


def test_keeping_k_plus_one_without_an_error_gets_its_hint():
    def top_k_plus_one_clamped(logits, k):
        sorted_logits = logits.sort(dim=-1, descending=True).values
        kth = sorted_logits[..., min(k, logits.size(-1) - 1), None]  # index k is the (k + 1)-th largest
        return logits.masked_fill(logits < kth, float("-inf"))

    with pytest.raises(ExerciseError, match=r"not yet. Hint: you kept k \+ 1 logits"):
        ch10.check_top_k_filter(top_k_plus_one_clamped)


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


def nucleus_without_the_crossing_token(probs, p):
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    kept = sorted_probs * (sorted_probs.cumsum(dim=-1) <= p)  # drops the token that crosses p
    kept = torch.zeros_like(probs).scatter(-1, order, kept)
    return kept / kept.sum(dim=-1, keepdim=True)


def nucleus_without_the_crossing_token_but_never_empty(probs, p):
    out = torch.zeros_like(probs)
    for row in range(probs.size(0)):
        total = 0.0
        for token in probs[row].argsort(descending=True).tolist():
            if total > 0 and total + probs[row, token] > p:  # stops before the token that crosses p
                break
            out[row, token] = probs[row, token]
            total += probs[row, token].item()
    return out / out.sum(dim=-1, keepdim=True)


def nucleus_not_renormalised(probs, p):
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    keep = sorted_probs.cumsum(dim=-1) - sorted_probs < p
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)


def nucleus_left_sorted(probs, p):
    sorted_probs = probs.sort(dim=-1, descending=True).values
    kept = torch.where(sorted_probs.cumsum(dim=-1) - sorted_probs < p, sorted_probs, 0.0)
    return kept / kept.sum(dim=-1, keepdim=True)


def test_excluding_the_crossing_token_in_a_confident_row_gets_the_nan_hint():
    # the usual form of the mistake keeps nothing in a confident row, which gives NaN
    with pytest.raises(ExerciseError, match="some rows are NaN.*Keep the token that makes the total reach p"):
        ch10.check_top_p_filter(nucleus_without_the_crossing_token)


def test_excluding_the_crossing_token_without_nan_gets_its_hint():
    # keeping at least the most likely token avoids the NaN, and is still short of the nucleus
    with pytest.raises(ExerciseError, match=r"not yet. Hint: keep the token that makes the total reach p"):
        ch10.check_top_p_filter(nucleus_without_the_crossing_token_but_never_empty)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (nucleus_not_renormalised, "must sum to 1 again"),
        (nucleus_left_sorted, "still in sorted order"),
    ],
    ids=["not-renormalised", "sorted-order"],
)
def test_top_p_filter_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch10.check_top_p_filter(wrong)


def test_an_unknown_top_p_mistake_is_not_told_its_shape_differs():
    def halved(probs, p):
        return ch10.top_p_filter(probs, p) / 2

    with pytest.raises(ExerciseError) as error:
        ch10.check_top_p_filter(halved)
    assert str(error.value).startswith("top_p_filter: the shape, [2, 20], is right, but the values differ, by up to")
    assert "got a tensor of shape" not in str(error.value)


# ---------------------------------------------------------------------------
# Exercise 4: the greedy loop


def greedy_feeding_only_the_newest_token(model, idx, n):
    new = []
    token = idx[:, -1:]
    for _ in range(n):
        logits, _ = model(token)  # the model sees one token: it forgets the context
        token = logits[:, -1].argmax(dim=-1).unsqueeze(1)
        new.append(token)
    return torch.cat([idx, *new], dim=1)


def greedy_keeping_the_first_window(model, idx, n):
    block_size = model.config.block_size
    for _ in range(n):
        context = idx if idx.size(1) <= block_size else idx[:, :block_size]  # the start, not the end
        logits = model(context)[0]
        idx = torch.cat((idx, logits[:, -1, :].argmax(-1)[:, None]), dim=1)
    return idx


def greedy_reading_row_zero(model, idx, n):
    for _ in range(n):
        logits, _ = model(idx[:, max(0, idx.size(1) - model.config.block_size) :])
        probs = F.softmax(logits, dim=-1)
        idx = torch.cat([idx, probs[:, 0].argmax(dim=-1, keepdim=True)], dim=1)  # row 0, not the last
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
        (greedy_feeding_only_the_newest_token, "you fed the model only the newest token"),
        (greedy_keeping_the_first_window, "keep its last block_size tokens"),
        (greedy_reading_row_zero, "in the last row of the logits"),
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
    assert idx.size(1) <= model.config.block_size  # the prompt itself fits


def test_the_bundled_model_is_loaded_once(monkeypatch):
    loads = []

    def counting_load():
        loads.append(1)
        return load()

    load = pretrained.load_shakespeare_char
    monkeypatch.setattr(pretrained, "load_shakespeare_char", counting_load)
    ch10._shakespeare.cache_clear()
    try:
        for _ in range(3):
            assert ch10.check_greedy_generate(ch10.greedy_generate).startswith("correct")
        with pytest.raises(ExerciseError):
            ch10.check_greedy_generate(greedy_reading_row_zero)
    finally:
        ch10._shakespeare.cache_clear()  # the next load is the real one again
    assert len(loads) == 1


def test_an_answer_that_changes_the_model_cannot_change_the_next_check():
    def vandal(model, idx, n):
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return ch10.greedy_generate(model, idx, n)

    ch10.check_greedy_generate(vandal)  # whatever it says about vandal itself
    fresh, _, _ = pretrained.load_shakespeare_char()
    checked = ch10._generation_cases()[-1][0]
    assert all(torch.equal(a, b) for a, b in zip(checked.state_dict().values(), fresh.state_dict().values()))
    assert ch10.check_greedy_generate(ch10.greedy_generate).startswith("correct")


# ---------------------------------------------------------------------------
# Exercise 5: a repetition penalty


def test_repetition_penalty_reference_is_accepted_and_equals_hugging_face():
    assert ch10.check_repetition_penalty(ch10.repetition_penalty).startswith("correct")
    hf = RepetitionPenaltyLogitsProcessor(penalty=1.3)
    g = torch.Generator().manual_seed(3)
    logits, context = 3 * torch.randn(2, 25, generator=g), torch.randint(0, 25, (2, 11), generator=g)
    torch.testing.assert_close(ch10.repetition_penalty(logits, context, 1.3), hf(context, logits.clone()))


def test_repetition_penalty_by_hand():
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0]])
    context = torch.tensor([[0, 1, 1]])  # tokens 0 and 1 occur (1 twice); 2 and 3 do not
    want = torch.tensor([[1.0, -4.0, 1.0, -1.0]])
    torch.testing.assert_close(ch10.repetition_penalty(logits, context, 2.0), want)


def penalty_always_divides(logits, context, penalty):
    out = logits.clone()
    for b in range(logits.size(0)):
        for token in set(context[b].tolist()):
            out[b, token] = logits[b, token] / penalty  # a negative logit moves up, toward 0
    return out


def penalty_on_the_whole_vocabulary(logits, context, penalty):
    out = logits.clone()
    out[out > 0] /= penalty
    out[out < 0] *= penalty
    return out


def penalty_inverted(logits, context, penalty):
    picked = logits.gather(-1, context)
    picked = torch.where(picked > 0, picked * penalty, picked / penalty)
    return logits.scatter(-1, context, picked)


def penalty_per_occurrence(logits, context, penalty):
    out = logits.clone()
    for b in range(logits.size(0)):
        for token in context[b].tolist():  # a token seen three times is penalised three times
            out[b, token] = out[b, token] / penalty if out[b, token] > 0 else out[b, token] * penalty
    return out


def penalty_subtracted(logits, context, penalty):
    return logits.scatter(-1, context, logits.gather(-1, context) - penalty)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (penalty_always_divides, "makes the token MORE likely"),
        (penalty_on_the_whole_vocabulary, "you penalised every token"),
        (penalty_inverted, "that rewards repetition"),
        (penalty_per_occurrence, "once per token"),
        (penalty_subtracted, "it is not subtracted"),
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
