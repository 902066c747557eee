"""Attention paths: training throughput with the fast attention (F.scaled_dot_product_attention)
against the written-out one (softmax(Q K^T / sqrt(hs)) V with a materialised mask), side by side.

    python benchmarks/attention_paths.py

A shakespeare-char-sized model (6 layers, 6 heads, 384 dims), batch 8, at block 256 and
512. Each measurement is 10 training steps after 3 warm-up steps; the two paths alternate
three times and the best of each is kept.
"""

import time

import torch
from common import machine

from gptlib import GPT, GPTConfig
from gptlib.train import TrainConfig, make_optimizer


def tokens_per_second(model, fast, batch, steps=10):
    for block in model.transformer.h:
        block.attn.fast = fast
    opt = make_optimizer(model, TrainConfig())
    x = torch.randint(0, model.config.vocab_size, (batch, model.config.block_size))
    for i in range(3 + steps):
        if i == 3:
            start = time.perf_counter()
        _, loss = model(x, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch * model.config.block_size / (time.perf_counter() - start)


def main():
    print(machine())
    for block_size in (256, 512):
        torch.manual_seed(0)
        model = GPT(GPTConfig.from_preset("shakespeare-char", block_size=block_size, dropout=0.0))
        best = {True: 0.0, False: 0.0}
        for _ in range(3):
            for fast in (True, False):
                best[fast] = max(best[fast], tokens_per_second(model, fast, batch=8))
        print(
            f"block {block_size}: fast {best[True]:,.0f} tokens/s, written-out {best[False]:,.0f} tokens/s, "
            f"ratio {best[True] / best[False]:.2f}x"
        )


if __name__ == "__main__":
    main()
