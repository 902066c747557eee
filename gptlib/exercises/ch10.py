"""Chapter 10 exercises: generation, one token at a time."""

from __future__ import annotations

import copy
from functools import lru_cache

import torch

from ..config import GPTConfig
from ..model import GPT
from . import ExerciseError, Mistake, check

# ---------------------------------------------------------------------------
# Exercise 1: temperature.


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities (..., V) from logits (..., V) at a temperature > 0: softmax(logits / T)."""
    return torch.softmax(logits / temperature, dim=-1)


def _temperature_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(10)
    return [
        (3 * torch.randn(2, 20, generator=g), 0.5),
        (3 * torch.randn(1, 78, generator=g), 1.5),
        (3 * torch.randn(3, 10, generator=g), 0.1),
        (3 * torch.randn(12, generator=g), 2.0),  # one row, no batch dimension
    ]


def check_apply_temperature(fn) -> str:
    """Exercise: apply_temperature(logits, T) -> probabilities over the last dimension."""
    return check(
        "apply_temperature",
        fn,
        apply_temperature,
        cases=_temperature_cases(),
        mistakes=[
            Mistake(
                lambda z, T: torch.softmax(z * T, dim=-1),
                "you multiplied the logits by the temperature. Divide them by it: then T < 1 spreads "
                "the logits apart (a sharper distribution) and T > 1 squeezes them together (a flatter one).",
            ),
            Mistake(
                lambda z, T: torch.softmax(z, dim=-1) / T,
                "divide the logits by T before the softmax, not the probabilities after it: "
                "probabilities divided by T no longer sum to 1, and their ranking and ratios do not change.",
            ),
            Mistake(
                lambda z, T: torch.softmax(z, dim=-1),
                "the temperature has no effect in your answer: divide the logits by it before the softmax.",
            ),
            Mistake(
                lambda z, T: torch.softmax(z / T, dim=0),
                "the softmax runs over the wrong dimension: each row of logits is one distribution over "
                "the vocabulary, so use dim=-1.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 2: top-k.


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits (..., V) with all but the k largest of each row set to -inf."""
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # the k-th largest logit of each row
    return logits.masked_fill(logits < kth, float("-inf"))


def _keep_k_plus_one(logits, k):
    return top_k_filter(logits, min(k + 1, logits.size(-1)))


def _keep_k_smallest(logits, k):
    kth = torch.topk(logits, k, dim=-1, largest=False).values[..., -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


def _top_k_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(20)
    return [
        (2 * torch.randn(2, 20, generator=g), 5),
        (2 * torch.randn(1, 78, generator=g), 1),
        (2 * torch.randn(3, 50, generator=g), 3),
        (2 * torch.randn(2, 10, generator=g), 10),  # k = V keeps every logit
    ]


def check_top_k_filter(fn) -> str:
    """Exercise: top_k_filter(logits, k) -> logits with all but the k largest per row at -inf."""
    return check(
        "top_k_filter",
        fn,
        top_k_filter,
        cases=_top_k_cases(),
        mistakes=[
            Mistake(
                _keep_k_plus_one,
                "you kept k + 1 logits in each row: keep exactly k. The k-th largest value itself stays; "
                "only the logits below it become -inf.",
            ),
            Mistake(
                _keep_k_smallest,
                "you kept the k smallest logits: keep the k largest (torch.topk returns the largest by default).",
            ),
            Mistake(
                lambda z, k: z.masked_fill(z >= torch.topk(z, k, dim=-1).values[..., -1:], float("-inf")),
                "you removed the k largest logits and kept the rest: it is the other way round.",
            ),
            Mistake(
                lambda z, k: z.masked_fill(z < torch.topk(z, k, dim=-1).values[..., -1:], 0.0),
                "a removed logit must be -inf: a logit of 0 still gets probability exp(0) / sum after the "
                "softmax, so the token could still be picked.",
            ),
            Mistake(
                lambda z, k: torch.softmax(top_k_filter(z, k), dim=-1),
                "return the filtered logits, not probabilities: the softmax comes after the filter.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 3: top-p (nucleus) sampling.


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Probabilities (..., V) with each row cut to its nucleus and renormalised.

    The nucleus is the smallest set of most likely tokens whose total probability
    reaches p: sort, and keep a token when the tokens ranked above it hold less than p.
    """
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs  # the mass ranked above each token
    sorted_probs = sorted_probs.masked_fill(before >= p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)  # back in the vocabulary's order
    return kept / kept.sum(dim=-1, keepdim=True)


def _without_renormalising(probs, p):
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(before >= p, 0.0))


def _left_sorted(probs, p):
    sorted_probs, _ = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    kept = sorted_probs.masked_fill(before >= p, 0.0)
    return kept / kept.sum(dim=-1, keepdim=True)


def _without_the_crossing_token(probs, p):
    """Keeps the tokens while the total stays within p, and the most likely one always.

    Without that last rule a confident row keeps nothing and gives NaN (0 / 0), which
    check()'s nan_hint reports with the same advice; with it, the rows whose top token
    alone holds more than p come out right, and only the crossing token is missing."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    keep = sorted_probs.cumsum(dim=-1) <= p
    keep[..., 0] = True
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
    return kept / kept.sum(dim=-1, keepdim=True)


def _top_p_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(30)
    return [
        (torch.softmax(2 * torch.randn(2, 20, generator=g), dim=-1), 0.9),
        (torch.softmax(2 * torch.randn(1, 78, generator=g), dim=-1), 0.5),
        (torch.softmax(torch.randn(3, 10, generator=g), dim=-1), 0.75),
        # a confident row: its most likely token alone holds more than p
        (torch.softmax(torch.tensor([[8.0, 2.0, 1.0, 0.5, 0.0, -1.0]]), dim=-1), 0.9),
    ]


CROSSING_HINT = (
    "keep the token that makes the total reach p. The nucleus is the smallest set of most likely "
    "tokens whose probability adds up to at least p, so the token that crosses p is in it; when "
    "the most likely token alone holds more than p, it is kept alone. Keep a token when the "
    "tokens ranked above it hold less than p."
)


def check_top_p_filter(fn) -> str:
    """Exercise: top_p_filter(probs, p) -> the nucleus of each row, renormalised."""
    cases = _top_p_cases()
    return check(
        "top_p_filter",
        fn,
        top_p_filter,
        cases=cases,
        nan_hint=(
            "some rows are NaN, which happens when a row keeps no token "
            "at all and 0 is divided by 0. " + CROSSING_HINT[0].upper() + CROSSING_HINT[1:]
        ),
        mistakes=[
            Mistake(_without_the_crossing_token, CROSSING_HINT),
            Mistake(
                _without_renormalising,
                "the kept probabilities must sum to 1 again: divide each row by its sum after removing "
                "the tokens outside the nucleus.",
            ),
            Mistake(
                _left_sorted,
                "your probabilities are still in sorted order: put them back in the vocabulary's order "
                "with the indices the sort returned (scatter), so that entry i is token i again.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 4: the greedy generation loop.


@torch.no_grad()
def greedy_generate(model: GPT, idx: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Append max_new_tokens greedy tokens to idx (B, T), running the model once per token
    on the last block_size tokens."""
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size :])  # (B, T', V)
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
    return idx


@torch.no_grad()
def _last_token_only(model, idx, max_new_tokens):
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -1:])
        idx = torch.cat([idx, logits[:, -1, :].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


@torch.no_grad()
def _first_block(model, idx, max_new_tokens):
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, : model.config.block_size])
        idx = torch.cat([idx, logits[:, -1, :].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


@torch.no_grad()
def _first_position(model, idx, max_new_tokens):
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size :])
        idx = torch.cat([idx, logits[:, 0, :].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


@lru_cache(maxsize=1)
def _shakespeare() -> tuple[GPT, list[int]]:
    """The bundled character model, loaded once, and a prompt of block_size - 2 characters
    of the bundled text: with 6 new tokens the sequence ends 4 past the model's window, so
    the last 3 steps must crop it."""
    from ..dataset import shakespeare_path
    from ..pretrained import load_shakespeare_char

    model, tok, _ = load_shakespeare_char()
    with open(shakespeare_path(), encoding="utf-8") as f:
        text = f.read(model.config.block_size - 2)
    return model, tok.encode(text)


def _generation_cases() -> list[tuple]:
    torch.manual_seed(40)
    small = GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()
    g = torch.Generator().manual_seed(41)
    shakespeare, prompt = _shakespeare()
    return [
        (small, torch.randint(0, 40, (1, 3), generator=g), 12),  # 3 + 12 tokens: the window slides past 8
        (small, torch.randint(0, 40, (2, 5), generator=g), 6),  # a batch of two
        # a copy, so that an answer that changes the model cannot change the next check
        (copy.deepcopy(shakespeare), torch.tensor([prompt]), 6),  # block_size - 2 + 6 tokens: past its window
    ]


def check_greedy_generate(fn) -> str:
    """Exercise: greedy_generate(model, idx, max_new_tokens) -> idx (B, T + max_new_tokens)."""

    def learner(*case):
        try:
            with torch.no_grad():
                return fn(*case)
        except ValueError as e:
            if "block_size" not in str(e):
                raise
            raise ExerciseError(
                "greedy_generate: not yet. Hint: the model raised "
                f"'{e}'. It has block_size position embeddings and cannot read more tokens than that: "
                "before each run, crop the context to its last block_size tokens, idx[:, -block_size:]."
            ) from e

    return check(
        "greedy_generate",
        learner,
        greedy_generate,
        cases=_generation_cases(),
        mistakes=[
            Mistake(
                _last_token_only,
                "you fed the model only the newest token. Without a KV cache the model remembers "
                "nothing between runs: give it the whole context (its last block_size tokens) every time, "
                "and read the prediction from the last position.",
            ),
            Mistake(
                _first_block,
                "once the sequence is longer than block_size, keep its last block_size tokens "
                "(idx[:, -block_size:]), not its first: the next token follows the end of the text.",
            ),
            Mistake(
                _first_position,
                "the prediction for the next token is in the last row of the logits, logits[:, -1, :]; "
                "row 0 predicts the token after the first one.",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 5 (an experiment): a repetition penalty.


def repetition_penalty(logits: torch.Tensor, context: torch.Tensor, penalty: float) -> torch.Tensor:
    """Logits (B, V) with every token that occurs in its row of context (B, T) made less
    likely: its logit divided by penalty when positive, multiplied by penalty when negative
    (Hugging Face's sign-aware RepetitionPenaltyLogitsProcessor, once per token however
    often it occurs; CTRL's original rule divides by the penalty whatever the sign)."""
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, context, True)  # (B, V)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def _per_occurrence(logits, context, penalty):
    counts = torch.zeros_like(logits).scatter_add(-1, context, torch.ones_like(context, dtype=logits.dtype))
    factor = penalty**counts  # (B, V): 1 for the tokens not in the context
    return torch.where(logits > 0, logits / factor, logits * factor)


def _penalty_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(50)
    return [
        (3 * torch.randn(1, 12, generator=g), torch.tensor([[0, 3, 3, 7]]), 1.5),  # 3 occurs twice
        (3 * torch.randn(2, 20, generator=g), torch.randint(0, 20, (2, 9), generator=g), 1.2),
        (3 * torch.randn(3, 30, generator=g), torch.randint(0, 30, (3, 5), generator=g), 2.0),
        (3 * torch.randn(2, 10, generator=g), torch.randint(0, 10, (2, 4), generator=g), 1.0),  # 1.0: no change
    ]


def check_repetition_penalty(fn) -> str:
    """Exercise: repetition_penalty(logits, context, penalty) -> penalised logits (B, V)."""
    return check(
        "repetition_penalty",
        fn,
        repetition_penalty,
        cases=_penalty_cases(),
        mistakes=[
            Mistake(
                lambda z, ctx, p: torch.where(torch.zeros_like(z, dtype=torch.bool).scatter(-1, ctx, True), z / p, z),
                "dividing a negative logit by the penalty brings it closer to 0, which makes the token MORE "
                "likely. Divide positive logits, multiply negative ones.",
            ),
            Mistake(
                lambda z, ctx, p: torch.where(z > 0, z / p, z * p),
                "you penalised every token of the vocabulary: only the tokens that occur in the context "
                "(in the same row) are penalised.",
            ),
            Mistake(
                lambda z, ctx, p: torch.where(
                    torch.zeros_like(z, dtype=torch.bool).scatter(-1, ctx, True), torch.where(z > 0, z * p, z / p), z
                ),
                "that rewards repetition: with a penalty above 1, a positive logit must shrink (divide by it) "
                "and a negative one grow more negative (multiply by it).",
            ),
            Mistake(
                _per_occurrence,
                "the penalty applies once per token, however often it occurs in the context: a token seen "
                "three times is divided (or multiplied) by the penalty once, not three times.",
            ),
            Mistake(
                lambda z, ctx, p: torch.where(torch.zeros_like(z, dtype=torch.bool).scatter(-1, ctx, True), z - p, z),
                "the penalty scales the logit, it is not subtracted: divide a positive logit by it, "
                "multiply a negative one.",
            ),
        ],
    )
