"""Chapter 10: generation, one token at a time."""

from __future__ import annotations

import torch

from .attention import KVCache
from .model import check_token_ids


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k=None, top_p=None) -> torch.Tensor:
    """The distribution to sample the next token from, given logits (B, V).

    temperature divides the logits; top_k keeps the k most likely tokens; top_p keeps
    the smallest set of most likely tokens whose probability reaches p. With
    temperature=0 all probability goes to the most likely token (greedy).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    V = logits.size(-1)
    if top_k is not None and not (isinstance(top_k, int) and 1 <= top_k):
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if temperature == 0:
        greedy = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        return torch.zeros_like(logits).scatter_(-1, greedy, 1.0)
    logits = logits / temperature
    if top_k is not None and top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


@torch.no_grad()
def generate(model, idx, max_new_tokens: int, temperature=1.0, top_k=None, top_p=None, kv_cache=True, generator=None):
    """Run the model once per new token and append the token it picks.

    Without a cache, every step runs the model on the last block_size tokens. With the
    KV cache, the first step runs on the whole prompt and each later step on the newest
    token only. Once the context is longer than block_size the window slides, every
    position changes, and the cached keys are no longer valid: from then on each step
    runs on the whole window again, as without the cache.
    """
    check_token_ids(idx, model.config, check_length=False)  # a longer prompt is cropped below
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    block_size = model.config.block_size
    cache = KVCache(model.config.n_layer) if kv_cache else None
    for _ in range(max_new_tokens):
        if cache is None or idx.size(1) > block_size:
            logits, _ = model(idx[:, -block_size:])  # (B, T, V): the whole window
        elif cache.length == 0:
            logits, _ = model(idx, kv_cache=cache)  # the prompt fills the cache
        else:
            logits, _ = model(idx[:, -1:], kv_cache=cache)  # (B, 1, V): the newest token only
        probs = next_token_probs(logits[:, -1, :], temperature, top_k, top_p)  # (B, V)
        if temperature == 0:
            next_id = probs.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
    return idx


def sample_text(ckpt_path=None, prompt=None, tokens: int = 500, temperature: float = 0.8, top_k=None, top_p=None,
                seed: int = 1337, pretrained: str | None = None) -> str:
    """Continue a prompt with a model trained by ``python -m gptlib train`` (ckpt_path), or
    with the model that ships with gptlib (pretrained="shakespeare-char"); returns prompt + new text."""
    from pathlib import Path

    from .train import load_checkpoint, model_from_checkpoint, tokenizer_from_spec

    if (ckpt_path is None) == (pretrained is None):
        raise ValueError("give either a checkpoint (--ckpt) or --pretrained shakespeare-char, not both")
    if pretrained is not None:
        if pretrained != "shakespeare-char":
            raise ValueError(f"unknown pretrained model {pretrained!r}; the one that ships is shakespeare-char")
        from .pretrained import load_shakespeare_char

        model, tok, _ = load_shakespeare_char()
        kind = "char"
    else:
        path = Path(ckpt_path)
        ckpt = load_checkpoint(path / "ckpt.pt" if path.is_dir() else path)
        if "tokenizer" not in ckpt:
            raise ValueError(f"{path} was not written by `python -m gptlib train` (it names no tokenizer)")
        model = model_from_checkpoint(ckpt).eval()
        tok = tokenizer_from_spec(ckpt["tokenizer"])
        kind = ckpt["tokenizer"]["kind"]
    if kind == "char":
        ids = tok.encode("\n" if prompt is None else prompt)  # unknown characters: a clear ValueError
    else:
        ids = tok.encode("<|endoftext|>" if prompt is None else prompt, allowed_special={"<|endoftext|>"})
    if not ids:
        raise ValueError("the prompt is empty; give at least one character")
    idx = torch.tensor([ids], dtype=torch.long)
    out = generate(model, idx, tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                   generator=torch.Generator().manual_seed(seed))
    return tok.decode(out[0].tolist())
