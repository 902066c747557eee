"""Chapter 8: the whole GPT.

    token ids                      (B, T)
    wte[idx] + wpe[pos]            (B, T, C)
    n_layer x Block                (B, T, C)
    ln_f                           (B, T, C)
    lm_head (tied to wte)          (B, T, vocab_size)

Parameter names are GPT-2's checkpoint names (``transformer.h.0.attn.c_attn.weight``),
so GPT-2 weights map one to one (see ``gptlib.weights``).

The options of ``GPTConfig`` (a Llama sets them all; see ``gptlib.llama``) change pieces
and keep these names: with ``position="rope"`` there is no wpe (attention turns queries
and keys instead); with ``norm="rmsnorm"`` ln_1, ln_2 and ln_f are RMSNorms; with
``mlp="swiglu"`` the MLP gains c_gate; with ``n_kv_head`` c_attn makes fewer keys and
values; with ``tie_embeddings=False`` lm_head has its own matrix.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPTConfig, check_token_ids  # noqa: F401 - check_token_ids: gptlib.model.check_token_ids too
from .generate import generate as generate_tokens
from .layers import Block, norm_layer


class GPT(nn.Module):
    """GPT-2 as nanoGPT builds it: one model that reads up to block_size tokens at once."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        modules = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))  # token embeddings
        if config.position == "learned":  # GPT-2; with rope, positions act inside attention
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)  # position embeddings
        modules["drop"] = nn.Dropout(config.dropout)
        modules["h"] = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        modules["ln_f"] = norm_layer(config)
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight  # weight tying: one matrix, two uses
        self.apply(self._init_weights)
        # GPT-2 scales the projections that write into the residual stream by
        # 1/sqrt(2 * n_layer): each block adds two of them to the stream.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache=None, last_only: bool = False):
        """Logits (B, T, vocab_size) for every position, and the mean cross-entropy
        loss over all B * T positions when targets (B, T) are given (else None).
        Targets equal to -1 are ignored.

        With a ``KVCache`` (generation), idx holds only the new tokens; they are placed
        after the cached positions, and the cache grows by T. With ``last_only=True``
        (generation, without targets) the logits are (B, 1, vocab_size), for the last
        position only: the others are not sampled, so lm_head skips them."""
        if last_only and targets is not None:
            raise ValueError("last_only=True computes the last position's logits only; it cannot give a loss")
        past = 0 if kv_cache is None else kv_cache.length
        check_token_ids(idx, self.config, past=past)
        B, T = idx.shape
        x = self.transformer.wte(idx)  # (B, T, C): token embeddings
        if self.config.position == "learned":
            pos = torch.arange(past, past + T, device=idx.device)  # (T,)
            x = x + self.transformer.wpe(pos)  # (T, C), broadcast over the batch
        x = self.transformer.drop(x)  # (B, T, C)
        caches = [None] * len(self.transformer.h) if kv_cache is None else kv_cache.layers
        for block, cache in zip(self.transformer.h, caches):
            x = block(x, cache)  # (B, T, C)
        if last_only:
            x = x[:, -1:, :]  # (B, 1, C)
        x = self.transformer.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
            shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {shape}")
        if targets.device.type != "meta":
            bad = targets[(targets != -1) & ((targets < 0) | (targets >= self.config.vocab_size))]
            if bad.numel():
                raise ValueError(
                    f"target id {int(bad[0])} is outside [0, {self.config.vocab_size}) (vocab_size); "
                    f"use -1 to ignore a position"
                )
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=-1)
        return logits, loss

    def num_parameters(self) -> int:
        """Parameters counted once each (the tied lm_head adds none; an untied one adds
        vocab_size x n_embd)."""
        return sum(p.numel() for p in self.parameters())

    def parameter_breakdown(self) -> OrderedDict[str, int]:
        """Parameter counts by component, summing to ``num_parameters()``.

        GPT-2's rows are wte, wpe, attention, mlp, the blocks' layernorms and ln_f; a model
        with rotary positions has no wpe row, and one with an untied lm_head has an lm_head row."""
        c = self.config
        norms = "layernorm" if c.norm == "layernorm" else "RMSNorm"
        labels = {
            "wte": "wte (token embeddings, shared with lm_head)" if c.tie_embeddings else "wte (token embeddings)",
            "wpe": "wpe (position embeddings)",
            "attn": "attention (c_attn, c_proj)",
            "mlp": "mlp (c_fc, c_proj)" if c.mlp == "gelu" else "mlp (c_gate, c_fc, c_proj)",
            "ln": f"{norms}s in blocks (ln_1, ln_2)",
            "ln_f": f"ln_f (final {norms})",
            "lm_head": "lm_head (output embeddings, not tied to wte)",
        }
        if c.position != "learned":
            del labels["wpe"]
        if c.tie_embeddings:
            del labels["lm_head"]  # its matrix is wte's, counted there
        groups = OrderedDict((label, 0) for label in labels.values())
        for name, p in self.named_parameters():
            if name.startswith(("transformer.wte.", "transformer.wpe.", "transformer.ln_f.", "lm_head.")):
                part = name.split(".")[-2]  # wte, wpe, ln_f or lm_head
            elif ".attn." in name or ".mlp." in name:
                part = "attn" if ".attn." in name else "mlp"
            elif ".ln_1." in name or ".ln_2." in name:
                part = "ln"
            else:  # pragma: no cover - a parameter this table does not know
                raise RuntimeError(f"parameter {name} has no group in the breakdown")
            groups[labels[part]] += p.numel()
        return groups

    @torch.no_grad()
    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k=None,
        top_p=None,
        kv_cache: bool = True,
        generator=None,
    ):
        """Append max_new_tokens tokens to idx (B, T), one forward pass per token.

        temperature=0 means greedy; top_k and top_p restrict the choice. The context is
        cropped to the last block_size tokens. With kv_cache=True each step feeds only
        the newest token and reuses the keys and values of the earlier ones; the tokens
        are the same as without it.
        """
        return generate_tokens(
            self,
            idx,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            kv_cache=kv_cache,
            generator=generator,
        )
