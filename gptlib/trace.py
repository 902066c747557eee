"""Chapter 8: the whole forward pass, shape by shape.

``trace(model, idx)`` runs one real forward pass with hooks on each stage and
returns the table of stage names and output shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import GPTConfig
from .model import GPT


@dataclass(frozen=True)
class TraceRow:
    stage: str
    shape: tuple[int, ...]
    note: str = ""


def record_outputs(model: GPT, idx: torch.Tensor, modules: dict) -> tuple[torch.Tensor, dict]:
    """Run model(idx) once, without gradients, with a forward hook on each module of
    ``modules`` (a dict name -> module); return the logits and a dict name -> (input, output)
    of what each module received and returned, in the order they ran."""
    seen: dict = {}

    def recorder(name: str):
        def hook(module, inputs, output):
            seen[name] = (inputs[0] if inputs else None, output)

        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in modules.items()]
    try:
        with torch.no_grad():
            logits, _ = model(idx)
    finally:
        for handle in handles:
            handle.remove()
    return logits, seen


def trace(model: GPT, idx: torch.Tensor) -> list[TraceRow]:
    """Run model(idx) and record each stage's output shape, in the order they run."""
    config = model.config
    rows = [TraceRow("token ids", tuple(idx.shape), "idx")]
    stages = [(model.transformer.wte, "token embeddings", f"wte: {config.vocab_size} x {config.n_embd}")]
    if config.position == "learned":
        stages += [
            (model.transformer.wpe, "position embeddings", f"wpe: {config.block_size} x {config.n_embd}"),
            (model.transformer.drop, "tok + pos", "x = wte[idx] + wpe[pos]"),
        ]
    kv = "" if config.kv_heads == config.n_head else f" ({config.kv_heads} key/value heads)"
    rope = ", rotary positions" if config.position == "rope" else ""
    mlp = f"mlp {config.n_embd}->{config.mlp_width}->{config.n_embd}" + (" (SwiGLU)" if config.mlp == "swiglu" else "")
    for i, block in enumerate(model.transformer.h):
        stages.append((block, f"block {i}", f"{config.n_head} heads x {config.head_size}{kv}{rope}, {mlp}"))
    tied = "tied to wte" if config.tie_embeddings else "its own matrix"
    stages += [
        (model.transformer.ln_f, "ln_f", "final LayerNorm" if config.norm == "layernorm" else "final RMSNorm"),
        (model.lm_head, "logits", f"lm_head: {config.n_embd} -> {config.vocab_size} ({tied})"),
    ]

    modules = {stage: module for module, stage, _ in stages}
    _, seen = record_outputs(model, idx, modules)
    rows += [TraceRow(stage, tuple(seen[stage][1].shape), note) for _, stage, note in stages]
    return rows


def format_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def format_trace(rows: list[TraceRow]) -> str:
    """The trace as an aligned text table."""
    width = max(len(r.stage) for r in rows)
    shape_width = max(len(format_shape(r.shape)) for r in rows)
    lines = [f"{'stage':<{width}}  {'output shape':<{shape_width}}  note"]
    lines += [f"{r.stage:<{width}}  {format_shape(r.shape):<{shape_width}}  {r.note}".rstrip() for r in rows]
    return "\n".join(lines)


def trace_config(config: GPTConfig, batch_size: int = 1, seq_len: int | None = None) -> list[TraceRow]:
    """Trace a model of this configuration on the meta device: shapes only, no memory."""
    seq_len = config.block_size if seq_len is None else seq_len
    with torch.device("meta"):
        model = GPT(config)
        idx = torch.zeros(batch_size, seq_len, dtype=torch.long)
    return trace(model, idx)
