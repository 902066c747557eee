"""Inside the trained model: what a forward pass computes, and which heads do what.

Everything here reads one real forward pass through ``trace.record_outputs`` (forward
hooks; the model is not changed) or, for ablation, zeroes a head's output on its way
into ``c_proj``. Names follow the book:

- the **attention pattern** of a head: its (T, T) matrix of attention weights;
- the **residual stream**: x between blocks, [n_layer + 1, T, C]: ``resid[0]`` is the
  embeddings (what block 0 reads), ``resid[l + 1]`` the output of block l;
- **head scores**: one number per head, how much of its attention goes where a
  previous-token, first-position or induction head would put it;
- the **logit lens**: each layer's residual stream read out through ``ln_f`` and
  ``lm_head``, as if the model stopped there;
- **head ablation**: the loss when one head's output is replaced by zeros;
- the **in-context learning score** (Olsson et al. 2022): the loss late in the context
  minus the loss early in it, on held-out text.

``batch_attention`` and ``stream_into`` record the same things for a batch [B, T];
``gptlib.circuits`` builds on them (attribution, patching, circuits as matrices).

Shapes use L (n_layer), H (n_head), T (tokens), C (n_embd), V (vocab_size).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import GPT
from .trace import record_outputs


@dataclass(frozen=True)
class Recording:
    """What one forward pass over a single sequence computed."""

    attention: torch.Tensor  # [L, H, T, T]: attention weights of every layer and head
    resid: torch.Tensor  # [L + 1, T, C]: resid[0] the embeddings, resid[l + 1] after block l
    logits: torch.Tensor  # [T, V]


def _as_batch(idx: torch.Tensor) -> torch.Tensor:
    """A single sequence as a batch of one: [T] or [1, T] -> [1, T]."""
    if not isinstance(idx, torch.Tensor) or idx.dim() not in (1, 2) or (idx.dim() == 2 and idx.size(0) != 1):
        shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"expected one sequence of token ids, shape [T] or [1, T], got {shape}")
    return idx.view(1, -1)


def _as_batches(idx: torch.Tensor) -> torch.Tensor:
    """Token ids [T] or [B, T] -> [B, T]."""
    if not isinstance(idx, torch.Tensor) or idx.dim() not in (1, 2):
        shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"expected token ids of shape [T] or [B, T], got {shape}")
    return idx.view(-1, idx.size(-1))


@contextmanager
def _evaluating(model: GPT):
    """Eval mode and no gradients inside the block; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def run_with_cache(model: GPT, idx: torch.Tensor) -> Recording:
    """Run the model once on one sequence (in eval mode) and keep every head's attention
    pattern and the residual stream between blocks."""
    idx = _as_batch(idx)
    blocks = model.transformer.h
    modules = {"embeddings": model.transformer.drop}
    modules.update({f"attn {i}": block.attn for i, block in enumerate(blocks)})
    modules.update({f"block {i}": block for i, block in enumerate(blocks)})
    was_training = model.training
    model.eval()
    try:
        logits, seen = record_outputs(model, idx, modules)
        with torch.no_grad():
            # each attention layer's input is ln_1(x): recompute its weights from it,
            # with the book's written-out attention
            attention = torch.stack(
                [blocks[i].attn.attention_weights(seen[f"attn {i}"][0]) for i in range(len(blocks))]
            )
    finally:
        model.train(was_training)
    resid = torch.stack([seen["embeddings"][1]] + [seen[f"block {i}"][1] for i in range(len(blocks))])
    return Recording(attention=attention[:, 0], resid=resid[:, 0], logits=logits[0])  # drop the batch of one


def attention_patterns(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """[L, H, T, T]: the attention weights of every layer and head for one sequence."""
    return run_with_cache(model, idx).attention


def residual_stream(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """[L + 1, T, C]: the embeddings, then the stream after each block."""
    return run_with_cache(model, idx).resid


def batch_attention(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """[B, L, H, T, T]: the attention weights of every layer and head, for a batch of sequences."""
    idx = _as_batches(idx)
    seen = {}

    def keep(layer):
        def hook(module, inputs, output):
            seen[layer] = module.attention_weights(inputs[0])  # (B, H, T, T), from the layer's input ln_1(x)

        return hook

    blocks = model.transformer.h
    handles = [b.attn.register_forward_hook(keep(i)) for i, b in enumerate(blocks)]
    try:
        with _evaluating(model):
            model(idx)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([seen[i] for i in range(len(blocks))], dim=1)


def stream_into(model: GPT, idx: torch.Tensor, layer: int) -> torch.Tensor:
    """[B, T, C]: the residual stream that block ``layer`` reads; layer = n_layer gives the
    stream that ln_f reads."""
    idx = _as_batches(idx)
    L = model.config.n_layer
    if not 0 <= layer <= L:
        raise ValueError(f"layer {layer} needs 0 <= layer <= n_layer = {L}")
    module = model.transformer.ln_f if layer == L else model.transformer.h[layer]
    seen = {}

    def keep(mod, inputs):
        seen["x"] = inputs[0]

    handle = module.register_forward_pre_hook(keep)
    try:
        with _evaluating(model):
            model(idx)
    finally:
        handle.remove()
    return seen["x"]


def _check_patterns(patterns: torch.Tensor) -> None:
    if patterns.dim() != 4 or patterns.size(-1) != patterns.size(-2):
        raise ValueError(f"expected attention patterns of shape [L, H, T, T], got {tuple(patterns.shape)}")


def diagonal_score(patterns: torch.Tensor, offset: int) -> torch.Tensor:
    """[L, H]: the mean attention from position t to position t - offset, over every t that
    has such a position (t >= offset)."""
    _check_patterns(patterns)
    T = patterns.size(-1)
    if not 0 <= offset < T:
        raise ValueError(f"offset {offset} needs 0 <= offset < T = {T}")
    return patterns.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(-1)  # [L, H, T - offset] -> [L, H]


def previous_token_scores(patterns: torch.Tensor) -> torch.Tensor:
    """[L, H]: how much attention each head puts on the token just before (t - 1), averaged
    over t >= 1. A previous-token head scores near 1."""
    return diagonal_score(patterns, 1)


def first_position_scores(patterns: torch.Tensor) -> torch.Tensor:
    """[L, H]: how much attention each head puts on position 0, averaged over t >= 1
    (position 0 can only attend to itself, so it is left out)."""
    _check_patterns(patterns)
    if patterns.size(-1) < 2:
        raise ValueError("first-position scores need at least 2 positions")
    return patterns[..., 1:, 0].mean(-1)


def induction_scores(patterns: torch.Tensor, period: int) -> torch.Tensor:
    """[L, H]: on a sequence that repeats itself every ``period`` tokens, how much attention
    position t puts on t - period + 1: the token that followed the same token last time.
    Averaged over the repeats (t >= period). An induction head scores near 1."""
    _check_patterns(patterns)
    T = patterns.size(-1)
    if not 2 <= period < T:
        raise ValueError(f"period {period} needs 2 <= period < T = {T}")
    diag = patterns.diagonal(offset=-(period - 1), dim1=-2, dim2=-1)  # A[t, t - period + 1], t >= period - 1
    return diag[..., 1:].mean(-1)  # [L, H]: only t >= period, the positions inside the repeats


def repeated_random_tokens(vocab_size: int, period: int, repeats: int = 2, generator=None) -> torch.Tensor:
    """[period * repeats]: ``period`` random token ids, then the same ids again (repeats times
    in all). Nothing but copying can predict the repeats."""
    if period < 1 or repeats < 1:
        raise ValueError(f"need period >= 1 and repeats >= 1, got period={period}, repeats={repeats}")
    first = torch.randint(vocab_size, (period,), generator=generator)
    return first.repeat(repeats)


def repeated_distinct_tokens(vocab_size: int, period: int, repeats: int = 2, generator=None) -> torch.Tensor:
    """[period * repeats]: ``period`` different token ids (a random choice out of vocab_size, in
    random order), then the same ids again (repeats times in all). Every token of a repeat
    has one earlier occurrence in each copy, so an induction head has one place to look."""
    if not 1 <= period <= vocab_size or repeats < 1:
        got = f"got period={period}, repeats={repeats}"
        raise ValueError(f"need 1 <= period <= vocab_size = {vocab_size} (different ids) and repeats >= 1, {got}")
    return torch.randperm(vocab_size, generator=generator)[:period].repeat(repeats)


def logit_lens(model: GPT, resid: torch.Tensor) -> torch.Tensor:
    """[L + 1, T, V]: every layer's residual stream read out as if it were the last one,
    through the final LayerNorm and the unembedding: lm_head(ln_f(resid[l]))."""
    with torch.no_grad():
        return model.lm_head(model.transformer.ln_f(resid))


def _check_head(model: GPT, layer: int, head: int) -> None:
    L, H = model.config.n_layer, model.config.n_head
    if not (0 <= layer < L and 0 <= head < H):
        raise ValueError(f"head ({layer}, {head}) does not exist: layers 0..{L - 1}, heads 0..{H - 1}")


@contextmanager
def ablate_heads(model: GPT, heads):
    """Inside the ``with`` block, the listed (layer, head) pairs write nothing: their part
    of the joined head outputs (the input of that layer's ``c_proj``) is replaced by zeros."""
    heads = [tuple(h) for h in heads]
    for layer, head in heads:
        _check_head(model, layer, head)
    hs = model.config.head_size
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)

    def zero(head_list):
        def hook(module, inputs):
            y = inputs[0].clone()  # (B, T, C): the heads side by side, head h in [h*hs, (h+1)*hs)
            for h in head_list:
                y[..., h * hs : (h + 1) * hs] = 0.0
            return (y,)

        return hook

    handles = [
        model.transformer.h[layer].attn.c_proj.register_forward_pre_hook(zero(head_list))
        for layer, head_list in by_layer.items()
    ]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def loss_on(model: GPT, idx: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy of the model on idx [B, T] (or [T]) against targets of the same shape."""
    idx, targets = idx.view(-1, idx.size(-1)), targets.view(-1, targets.size(-1))
    was_training = model.training
    model.eval()
    try:
        _, loss = model(idx, targets)
    finally:
        model.train(was_training)
    return loss.item()


def head_ablation_losses(model: GPT, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[L, H]: how much the loss rises when that one head is ablated (loss with the head
    zeroed minus the clean loss). Large values mark the heads the model depends on."""
    clean = loss_on(model, idx, targets)
    L, H = model.config.n_layer, model.config.n_head
    out = torch.zeros(L, H)
    for layer in range(L):
        for head in range(H):
            with ablate_heads(model, [(layer, head)]):
                out[layer, head] = loss_on(model, idx, targets) - clean
    return out


def per_position_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[T]: the cross-entropy at each position, for logits [T, V] and targets [T]."""
    return F.cross_entropy(logits, targets, reduction="none")


def spread_windows(ids: torch.Tensor, length: int, n: int) -> torch.Tensor:
    """[n, length]: n windows of ``length`` consecutive ids, their starts spread evenly
    from the first id to the last window that fits."""
    if ids.dim() != 1 or not 1 <= length <= len(ids) or n < 1:
        raise ValueError(f"need 1-D ids, 1 <= length <= {ids.numel()} and n >= 1, got length={length}, n={n}")
    starts = torch.linspace(0, len(ids) - length, n).long().tolist()
    return torch.stack([ids[s : s + length] for s in starts])


def loss_by_context(model: GPT, windows: torch.Tensor) -> torch.Tensor:
    """[B, T]: for windows [B, T + 1] of text, the loss of predicting windows[:, k + 1]
    from the k + 1 tokens windows[:, : k + 1]: column k has k + 1 tokens of context."""
    windows = _as_batches(windows)
    if not 2 <= windows.size(1) <= model.config.block_size + 1:
        raise ValueError(f"windows need 2 to block_size + 1 = {model.config.block_size + 1} ids, got {windows.size(1)}")
    with _evaluating(model):
        logits, _ = model(windows[:, :-1])  # [B, T, V]
    return F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none")


def in_context_score(losses: torch.Tensor, early: tuple[int, int], late: tuple[int, int]) -> tuple[float, float]:
    """Olsson et al. (2022)'s in-context learning score from ``loss_by_context`` [B, T]: the mean
    loss with ``late`` tokens of context minus that with ``early`` (inclusive ranges, from 1),
    window by window; returns its mean over the windows and standard error. Negative: context helps."""
    T = losses.size(-1)
    for name, (lo, hi) in (("early", early), ("late", late)):
        if not 1 <= lo <= hi <= T:
            raise ValueError(f"{name} context lengths ({lo}, {hi}) need 1 <= first <= last <= {T}")
    diff = losses[:, late[0] - 1 : late[1]].mean(1) - losses[:, early[0] - 1 : early[1]].mean(1)  # [B]
    se = diff.std().item() / len(diff) ** 0.5 if len(diff) > 1 else float("nan")
    return diff.mean().item(), se
