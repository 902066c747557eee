"""Text in, text out: continue a prompt with a trained model (``python -m gptlib sample``).

This sits above generation: it loads a model and its tokenizer (from a checkpoint of
``python -m gptlib train``, or the model that ships with gptlib), encodes the prompt,
calls ``gptlib.generate.generate`` and decodes the result.
"""

from __future__ import annotations

import torch

from .checkpoint import checkpoint_file, load_checkpoint, model_from_checkpoint, tokenizer_from_spec, tokenizer_spec
from .generate import generate
from .pretrained import load_shakespeare_char

PRETRAINED = ("shakespeare-char",)


def load_for_sampling(ckpt_path=None, pretrained: str | None = None):
    """(model in eval mode, tokenizer, tokenizer kind) from a checkpoint or a bundled model."""
    if (ckpt_path is None) == (pretrained is None):
        raise ValueError("give either a checkpoint (--ckpt) or --pretrained shakespeare-char, not both")
    if pretrained is not None:
        if pretrained not in PRETRAINED:
            raise ValueError(f"unknown pretrained model {pretrained!r}; the one that ships is shakespeare-char")
        model, tok, _ = load_shakespeare_char()
        return model, tok, "char"
    path = checkpoint_file(ckpt_path)
    ckpt = load_checkpoint(path)
    spec = tokenizer_spec(ckpt, path)
    return model_from_checkpoint(ckpt).eval(), tokenizer_from_spec(spec), spec["kind"]


def sample_text(
    ckpt_path=None,
    prompt=None,
    tokens: int = 500,
    temperature: float = 0.8,
    top_k=None,
    top_p=None,
    seed: int = 1337,
    pretrained: str | None = None,
) -> str:
    """Continue a prompt with a model trained by ``python -m gptlib train`` (ckpt_path: its
    --out folder or its ckpt.pt), or with the model that ships with gptlib
    (pretrained="shakespeare-char"); returns prompt + new text.

    With no prompt, a character-level model starts from a newline and a GPT-2 tokenizer
    model from <|endoftext|>. An empty prompt is an error rather than that default: the
    model needs at least one token to continue, and a default the user did not ask for
    would be printed as if it were their text.
    """
    if prompt == "":
        raise ValueError(
            "the prompt is empty; give at least one character, or leave out the prompt (--prompt) "
            "to start from a newline (a character-level model) or <|endoftext|> (a GPT-2 tokenizer model)"
        )
    model, tok, kind = load_for_sampling(ckpt_path, pretrained)
    if kind == "char":
        ids = tok.encode("\n" if prompt is None else prompt)  # unknown characters: a clear ValueError
    else:
        ids = tok.encode("<|endoftext|>" if prompt is None else prompt, allowed_special={"<|endoftext|>"})
    idx = torch.tensor([ids], dtype=torch.long)  # (1, T)
    out = generate(
        model,
        idx,
        tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generator=torch.Generator().manual_seed(seed),
    )
    return tok.decode(out[0].tolist())
