"""Chapter 13 exercises: head scores, an ablation experiment on the induction model, and
one head's direct logit attribution computed by hand."""

from __future__ import annotations

from functools import lru_cache

import torch

from ..circuits import direct_logit_attribution, head_outputs, head_write
from ..config import GPTConfig
from ..interpret import (
    ablate_heads,
    induction_scores,
    per_position_loss,
    previous_token_scores,
    run_with_cache,
    stream_into,
)
from ..model import GPT
from . import Mistake, check


def _patterns(L: int, H: int, T: int, seed: int) -> torch.Tensor:
    """Random causal attention patterns [L, H, T, T]: rows sum to 1, nothing above the diagonal."""
    g = torch.Generator().manual_seed(seed)
    scores = 3.0 * torch.randn(L, H, T, T, generator=g, dtype=torch.float64)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1)


def check_previous_token_scores(fn) -> str:
    """Exercise: the mean attention from t to t - 1, over t >= 1, per head."""
    cases = [(_patterns(2, 3, 5, 0),), (_patterns(1, 4, 9, 1),), (_patterns(3, 2, 16, 2),)]
    return check(
        "previous_token_scores",
        fn,
        previous_token_scores,
        cases,
        mistakes=[
            Mistake(
                lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1) / p.size(-1),
                "divide by T - 1, the number of positions that have a previous token, not by T.",
            ),
            Mistake(
                lambda p: p.diagonal(offset=1, dim1=-2, dim2=-1).mean(-1),
                "that is the diagonal above the main one (entries [t, t + 1], offset=1): attention to the "
                "next token, which the causal mask sets to 0. The previous token is one below the main "
                "diagonal (entries [t, t - 1], offset=-1).",
            ),
            Mistake(
                lambda p: p.diagonal(dim1=-2, dim2=-1).mean(-1),
                "that is the main diagonal: attention of each token to itself. Go one below it.",
            ),
        ],
    )


def check_induction_scores(fn) -> str:
    """Exercise: the mean attention from t to t - period + 1, over t >= period, per head."""
    cases = [(_patterns(2, 3, 10, 3), 5), (_patterns(1, 2, 12, 4), 4), (_patterns(2, 2, 16, 5), 8)]

    def diagonal_mean(p, offset, first_row):
        t = torch.arange(first_row, p.size(-1))
        return p[..., t, t - offset].mean(-1)

    return check(
        "induction_scores",
        fn,
        induction_scores,
        cases,
        mistakes=[
            Mistake(
                lambda p, period: diagonal_mean(p, period, period),
                "t - period is the earlier occurrence of the current token itself (a duplicate-token "
                "head looks there). The induction head looks one step later: t - period + 1.",
            ),
            Mistake(
                lambda p, period: diagonal_mean(p, period - 1, period - 1),
                "start at t = period: row period - 1 is still inside the first copy, where nothing has repeated yet.",
            ),
        ],
    )


@lru_cache(maxsize=1)
def _head_rises() -> dict:
    """{(layer, head): second-copy loss with that head zeroed}, for the bundled induction model."""
    from ..pretrained import load_induction_model

    model, _, data = load_induction_model()
    V, P = model.config.vocab_size, data["probe_period"]
    g = torch.Generator().manual_seed(13)
    seqs = [torch.randint(V, (P,), generator=g).repeat(2) for _ in range(16)]

    def second_copy_loss():
        return sum(per_position_loss(run_with_cache(model, s).logits[:-1], s[1:])[P:].mean().item() for s in seqs)

    losses = {}
    for layer in range(model.config.n_layer):
        for head in range(model.config.n_head):
            with ablate_heads(model, [(layer, head)]):
                losses[(layer, head)] = second_copy_loss()
    return losses


def check_most_needed_head(fn) -> str:
    """Experiment: which head of the induction model, zeroed alone, hurts the second copy most."""
    losses = _head_rises()
    most = max(losses, key=losses.get)
    least = min(losses, key=losses.get)
    best_elsewhere = max((k for k in losses if k[0] != most[0]), key=losses.get)
    swapped = (most[1], most[0])
    hints: dict[tuple, list[str]] = {}
    hints.setdefault(least, []).append(
        "zeroing that head changes the second copy least: take the largest rise, not the smallest."
    )
    hints.setdefault(best_elsewhere, []).append(
        f"that head matters, but it is not the one copying needs most; compare all heads of both layers "
        f"(layer {most[0]} holds a head whose loss rises more)."
    )
    if swapped in losses and swapped != most:  # the right head, written (head, layer)
        hints.setdefault(swapped, []).append(
            "if you answered (head, layer), swap them: the answer is (layer, head), the layer first."
        )
    return check(
        "most_needed_head",
        lambda: _as_pair(fn()),
        lambda: most,
        cases=[()],
        mistakes=[Mistake(lambda answer=answer: answer, " Or, ".join(said)) for answer, said in hints.items()],
    )


def _as_pair(answer):
    """(layer, head) as two ints, from a tuple, a list or a tensor of two whole numbers."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 2:
        answer = answer.flatten().tolist()
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        return tuple(int(a) for a in answer)
    return answer


def _shaped_model(bias: bool, seed: int) -> GPT:
    """A random 3-layer model whose LayerNorms and weights are far from their initial
    values, so that every part of ln_f's formula changes the answer."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=40, block_size=12, n_layer=3, n_head=4, n_embd=32, dropout=0.0, bias=bias)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_f.weight") or name.endswith("ln_1.weight") or name.endswith("ln_2.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            else:
                p.mul_(3.0)
    return model


@lru_cache(maxsize=1)
def _logit_share_cases() -> tuple:
    """(model, idx [B, T], targets [B, T], layer, head): two random models (one with bias
    vectors) and the induction model on repeated random strings, at its induction head L1H3."""
    from ..pretrained import load_induction_model

    g = torch.Generator().manual_seed(31)
    cases = []
    for bias, layer, head in ((False, 0, 2), (True, 1, 1)):
        model = _shaped_model(bias, seed=7 + layer)
        ids = torch.randint(40, (3, 13), generator=g)
        cases.append((model, ids[:, :-1], ids[:, 1:], layer, head))
    model, _, data = load_induction_model()
    P = data["probe_period"]
    seqs = torch.randint(model.config.vocab_size, (4, P), generator=g).repeat(1, 2)  # [4, 2P]
    cases.append((model, seqs, seqs.roll(-1, dims=1), 1, 3))
    return tuple(cases)


def head_logit_share(model, idx, targets, layer, head) -> torch.Tensor:
    """[B, T]: head (layer, head)'s direct share of the logit of targets, as
    ``direct_logit_attribution`` computes it."""
    names, shares = direct_logit_attribution(model, idx, targets)
    return shares[names.index(f"L{layer}H{head}")]


def _share_with(model, idx, targets, layer, head, *, centre=True, scale="stream", weight=True, unbiased=False):
    """A head's logit share computed with one part of ln_f's formula changed: the checker's mistakes."""
    with torch.no_grad():
        write = head_write(model, layer, head, head_outputs(model, idx)[layer, head])  # [B, T, C]
        ln_f = model.transformer.ln_f
        unembed = model.lm_head.weight[targets]  # [B, T, C]
        if scale == "ln_f":  # the whole of ln_f applied to the write alone, bias included
            return (ln_f(write) * unembed).sum(-1)
        if scale == "own":  # the write divided by its own scale
            x = write
        else:
            x = stream_into(model, idx, model.config.n_layer if scale == "stream" else layer + 1)
        s = (x.var(-1, unbiased=unbiased, keepdim=True) + ln_f.eps).sqrt()  # [B, T, 1]
        part = write - write.mean(-1, keepdim=True) if centre else write
        part = part / s * ln_f.weight if weight else part / s
        return (part * unembed).sum(-1)


def check_head_logit_share(fn) -> str:
    """Exercise: one head's direct logit attribution, from its write and ln_f's frozen scale."""
    return check(
        "head_logit_share",
        fn,
        head_logit_share,
        _logit_share_cases(),
        atol=1e-4,
        rtol=1e-4,
        mistakes=[
            Mistake(
                lambda *case: _share_with(*case, centre=False),
                "ln_f subtracts the mean of the stream before it divides, and the mean of a sum is the sum of "
                "the means: centre the head's write too (subtract its mean over the n_embd numbers).",
            ),
            Mistake(
                lambda *case: _share_with(*case, scale="own"),
                "you divided the head's write by its own scale. ln_f divides the whole stream by one number, "
                "the scale of the stream that reaches it (stream_into(model, idx, n_layer)); frozen at that "
                "value, it divides every piece of the stream alike.",
            ),
            Mistake(
                lambda *case: _share_with(*case, scale="ln_f"),
                "ln_f applied to the head's write alone divides it by its own scale and adds ln_f's bias. Divide "
                "by the scale of the whole stream that reaches ln_f instead; the bias belongs to no head.",
            ),
            Mistake(
                lambda *case: _share_with(*case, scale="next"),
                "the scale is that of the stream ln_f reads, after the last block (stream_into(model, idx, "
                "model.config.n_layer)), not of the stream right after the head's own layer.",
            ),
            Mistake(
                lambda *case: _share_with(*case, weight=False),
                "after dividing by the scale, ln_f multiplies by its weight (ln_f.weight): the write reaches "
                "lm_head through it.",
            ),
            Mistake(
                lambda *case: _share_with(*case, unbiased=True),
                "LayerNorm's variance divides by n_embd, not n_embd - 1: use var(-1, unbiased=False) (torch's "
                "var and std divide by n - 1 by default).",
            ),
        ],
    )
