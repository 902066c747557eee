"""Chapter 11 exercises: reading GPT-2's checkpoint layout.

Hugging Face's GPT-2 checkpoints store the four projection matrices of every block as
``Conv1D`` weights, shaped (in, out) (OpenAI's TensorFlow checkpoint stores them as
``[1, in, out]``); ``torch.nn.Linear`` stores (out, in). Names come in Hugging Face's two
styles: ``GPT2LMHeadModel``'s (``transformer.h.0.attn.c_attn.weight``) and the bare
``GPT2Model``'s, without the prefix, as the hub's ``model.safetensors`` for ``gpt2``
stores them (``h.0.attn.c_attn.weight``). These checkers need no ``transformers``: the
checkpoints they use are made of random tensors with GPT-2's names and shapes.
"""

from __future__ import annotations

import torch

from ..weights import CONV1D_WEIGHTS
from . import Mistake, check

# ---------------------------------------------------------------------------
# Exercise 1: which tensors must be transposed?


def needs_transpose(name: str) -> bool:
    """True for the four Conv1D weights of a block (c_attn, attn.c_proj, c_fc, mlp.c_proj)."""
    return name.endswith(CONV1D_WEIGHTS)


def _checkpoint_names() -> list[str]:
    """Every kind of name a GPT-2 checkpoint holds, with and without the ``transformer.`` prefix."""
    block = [
        f"{part}.{kind}"
        for part in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj")
        for kind in ("weight", "bias")
    ]
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    names += [f"transformer.h.0.{n}" for n in block]
    names += [f"transformer.h.11.{n}" for n in block]
    names += ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]
    names += ["wte.weight", "wpe.weight", "h.3.attn.c_attn.weight", "h.3.attn.c_proj.weight"]
    names += ["h.3.mlp.c_fc.weight", "h.3.mlp.c_proj.weight", "h.3.ln_2.weight", "ln_f.bias"]
    return names


def _is_layernorm(name: str) -> bool:
    return any(f"{ln}." in name for ln in ("ln_1", "ln_2", "ln_f"))


def check_needs_transpose(fn) -> str:
    """Exercise: needs_transpose(name) -> bool, for every name of a GPT-2 checkpoint."""
    return check(
        "needs_transpose",
        fn,
        needs_transpose,
        cases=[(name,) for name in _checkpoint_names()],
        mistakes=[
            Mistake(
                lambda n: n.endswith(".weight") and not _is_layernorm(n),
                "wte, wpe and lm_head are not Conv1D weights. Embedding tables are (rows, n_embd) in "
                "both layouts, and lm_head is an nn.Linear in GPT2LMHeadModel too (tied to wte). Only "
                "the four projection weights of each block are stored (in, out).",
            ),
            Mistake(
                lambda n: any(part in n for part in ("attn.c_attn.", "attn.c_proj.", "mlp.c_fc.", "mlp.c_proj.")),
                "only the .weight of the four projections needs it. A bias is a vector of out_features "
                "numbers, stored the same way in both layouts.",
            ),
            Mistake(
                lambda n: n.endswith(("attn.c_attn.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")),
                "attn.c_proj.weight is a Conv1D weight too. It is square (n_embd x n_embd), so forgetting "
                "it raises no shape error: the model loads the transposed matrix and computes the wrong thing.",
            ),
            Mistake(
                lambda n: n.endswith(("attn.c_attn.weight", "attn.c_proj.weight")),
                "the MLP's c_fc and c_proj are Conv1D weights as well: all four projections of a block "
                "are stored (in, out).",
            ),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 2: a Conv1D layer's forward pass.


def conv1d_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """What GPT-2's Conv1D computes: x (..., in) times w (in, out), plus b (out,)."""
    return x @ w + b


def _conv1d_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(11)
    cases = []
    for x_shape, n_in, n_out in [((2, 5), 8, 24), ((3,), 8, 8), ((1, 4), 16, 4), ((2, 3), 6, 6)]:
        x = torch.randn(*x_shape, n_in, generator=g)
        w = torch.randn(n_in, n_out, generator=g)
        b = torch.randn(n_out, generator=g)
        cases.append((x, w, b))
    return cases


_TRANSPOSED_HINT = (
    "you multiplied by w.T (which is also what F.linear(x, w, b) does). That is right for nn.Linear, "
    "whose weight is (out, in); a Conv1D weight is already (in, out), so it is x @ w + b."
)


def check_conv1d_forward(fn) -> str:
    """Exercise: conv1d_forward(x, w, b) with w stored (in, out)."""
    return check(
        "conv1d_forward",
        fn,
        conv1d_forward,
        cases=_conv1d_cases(),
        mistakes=[
            # x @ w.T raises on the non-square weights: check() reports the error, and this hint
            # when the outputs on the square weights (inputs 2 and 4) match it
            Mistake(lambda x, w, b: x @ w.T + b, _TRANSPOSED_HINT),
            Mistake(lambda x, w, b: x @ w, "the bias is missing: Conv1D adds b after the product."),
        ],
    )


# ---------------------------------------------------------------------------
# Exercise 3: convert one checkpoint entry to gptlib's layout.


def convert_name_and_tensor(name: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
    """One GPT-2 checkpoint entry (either of Hugging Face's name styles) as gptlib names and stores it."""
    if not name.startswith("transformer."):
        name = "transformer." + name
    return name, (tensor.t() if needs_transpose(name) else tensor)


def _convert_cases() -> list[tuple]:
    """Random tensors in GPT-2's checkpoint layout (n_embd 8, vocab 20, 6 positions)."""
    C, V, P = 8, 20, 6
    shapes = {
        "wte.weight": (V, C),
        "wpe.weight": (P, C),
        "ln_1.weight": (C,),
        "attn.c_attn.weight": (C, 3 * C),
        "attn.c_attn.bias": (3 * C,),
        "attn.c_proj.weight": (C, C),
        "mlp.c_fc.weight": (C, 4 * C),
        "mlp.c_fc.bias": (4 * C,),
        "mlp.c_proj.weight": (4 * C, C),
        "ln_f.bias": (C,),
    }
    g = torch.Generator().manual_seed(12)
    cases = []
    for short, shape in shapes.items():
        full = short if short.split(".")[0] in ("wte", "wpe", "ln_f") else f"h.1.{short}"
        cases.append(("transformer." + full, torch.randn(*shape, generator=g)))  # Hugging Face names
        cases.append((full, torch.randn(*shape, generator=g)))  # the hub file's (GPT2Model's) names, no prefix
    return cases


def _prefixed(name: str) -> str:
    return name if name.startswith("transformer.") else "transformer." + name


def check_convert_name_and_tensor(fn) -> str:
    """Exercise: convert_name_and_tensor(name, tensor) -> (gptlib name, tensor in nn.Linear layout)."""
    return check(
        "convert_name_and_tensor",
        fn,
        convert_name_and_tensor,
        cases=_convert_cases(),
        mistakes=[
            Mistake(
                lambda n, t: (_prefixed(n), t.t() if t.dim() == 2 else t),
                "you transposed every 2-D tensor, wte and wpe included. Embedding tables are "
                "(rows, n_embd) in both layouts: only the four Conv1D weights of a block are transposed.",
            ),
            Mistake(
                lambda n, t: (_prefixed(n), t),
                "nothing was transposed. Hugging Face's GPT-2 stores c_attn, attn.c_proj, c_fc and mlp.c_proj "
                "as Conv1D weights, (in, out); "
                "nn.Linear wants (out, in), so those four weights need .t().",
            ),
            Mistake(
                lambda n, t: (n, t.t() if needs_transpose(n) else t),
                "names as the hub's model.safetensors stores them, such as 'h.1.attn.c_attn.weight', have no "
                "'transformer.' prefix; gptlib's names all start with it, so add it when it is missing.",
            ),
            Mistake(
                lambda n, t: ("transformer." + n, t.t() if needs_transpose(n) else t),
                "Hugging Face names already start with 'transformer.': add the prefix only when it is missing.",
            ),
        ],
    )
