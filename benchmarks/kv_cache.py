"""KV cache: greedy generation of 500 tokens with and without the cache, side by side.

    python benchmarks/kv_cache.py

A shakespeare-char-sized model (6 layers, 6 heads, 384 dims) with block_size 512, so the
500 new tokens and the prompt fit in the context and the cache is used throughout.
Weights are random: the cost of a step does not depend on them. Each way is timed three
times, alternating, and the best time of each is kept.
"""

import time

import torch
from common import machine

from gptlib import GPT, GPTConfig


def main():
    print(machine())
    torch.manual_seed(0)
    config = GPTConfig.from_preset("shakespeare-char", block_size=512, dropout=0.0)
    model = GPT(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, 8))
    best = {True: float("inf"), False: float("inf")}
    outputs = {}
    model.generate(prompt, 10, temperature=0)  # warm-up
    for _ in range(3):
        for cache in (True, False):
            start = time.perf_counter()
            outputs[cache] = model.generate(prompt, 500, temperature=0, kv_cache=cache)
            best[cache] = min(best[cache], time.perf_counter() - start)
    identical = torch.equal(outputs[True], outputs[False])
    print(f"500 greedy tokens, block_size 512: with cache {best[True]:.2f} s, without {best[False]:.2f} s")
    print(f"speedup with the KV cache: {best[False] / best[True]:.1f}x  (goal >= 5x); identical tokens: {identical}")
    if not identical:
        raise SystemExit("the tokens differ: the cache is wrong")


if __name__ == "__main__":
    main()
