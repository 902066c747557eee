"""Chapter 10: generation, one token at a time.

``generate`` is the loop the chapter writes by hand, with the two things a loop that runs
thousands of times should not redo at every step: the keys and values of earlier tokens
live in a ``StaticKVCache`` allocated once (``block_size`` positions per layer), and the
model computes logits only for the last position, the one that is sampled. The chapter's
written-out cache, ``KVCache``, gives the same tokens.
"""

from __future__ import annotations

import torch

from .attention import StaticKVCache
from .config import check_token_ids

# top_p: a set of tokens "reaches" p when its mass is within this of p, so that a
# rounding error in the running sum does not decide whether a token is kept.
TOP_P_TOLERANCE = 1e-6


def check_sampling(temperature, top_k, top_p) -> None:
    """Raise a clear ValueError for a temperature, top_k or top_p that means nothing."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k=None, top_p=None) -> torch.Tensor:
    """The distribution to sample the next token from, given logits (B, V).

    temperature divides the logits; top_k keeps the k most likely tokens (all of them
    when k >= the vocabulary, and every token tied with the k-th); top_p then keeps the
    smallest set of most likely tokens whose probability reaches p. With temperature=0
    all probability goes to the most likely token (greedy).
    """
    check_sampling(temperature, top_k, top_p)
    V = logits.size(-1)
    if temperature == 0:
        greedy = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        return torch.zeros_like(logits).scatter_(-1, greedy, 1.0)
    logits = logits / temperature
    if top_k is not None and top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    if top_p is not None and top_p < 1.0:
        # stable: of two tied tokens the lower id ranks first, as in the book's live page
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above
        drop = before >= top_p - TOP_P_TOLERANCE
        drop[..., 0] = False  # the most likely token always stays, however small p is
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


@torch.no_grad()
def generate(model, idx, max_new_tokens: int, temperature=1.0, top_k=None, top_p=None, kv_cache=True, generator=None):
    """Run the model once per new token and append the token it picks; returns (B, T + max_new_tokens).

    Without a cache, every step runs the model on the last block_size tokens. With the
    KV cache, the first step runs on the whole prompt and each later step on the newest
    token only. Once the context is longer than block_size the window slides, every
    position changes, and the cached keys are no longer valid: from then on each step
    runs on the whole window again, as without the cache.

    The same holds with rotary positions (``position="rope"``), where the cache stores keys
    already turned at their positions 0 to block_size - 1. Scores depend only on the offset
    between positions, so turning the cached keys again would not be needed; but once the
    oldest token leaves the window, every later token's keys and values in blocks 1 and up
    change too (they no longer saw it), so the cache is still stale and each step recomputes
    the window.
    """
    check_token_ids(idx, model.config, check_length=False)  # a longer prompt is cropped below
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    check_sampling(temperature, top_k, top_p)
    block_size = model.config.block_size
    B, T = idx.shape
    out = torch.empty(B, T + max_new_tokens, dtype=torch.long, device=idx.device)  # filled as we go
    out[:, :T] = idx
    cache = None
    if kv_cache and T < block_size:  # a prompt that fills the window never uses the cache
        # Room for every position this call can cache, allocated once (at most block_size).
        cache = StaticKVCache(model.config.n_layer, min(block_size, T + max_new_tokens))
    for _ in range(max_new_tokens):
        if cache is None or T > block_size:
            logits, _ = model(out[:, max(0, T - block_size) : T], last_only=True)  # the whole window
        elif cache.length == 0:
            logits, _ = model(out[:, :T], kv_cache=cache, last_only=True)  # the prompt fills the cache
        else:
            logits, _ = model(out[:, T - 1 : T], kv_cache=cache, last_only=True)  # the newest token only
        last = logits[:, -1, :]  # (B, V): only the last position is sampled
        if temperature == 0:
            next_id = last.argmax(dim=-1)  # (B,)
        else:
            probs = next_token_probs(last, temperature, top_k, top_p)  # (B, V)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]  # (B,)
        out[:, T] = next_id
        T += 1
    return out
