"""Circuits: which part of the model writes an answer, and by which path.

``gptlib.interpret`` says where heads look and which ones the loss needs. This module
follows a head's output on its way, on a batch of sequences idx [B, T]:

- **head outputs**: what each head hands to its layer's ``c_proj`` (its hs numbers per
  position), [L, H, B, T, hs]; ``patch_heads`` replaces some of them during a forward
  pass (with zeros, a mean, or the outputs of another run: activation patching);
- **direct logit attribution**: the stream that reaches ``ln_f`` is a sum of pieces (the
  embeddings, each head's write, each MLP's); with ``ln_f``'s division by the stream's
  scale frozen at its value in the real forward pass, each piece adds a share of every
  logit, and the shares sum to the logit exactly;
- **path patching into one input**: ``add_to_attention_input`` changes what one layer's
  queries, keys or values read, and nothing else (the stream and the MLPs are unchanged);
- **circuits as matrices** over the vocabulary: a head's OV circuit (which token's logit
  goes up when it attends to a token) and the QK circuit of a layer-1 head through a
  layer-0 head's output (K-composition), with the eigenvalue copying score.

Shapes use L (n_layer), H (n_head), B (batch), T (tokens), C (n_embd), hs (head_size),
V (vocab_size).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .interpret import _as_batches, _check_head, _evaluating, stream_into
from .model import GPT


def head_outputs(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """[L, H, B, T, hs]: what every head hands to its layer's c_proj, in one forward pass."""
    idx = _as_batches(idx)
    H, hs = model.config.n_head, model.config.head_size
    seen = {}

    def keep(layer):
        def hook(module, inputs):
            B, T, _ = inputs[0].shape
            seen[layer] = inputs[0].view(B, T, H, hs).permute(2, 0, 1, 3)  # (B, T, C) -> (H, B, T, hs)

        return hook

    blocks = model.transformer.h
    handles = [b.attn.c_proj.register_forward_pre_hook(keep(i)) for i, b in enumerate(blocks)]
    try:
        with _evaluating(model):
            model(idx)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([seen[i] for i in range(len(blocks))])


@contextmanager
def patch_heads(model: GPT, values: dict):
    """Inside the ``with`` block, head (layer, head) hands ``values[(layer, head)]`` to
    c_proj instead of its own output: any tensor that broadcasts to [B, T, hs] (zeros:
    ablation; a mean over other inputs: mean ablation; the same head's output on another
    input: resample ablation or activation patching)."""
    hs = model.config.head_size
    by_layer: dict[int, dict[int, torch.Tensor]] = {}
    for (layer, head), value in values.items():
        _check_head(model, layer, head)
        by_layer.setdefault(layer, {})[head] = torch.as_tensor(value)

    def replace(heads):
        def hook(module, inputs):
            y = inputs[0].clone()  # (B, T, C): head h in columns [h*hs, (h+1)*hs)
            for h, value in heads.items():
                y[..., h * hs : (h + 1) * hs] = value.to(y.dtype)
            return (y,)

        return hook

    blocks = model.transformer.h
    handles = [blocks[layer].attn.c_proj.register_forward_pre_hook(replace(heads)) for layer, heads in by_layer.items()]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


def head_write(model: GPT, layer: int, head: int, out: torch.Tensor) -> torch.Tensor:
    """[..., C]: what a head adds to the residual stream, for its output out [..., hs]
    (its hs columns of c_proj; c_proj's bias belongs to no head)."""
    _check_head(model, layer, head)
    hs = model.config.head_size
    W_O = model.transformer.h[layer].attn.c_proj.weight[:, head * hs : (head + 1) * hs]  # (C, hs)
    return out @ W_O.T


def stream_pieces(model: GPT, idx: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """(names, [N, B, T, C]): the pieces whose sum is the stream that reaches ln_f:
    "embeddings" (wte + wpe), then for each layer l every head "L{l}H{h}", "L{l} attn bias"
    (when c_proj has a bias), and "L{l} MLP"."""
    idx = _as_batches(idx)
    seen = {}

    def keep(name):
        def hook(module, inputs, output):
            seen[name] = output

        return hook

    modules = {"embeddings": model.transformer.drop}
    modules.update({f"L{i} MLP": b.mlp for i, b in enumerate(model.transformer.h)})
    handles = [m.register_forward_hook(keep(name)) for name, m in modules.items()]
    try:
        outs = head_outputs(model, idx)  # [L, H, B, T, hs], in the same forward pass as the hooks
    finally:
        for handle in handles:
            handle.remove()
    names, pieces = ["embeddings"], [seen["embeddings"]]
    for layer, block in enumerate(model.transformer.h):
        for head in range(model.config.n_head):
            names.append(f"L{layer}H{head}")
            pieces.append(head_write(model, layer, head, outs[layer, head]).detach())
        if block.attn.c_proj.bias is not None:
            names.append(f"L{layer} attn bias")
            pieces.append(block.attn.c_proj.bias.detach().expand_as(pieces[0]))
        names.append(f"L{layer} MLP")
        pieces.append(seen[f"L{layer} MLP"])
    return names, torch.stack(pieces)


def direct_logit_attribution(model: GPT, idx: torch.Tensor, targets: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """(names, [N, B, T]): each piece of the stream's share of the logit of targets [B, T].

    ln_f(x) = (x - mean(x)) / s * w (+ b), with s = sqrt(var(x) + eps) computed on the
    whole stream x. Frozen at its value in the forward pass, s makes ln_f linear, so the
    logit lm_head(ln_f(x))[target] splits into one share per piece (plus "ln_f bias" when
    there is one), and the shares sum to the model's logit."""
    idx = _as_batches(idx)
    targets = targets.view(idx.shape)
    names, pieces = stream_pieces(model, idx)  # [N, B, T, C]
    ln_f = model.transformer.ln_f
    with torch.no_grad():
        x = stream_into(model, idx, model.config.n_layer)  # [B, T, C]: the stream that reaches ln_f
        s = (x.var(-1, unbiased=False, keepdim=True) + ln_f.eps).sqrt()  # [B, T, 1], frozen
        directions = model.lm_head.weight[targets] * ln_f.weight  # [B, T, C]: W_U[target] * w
        centred = pieces - pieces.mean(-1, keepdim=True)
        shares = (centred / s * directions).sum(-1)  # [N, B, T]
        if ln_f.bias is not None:
            names = names + ["ln_f bias"]
            shares = torch.cat([shares, (model.lm_head.weight[targets] @ ln_f.bias)[None]])
    return names, shares


@contextmanager
def add_to_attention_input(model: GPT, layer: int, delta: torch.Tensor, parts=("k",)):
    """Inside the ``with`` block, layer ``layer`` computes the listed parts ("q", "k", "v")
    from ln_1(x + delta) instead of ln_1(x); the other parts, the residual stream and the
    MLP still read x. delta broadcasts to [B, T, C]: for example minus a head's write, to
    remove that head from this layer's keys only."""
    if not set(parts) <= {"q", "k", "v"} or not parts:
        raise ValueError(f"parts must be some of 'q', 'k', 'v', got {parts!r}")
    _check_head(model, layer, 0)
    _check_plain_attention(model, layer)
    block, C = model.transformer.h[layer], model.config.n_embd
    seen = {}

    def keep_input(module, inputs):
        seen["x"] = inputs[0]

    def swap(module, inputs, output):
        a = _as_stream(block.ln_1, seen["x"] + delta.to(output.dtype))  # not through the hooked modules
        other = F.linear(a, module.weight, module.bias)  # (B, T, 3C)
        output = output.clone()
        for i, part in enumerate("qkv"):
            if part in parts:
                output[..., i * C : (i + 1) * C] = other[..., i * C : (i + 1) * C]
        return output

    handles = [block.ln_1.register_forward_pre_hook(keep_input), block.attn.c_attn.register_forward_hook(swap)]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


def _as_stream(ln, x: torch.Tensor) -> torch.Tensor:
    """ln(x) for rows x [..., C]: as if each row were the whole residual stream."""
    return F.layer_norm(x, ln.weight.shape, ln.weight, ln.bias, ln.eps)


def _check_plain_attention(model: GPT, layer: int) -> None:
    """c_attn cut into three C-wide parts (q, k, v), one key/value head per query head, no
    rotary positions: GPT-2's attention, which is what these functions are written for."""
    attn = model.transformer.h[layer].attn
    if getattr(attn, "n_kv_head", attn.n_head) != attn.n_head or getattr(attn, "rope_theta", None) is not None:
        raise ValueError(
            "these circuits need GPT-2's attention: one key/value head per query head, no rotary positions"
        )


def _qkv_rows(model: GPT, layer: int, head: int, part: int) -> torch.Tensor:
    """(hs, C): the rows of c_attn that make one head's queries (part 0), keys (1) or values (2)."""
    _check_head(model, layer, head)
    _check_plain_attention(model, layer)
    C, hs = model.config.n_embd, model.config.head_size
    return model.transformer.h[layer].attn.c_attn.weight[part * C + head * hs : part * C + (head + 1) * hs]


@torch.no_grad()
def through_mlp(model: GPT, layer: int, x: torch.Tensor) -> torch.Tensor:
    """[..., C]: x + mlp(ln_2(x)) of block ``layer``: the stream after that block's MLP,
    for vectors x that stand for the stream before it (attention adding nothing)."""
    block = model.transformer.h[layer]
    return x + block.mlp(block.ln_2(x))


@torch.no_grad()
def ov_write(model: GPT, layer: int, head: int, x: torch.Tensor) -> torch.Tensor:
    """[..., C]: what a head adds to the stream when it attends only to a position whose
    stream is x [..., C] (read through its layer's ln_1, as if x were the whole stream):
    W_O W_V ln_1(x)."""
    W_V = _qkv_rows(model, layer, head, 2)  # (hs, C)
    return head_write(model, layer, head, _as_stream(model.transformer.h[layer].ln_1, x) @ W_V.T)


@torch.no_grad()
def ov_circuit(model: GPT, layer: int, head: int, sources: torch.Tensor | None = None) -> torch.Tensor:
    """[V, S]: W_U W_O W_V of one head, applied to S source vectors (default: the token
    embeddings W_E, S = V). Entry [i, j]: how much the head raises the logit of token i
    when it attends only to a position whose stream is sources[j].

    LayerNorms: the head reads sources[j] through its layer's ln_1 as if it were the
    whole stream (centred, divided by its scale, times ln_1's weight); what it writes
    goes through ln_f's centring and weight, and ln_f's division by the scale of the
    whole stream (one positive number per position) is left out."""
    if sources is None:
        sources = model.transformer.wte.weight  # (V, C)
    out = ov_write(model, layer, head, sources)  # (S, C)
    out = (out - out.mean(-1, keepdim=True)) * model.transformer.ln_f.weight  # ln_f without its scale
    return model.lm_head.weight @ out.T  # (V, S): [output token i, source j]


@torch.no_grad()
def qk_circuit(model: GPT, layer: int, head: int, queries=None, keys=None) -> torch.Tensor:
    """[Q, ...]: one head's attention score (q . k, before the 1/sqrt(hs) and the softmax)
    of a query position whose stream is queries[i] for a key position whose stream is
    keys[j, ...]. Both default to the token embeddings W_E, which makes it the [V, V]
    matrix W_E^T W_Q^T W_K W_E; each vector is read through the layer's ln_1 as if it
    were the whole stream. Keys can carry extra dimensions ([K, S, C] gives [Q, K, S])."""
    W_E = model.transformer.wte.weight
    queries = W_E if queries is None else queries
    keys = W_E if keys is None else keys
    ln_1 = model.transformer.h[layer].ln_1
    q = _as_stream(ln_1, queries) @ _qkv_rows(model, layer, head, 0).T  # (Q, hs)
    k = _as_stream(ln_1, keys) @ _qkv_rows(model, layer, head, 1).T  # (..., hs)
    return torch.einsum("qd,...d->q...", q, k)


def copying_score(matrix: torch.Tensor) -> float:
    """Elhage et al. (2021)'s measure of copying for a [V, V] circuit: the sum of its
    eigenvalues over the sum of their absolute values, sum(lambda) / sum(|lambda|).
    1 when every eigenvalue is positive (the circuit raises what it reads), -1 when all
    are negative, near 0 for a random matrix."""
    eig = torch.linalg.eigvals(matrix.double())
    return (eig.sum().real / eig.abs().sum()).item()


def self_argmax_fraction(matrix: torch.Tensor) -> float:
    """The share of columns j of a [V, V] circuit whose largest entry is on row j: for an
    OV circuit, the tokens that raise their own logit most when attended to."""
    V = matrix.size(-1)
    return (matrix.argmax(0) == torch.arange(V)).float().mean().item()


def activation_patching(model: GPT, clean: torch.Tensor, corrupted: torch.Tensor, metric) -> torch.Tensor:
    """[L, H]: metric(logits) of the corrupted run with one head's output (at every
    position) taken from the clean run. metric maps logits [B, T, V] to a number."""
    clean, corrupted = _as_batches(clean), _as_batches(corrupted)
    outs = head_outputs(model, clean)  # [L, H, B, T, hs]
    L, H = model.config.n_layer, model.config.n_head
    result = torch.zeros(L, H)
    for layer in range(L):
        for head in range(H):
            with patch_heads(model, {(layer, head): outs[layer, head]}), _evaluating(model):
                logits, _ = model(corrupted)
            result[layer, head] = float(metric(logits))
    return result
