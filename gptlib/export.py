"""The book's model in the reader's browser: a GPT exported to ONNX, plus what the page needs.

``export_onnx(model, path)`` writes one ONNX file. Its graph has

    input   idx        int64    [B, T]                          token ids, 1 <= T <= block_size
    output  logits     float32  [B, T, vocab_size]              as GPT.forward returns them
    output  attention  float32  [B, n_layer, n_head, T, T]      every layer's and head's weights

``attention[b, l, h, i, j]`` is how much position i of layer l, head h attends to position j
(each row sums to 1; j > i is 0, the causal mask). The graph is the model's own modules
(``CausalSelfAttention.attention_weights`` for the weights), traced by ``torch.export``.

``write_page_meta(model, tok, onnx_path)`` writes the JSON beside it (same name, ``.json``):
the characters of the vocabulary, the config, and a role for every head (previous-token,
induction or other) measured with ``gptlib.interpret``. The book's pages (``book/_ext``)
load both files with onnxruntime-web; ``load_onnx(path)`` runs them in Python with
onnxruntime and gptlib's own input checks.

    python -m gptlib export --pretrained shakespeare-char --onnx site/shakespeare-char.onnx
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .model import GPT, check_token_ids
from .tokenizer import CharTokenizer

FORMAT = "gptlib-live/1"  # the JSON's layout; the page refuses others
ROLE_THRESHOLD = 0.5  # a head's score must reach this for it to be named after the pattern
DEFAULT_TEXT = "To be, or not to be, that is the question."


class GPTWithAttention(nn.Module):
    """The forward pass of a GPT that also returns every layer's attention weights.

    The same modules in the same order as ``GPT.forward`` (without its input checks,
    which look at the values of idx and so cannot be part of a graph: ``OnnxGPT`` and
    the page make them before running it).
    """

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor):
        t = self.model.transformer
        pos = torch.arange(idx.size(1), device=idx.device)  # (T,)
        x = t.wte(idx) + t.wpe(pos)  # (B, T, C)
        patterns = []
        for block in t.h:
            patterns.append(block.attn.attention_weights(block.ln_1(x)))  # (B, nh, T, T)
            x = block(x)  # (B, T, C)
        logits = self.model.lm_head(t.ln_f(x))  # (B, T, vocab_size)
        return logits, torch.stack(patterns, dim=1)  # (B, T, V), (B, n_layer, nh, T, T)


def require_onnx_exporter() -> None:
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 6):
        raise ImportError(
            f"exporting to ONNX needs torch >= 2.6 (its torch.export-based exporter), this is torch {torch.__version__}"
        )
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"exporting to ONNX needs onnx and onnxscript ({e.name} is missing): "
            f"pip install 'gpt2-shape-by-shape[export]' (or pip install onnx onnxscript)"
        ) from None


@contextmanager
def quiet_exporter():
    """Hide the exporter's notes about optional operator libraries (torchvision) it does not
    need, and a deprecation inside torch's own tree handling; errors still show."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model: GPT, path) -> Path:
    """Write model as an ONNX file at path (see the module docstring for its inputs and outputs)."""
    if not isinstance(model, GPT):
        raise TypeError(f"export_onnx needs a gptlib GPT, got {type(model).__name__}")
    config = model.config
    if config.non_gpt2_options():
        options = ", ".join(f"{k}={v!r}" for k, v in config.non_gpt2_options().items())
        raise ValueError(
            f"export_onnx writes GPT-2's graph (learned positions, LayerNorm, GELU); this model sets {options}"
        )
    require_onnx_exporter()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the name of the ONNX file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    wrapper = GPTWithAttention(model).eval()
    # An example of 2 x 8 ids; the batch and the length stay free (a size-1 example would be fixed).
    example = torch.zeros(2, min(8, config.block_size), dtype=torch.long)
    length = torch.export.Dim("T", min=1, max=config.block_size) if example.size(1) > 1 else None
    try:
        with quiet_exporter(), torch.no_grad():
            program = torch.export.export(
                wrapper, (example,), dynamic_shapes={"idx": {0: torch.export.Dim("B"), 1: length}}, strict=True
            )
            torch.onnx.export(
                program,
                f=str(path),
                input_names=["idx"],
                output_names=["logits", "attention"],
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        model.train(was_training)
    return path


def load_char_model(ckpt=None, pretrained: str | None = None) -> tuple[GPT, CharTokenizer, str]:
    """(model in eval mode, its character tokenizer, a name) from ``python -m gptlib train``'s
    --out folder (or its ckpt.pt), or the model that ships (pretrained="shakespeare-char")."""
    from .checkpoint import checkpoint_file
    from .sampling import load_for_sampling

    model, tok, kind = load_for_sampling(ckpt, pretrained)
    if kind != "char":
        raise ValueError(
            f"{ckpt} uses the {kind!r} tokenizer; the page's explorers need a character-level "
            f"model (train with --tokenizer char)"
        )
    return model, tok, pretrained or checkpoint_file(ckpt).parent.name or "model"


def real_text_windows(tok: CharTokenizer, text: str, block_size: int, count: int = 8) -> torch.Tensor:
    """Up to count windows of block_size token ids, spread over the last 10% of text (the part
    held out from training), keeping only windows whose characters are all in the vocabulary."""
    tail = text[int(len(text) * 0.9) :]
    known = set(tok.chars)
    step = max(1, (len(tail) - block_size) // count)
    windows = [tail[i : i + block_size] for i in range(0, max(1, len(tail) - block_size + 1), step)]
    windows = [w for w in windows if len(w) == block_size and set(w) <= known][:count]
    if not windows:
        raise ValueError(
            f"no window of {block_size} characters of the text uses only the model's "
            f"{tok.vocab_size} characters; give a text the model was trained on"
        )
    return torch.tensor([tok.encode(w) for w in windows], dtype=torch.long)  # (count, block_size)


def head_roles(model: GPT, tok: CharTokenizer, text: str) -> list[dict]:
    """What each head does, one dict a head: its previous-token score (on real text, averaged
    over a few windows), its induction score (on random characters repeated twice), and a role:
    "induction" or "previous-token" when that score reaches ROLE_THRESHOLD (induction first), else "other"."""
    from .interpret import attention_patterns, induction_scores, previous_token_scores, repeated_random_tokens

    config = model.config
    windows = real_text_windows(tok, text, config.block_size)
    previous = torch.stack([previous_token_scores(attention_patterns(model, w)) for w in windows]).mean(0)  # (L, H)
    period = config.block_size // 2
    repeated = repeated_random_tokens(config.vocab_size, period, repeats=2, generator=torch.Generator().manual_seed(0))
    induction = induction_scores(attention_patterns(model, repeated), period)  # (L, H)
    heads = []
    for layer in range(config.n_layer):
        for head in range(config.n_head):
            p, i = float(previous[layer, head]), float(induction[layer, head])
            role = "induction" if i >= ROLE_THRESHOLD else "previous-token" if p >= ROLE_THRESHOLD else "other"
            heads.append(
                {"layer": layer, "head": head, "role": role, "previous_token": round(p, 4), "induction": round(i, 4)}
            )
    return heads


def sha256_of(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def page_meta(model: GPT, tok: CharTokenizer, onnx_path, text: str, name: str = "model") -> dict:
    """What the page needs beside the ONNX file: vocabulary, config, head roles."""
    config = model.config
    if tok.vocab_size != config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tok.vocab_size} characters but the model's vocab_size is {config.vocab_size}"
        )
    default = DEFAULT_TEXT if set(DEFAULT_TEXT) <= set(tok.chars) else "".join(tok.chars[: config.block_size])
    return {
        "format": FORMAT,
        "name": name,
        "onnx": Path(onnx_path).name,
        "onnx_sha256": sha256_of(onnx_path),
        "inputs": {"idx": "int64 [B, T], 1 <= T <= block_size"},
        "outputs": {"logits": "float32 [B, T, vocab_size]", "attention": "float32 [B, n_layer, n_head, T, T]"},
        "config": {k: getattr(config, k) for k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")},
        "chars": tok.chars,
        "default_text": default[: config.block_size],
        "role_threshold": ROLE_THRESHOLD,
        "heads": head_roles(model, tok, text),
    }


def meta_path(onnx_path) -> Path:
    """The page's JSON for an ONNX file: the same name, ending in .json instead of .onnx.

    A name that does not end in .onnx is refused: ``x.json`` would make the JSON the same
    file as the model (written over it), and the page finds the JSON by that rule."""
    path = Path(onnx_path)
    if path.suffix != ".onnx":
        raise ValueError(
            f"the ONNX file {path} does not end in .onnx; give a name ending in .onnx "
            f"(the page's JSON is written beside it, with the same name ending in .json)"
        )
    json_path = path.with_suffix(".json")
    if path.exists() and json_path.exists() and path.samefile(json_path):
        raise ValueError(f"{path} and {json_path} are the same file (a link); the model and its JSON need two files")
    return json_path


def write_page_meta(model: GPT, tok: CharTokenizer, onnx_path, text: str | None = None, name: str = "model") -> Path:
    """Write page_meta(...) as JSON beside onnx_path; text defaults to the bundled Shakespeare."""
    from .dataset import read_text, shakespeare_path

    text = read_text(shakespeare_path()) if text is None else text
    path = meta_path(onnx_path)
    path.write_text(
        json.dumps(page_meta(model, tok, onnx_path, text, name), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return path


def export_for_page(model: GPT, tok: CharTokenizer, onnx_path, text: str | None = None, name: str = "model"):
    """Both files the page loads: (the .onnx, the .json)."""
    meta_path(onnx_path)  # a name that cannot hold both files is refused before anything is written
    onnx_path = export_onnx(model, onnx_path)
    return onnx_path, write_page_meta(model, tok, onnx_path, text, name)


class OnnxGPT:
    """An exported file run with onnxruntime (Python), with the checks gptlib makes:
    ``onnx_gpt(idx)`` -> (logits [B, T, V], attention [B, L, H, T, T]) as torch tensors."""

    def __init__(self, onnx_path, meta: dict):
        import onnxruntime

        from .config import GPTConfig

        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path(onnx_path)} is not a {FORMAT} file (format {meta.get('format')!r})")
        self.meta = meta
        self.config = GPTConfig(**meta["config"])
        self.tokenizer = CharTokenizer("".join(meta["chars"]))
        self.session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def __call__(self, idx: torch.Tensor):
        check_token_ids(idx, self.config)  # the same errors as GPT.forward
        logits, attention = self.session.run(["logits", "attention"], {"idx": idx.to(torch.long).numpy()})
        return torch.from_numpy(logits), torch.from_numpy(attention)

    def run_text(self, text: str):
        """The model on one text: unknown characters and a text longer than block_size are clear errors."""
        ids = self.tokenizer.encode(text)
        if not ids:
            raise ValueError("the text is empty; give at least one character")
        return self(torch.tensor([ids], dtype=torch.long))


def load_onnx(onnx_path) -> OnnxGPT:
    """The .onnx file and the .json beside it, ready to run with onnxruntime."""
    path = meta_path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {path.name} beside {onnx_path}: write it with write_page_meta or `python -m gptlib export`"
        )
    return OnnxGPT(onnx_path, json.loads(path.read_text(encoding="utf-8")))
