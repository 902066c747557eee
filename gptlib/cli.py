"""The command line.

python -m gptlib params NAME        parameter count of a preset, by component
python -m gptlib trace NAME         the forward pass of a preset, shape by shape
python -m gptlib train --data FILE  train a GPT on a text (under torchrun too)

params, trace and train take the options of GPTConfig after GPT-2's, to count, trace or
train a model with Llama's pieces: --position rope --norm rmsnorm --mlp swiglu
--n-kv-head 2 --no-tie-embeddings --no-bias (and --rope-theta, --norm-eps, --mlp-hidden).
python -m gptlib sample --ckpt DIR  generate text from a trained GPT
python -m gptlib export --pretrained shakespeare-char --onnx FILE   ONNX + JSON for the live pages
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from .config import MLPS, NORMS, OPTIONS, POSITIONS, PRESETS, GPTConfig
from .interrupt import TrainingInterrupted
from .model import GPT
from .trace import format_trace, trace_config


def describe(name: str, config: GPTConfig) -> str:
    options = "".join(f", {k}={v}" for k, v in config.non_gpt2_options().items())  # none for GPT-2
    return (
        f"{name}: n_layer={config.n_layer}, n_head={config.n_head}, n_embd={config.n_embd}, "
        f"head_size={config.head_size}, block_size={config.block_size}, vocab_size={config.vocab_size}{options}"
    )


def model_options(args) -> dict:
    """The model options given on the command line (bias and GPTConfig's OPTIONS), by field name."""
    return {name: getattr(args, name) for name in ("bias", *OPTIONS) if getattr(args, name, None) is not None}


def cmd_params(args) -> int:
    config = GPTConfig.from_preset(args.name, **model_options(args))
    with torch.device("meta"):  # shapes only: even gpt2-xl allocates nothing
        model = GPT(config)
    breakdown = model.parameter_breakdown()
    width = max(len(k) for k in breakdown)
    print(describe(args.name, config))
    for part, count in breakdown.items():
        print(f"{part:<{width}}  {count:>13,}")
    print(f"total {model.num_parameters():,}")
    return 0


def cmd_trace(args) -> int:
    config = GPTConfig.from_preset(args.name, **model_options(args))
    rows = trace_config(config, batch_size=args.batch, seq_len=args.seq_len)
    print(describe(args.name, config))
    print(format_trace(rows))
    return 0


def cmd_train(args) -> int:
    from .train import run_training

    history = run_training(
        data=args.data,
        tokenizer=args.tokenizer,
        preset=args.preset,
        recipe=args.recipe,
        out=args.out,
        max_iters=args.max_iters,
        max_seconds=args.max_seconds,
        device=args.device,
        resume=args.resume,
        compile=args.compile,
        progress=not args.quiet,
        seed=args.seed,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        eval_interval=args.eval_interval,
        model_options=model_options(args),
        clock=args.clock,
    )
    if history and int(os.environ.get("RANK", "0")) == 0:
        last = history[-1]
        print(
            f"step {last['step']}: train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}, "
            f"{last['elapsed_s']:.1f} s; checkpoint {Path(args.out) / 'ckpt.pt'}"
        )
    return 0


def cmd_sample(args) -> int:
    from .sampling import sample_text

    print(
        sample_text(
            args.ckpt,
            prompt=args.prompt,
            tokens=args.tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
            pretrained=args.pretrained,
        )
    )
    return 0


def cmd_export(args) -> int:
    from .dataset import read_text
    from .export import export_for_page, load_char_model

    model, tok, name = load_char_model(args.ckpt, args.pretrained)
    text = None if args.text is None else read_text(args.text)
    try:
        onnx_path, json_path = export_for_page(model, tok, args.onnx, text=text, name=name)
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    c = model.config
    print(
        f"{onnx_path} ({onnx_path.stat().st_size:,} bytes): idx [B, T<={c.block_size}] -> "
        f"logits [B, T, {c.vocab_size}], attention [B, {c.n_layer}, {c.n_head}, T, T]"
    )
    print(f"{json_path}: {tok.vocab_size} characters, config, and the role of each of the {c.n_layer * c.n_head} heads")
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--position, --norm, --mlp, --n-kv-head, ...: GPTConfig's options, each left as the
    preset's (or recipe's) unless given."""
    g = parser.add_argument_group("model options (default: the preset's or the recipe's; GPT-2's in the presets)")
    g.add_argument("--position", choices=POSITIONS, default=None, help="learned (GPT-2's wpe) or rope (rotary)")
    g.add_argument("--rope-theta", type=positive_float, default=None, help="rope's base (default 10000)")
    g.add_argument("--norm", choices=NORMS, default=None, help="layernorm (GPT-2) or rmsnorm (Llama)")
    g.add_argument("--norm-eps", type=positive_float, default=None, help="the norms' epsilon (default 1e-5)")
    g.add_argument("--mlp", choices=MLPS, default=None, help="gelu (GPT-2) or swiglu (Llama)")
    g.add_argument("--mlp-hidden", type=positive_int, default=None, help="the MLP's hidden width")
    g.add_argument("--n-kv-head", type=positive_int, default=None, help="key/value heads (grouped-query attention)")
    g.add_argument(
        "--tie-embeddings",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lm_head shares wte's matrix (GPT-2) or, with --no-tie-embeddings, has its own (Llama)",
    )
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, default=None, help="biases in the linear layers")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gptlib", description="GPT-2, shape by shape.")
    sub = parser.add_subparsers(dest="command", required=True)
    names = ", ".join(PRESETS)

    p = sub.add_parser("params", help="parameter count of a preset, by component")
    p.add_argument("name", help=f"preset: {names}")
    add_model_options(p)
    p.set_defaults(func=cmd_params)

    t = sub.add_parser("trace", help="the forward pass of a preset, shape by shape")
    t.add_argument("name", help=f"preset: {names}")
    t.add_argument("--batch", type=positive_int, default=1, help="batch size B (default 1)")
    t.add_argument("--seq-len", type=positive_int, default=None, help="sequence length T (default block_size)")
    add_model_options(t)
    t.set_defaults(func=cmd_trace)

    from .recipes import CLOCKS
    from .train import DEFAULT_RECIPE, RECIPES

    tr = sub.add_parser("train", help="train a GPT on a UTF-8 text file")
    tr.add_argument("--data", required=True, help="a UTF-8 text file; the last 10%% is held out for validation")
    tr.add_argument("--tokenizer", choices=["char", "gpt2"], default="char", help="default: char")
    tr.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default=None,
        help=f"model shape and training schedule (default: {DEFAULT_RECIPE}; with --max-seconds alone, "
        f"a model and schedule sized to the time budget)",
    )
    tr.add_argument("--preset", default=None, help=f"use this preset's model shape instead ({names})")
    tr.add_argument("--out", default="out", help="folder for ckpt.pt and log.jsonl (default: out)")
    tr.add_argument("--max-iters", type=positive_int, default=None, help="training steps (default: the recipe's)")
    tr.add_argument(
        "--max-seconds",
        type=positive_float,
        default=None,
        help="time budget, evaluation included; alone, it also sizes the model and decays the "
        "learning rate over the budget",
    )
    tr.add_argument(
        "--clock",
        choices=CLOCKS,
        default=None,
        help="what --max-seconds counts: wall (time that passes; the default) or cpu (this process's "
        "CPU time, the same work however busy the machine is)",
    )
    tr.add_argument("--batch-size", type=positive_int, default=None, help="sequences per step (default: the recipe's)")
    tr.add_argument(
        "--grad-accum",
        type=positive_int,
        default=None,
        help="compute each step's batch in N pieces: the same step, 1/N of the activation memory",
    )
    tr.add_argument("--seed", type=int, default=None, help="random seed (default: the recipe's, 1337)")
    tr.add_argument(
        "--eval-interval",
        type=positive_int,
        default=None,
        help="evaluate and save the checkpoint every N steps (default: the recipe's)",
    )
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    tr.add_argument("--compile", action="store_true", help="torch.compile the model")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(tr)
    tr.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate text from a checkpoint")
    source = s.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="the --out folder of a training run, or its ckpt.pt")
    source.add_argument("--pretrained", choices=["shakespeare-char"], help="the small model that ships with gptlib")
    s.add_argument("--prompt", default=None, help="text to continue (default: a newline, or <|endoftext|>)")
    s.add_argument("--tokens", type=positive_int, default=500, help="new tokens to generate (default 500)")
    s.add_argument("--temperature", type=float, default=0.8, help="0 means greedy (default 0.8)")
    s.add_argument("--top-k", type=positive_int, default=None)
    s.add_argument("--top-p", type=float, default=None)
    s.add_argument("--seed", type=int, default=1337)
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("export", help="export a character-level GPT to ONNX for the book's live pages")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="the --out folder of a training run, or its ckpt.pt")
    source.add_argument("--pretrained", choices=["shakespeare-char"], help="the small model that ships with gptlib")
    e.add_argument("--onnx", required=True, help="the .onnx file to write; the page's .json is written beside it")
    e.add_argument(
        "--text", default=None, help="text for measuring what each head does (default: the bundled Shakespeare)"
    )
    e.set_defaults(func=cmd_export)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if args.command == "train" and int(os.environ.get("RANK", "0")) == 0:
            print(f"\n{interrupt_message(e, Path(args.out) / 'ckpt.pt', args.resume)}", file=sys.stderr)
        return 130


def interrupt_message(e: KeyboardInterrupt, path: Path, resume: bool) -> str:
    """What a Ctrl-C of `train` left on disk, in one line."""
    if not isinstance(e, TrainingInterrupted):  # before Trainer.train began
        kept = f" ({path} is as it was: continue with --resume)" if resume else ""
        return f"interrupted before training started; nothing was saved{kept}"
    if e.step is None:  # a second Ctrl-C: at once, perhaps halfway through a step
        if e.saved_step is None:
            return "stopped at once by a second Ctrl-C; nothing was saved"
        return f"stopped at once by a second Ctrl-C; {path} holds step {e.saved_step}: continue with --resume"
    when = "before the first step" if e.step == 0 else f"after step {e.step}"
    return f"interrupted {when}; saved in {path}: continue with --resume"
