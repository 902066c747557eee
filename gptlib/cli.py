"""The command line: ``python -m gptlib params NAME`` and ``python -m gptlib trace NAME``."""

from __future__ import annotations

import argparse
import sys

import torch

from .config import PRESETS, GPTConfig
from .model import GPT
from .trace import format_trace, trace_config


def describe(name: str, config: GPTConfig) -> str:
    return (
        f"{name}: n_layer={config.n_layer}, n_head={config.n_head}, n_embd={config.n_embd}, "
        f"head_size={config.head_size}, block_size={config.block_size}, vocab_size={config.vocab_size}"
    )


def cmd_params(args) -> int:
    config = GPTConfig.from_preset(args.name)
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
    config = GPTConfig.from_preset(args.name)
    rows = trace_config(config, batch_size=args.batch, seq_len=args.seq_len)
    print(describe(args.name, config))
    print(format_trace(rows))
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gptlib", description="GPT-2, shape by shape.")
    sub = parser.add_subparsers(dest="command", required=True)
    names = ", ".join(PRESETS)

    p = sub.add_parser("params", help="parameter count of a preset, by component")
    p.add_argument("name", help=f"preset: {names}")
    p.set_defaults(func=cmd_params)

    t = sub.add_parser("trace", help="the forward pass of a preset, shape by shape")
    t.add_argument("name", help=f"preset: {names}")
    t.add_argument("--batch", type=positive_int, default=1, help="batch size B (default 1)")
    t.add_argument("--seq-len", type=positive_int, default=None, help="sequence length T (default block_size)")
    t.set_defaults(func=cmd_trace)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
