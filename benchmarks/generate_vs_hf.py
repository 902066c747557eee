"""Generation: gptlib's ``generate`` against Hugging Face's ``GPT2LMHeadModel.generate``, side by side.

    python benchmarks/generate_vs_hf.py [--repeats 5]

GPT-2 124M's architecture with random weights (the cost of a step does not depend on
them), the same weights in both models; greedy, a 32-token prompt, 100 new tokens, 2 CPU
threads. The two are timed alternately and the best time of each is kept; the tokens must
be identical. Then peak memory: each way runs in a fresh process, which reports how much
its peak resident memory grew during one generation (with and without the KV cache).
"""

import argparse
import gc
import json
import subprocess
import sys
import time

import torch
from common import machine

PROMPT, NEW = 32, 100


def models():
    from transformers import GPT2Config, GPT2LMHeadModel

    from gptlib import GPT
    from gptlib.weights import config_from_hf, from_hf_state_dict, load_checked

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config()).eval()
    ours = load_checked(GPT(config_from_hf(hf.config.to_dict())), from_hf_state_dict(hf.state_dict())).eval()
    prompt = torch.randint(0, hf.config.vocab_size, (1, PROMPT), generator=torch.Generator().manual_seed(0))
    return hf, ours, prompt


def run_hf(hf, prompt):
    with torch.no_grad():
        return hf.generate(
            prompt,
            max_new_tokens=NEW,
            min_new_tokens=NEW,
            do_sample=False,
            attention_mask=torch.ones_like(prompt),
            pad_token_id=0,
        )


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB: VmRSS (resident now) or VmHWM (peak resident)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_memory(way: str) -> None:
    """In a fresh process: print how many MiB the peak RSS grew during one generation.

    Building the models peaks higher than generating does, so the peak is reset first
    (writing 5 to /proc/self/clear_refs sets VmHWM back to the current VmRSS, Linux 4.0+)."""
    hf, ours, prompt = models()
    if way == "hf":
        del ours
    else:
        del hf
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS")
    if way == "hf":
        run_hf(hf, prompt)
    else:
        ours.generate(prompt, NEW, temperature=0, kv_cache=way == "cache")
    print(json.dumps({"way": way, "peak_growth_mib": (status_kib("VmHWM") - before) / 1024}))


def weight_read_floor(model, repeats: int = 5) -> float:
    """Seconds to apply every Linear of the model (lm_head included) once to one token: the
    weights must be read from memory once per generated token, whatever the code around
    them does, so this is a floor for the time of one step with a cache."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(1, 1, m.in_features) for m in linears]
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for m, x in zip(linears, inputs):
                m(x)
            best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-of", choices=["cache", "nocache", "hf"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.memory_of:
        return peak_memory(args.memory_of)
    print(machine())
    hf, ours, prompt = models()
    run_hf(hf, prompt), ours.generate(prompt, 5, temperature=0)  # warm-up
    best = {"hf": float("inf"), "gptlib": float("inf")}
    for _ in range(args.repeats):
        start = time.perf_counter()
        theirs = run_hf(hf, prompt)
        best["hf"] = min(best["hf"], time.perf_counter() - start)
        start = time.perf_counter()
        mine = ours.generate(prompt, NEW, temperature=0)
        best["gptlib"] = min(best["gptlib"], time.perf_counter() - start)
    identical = mine.tolist() == theirs.tolist()
    print(f"GPT-2 124M, random weights, greedy, prompt {PROMPT}, {NEW} new tokens, best of {args.repeats}:")
    print(f"  Hugging Face generate: {best['hf']:.2f} s   gptlib generate: {best['gptlib']:.2f} s")
    print(f"  gptlib is {best['hf'] / best['gptlib']:.2f}x as fast (goal >= 1.5x); identical tokens: {identical}")
    if not identical:
        raise SystemExit("the tokens differ")
    floor = weight_read_floor(ours)
    mib = sum(m.weight.numel() * 4 for m in ours.modules() if isinstance(m, torch.nn.Linear)) / 2**20
    print(
        f"  reading the {mib:.0f} MiB of Linear weights once (one token through every Linear): {1e3 * floor:.1f} ms, "
        f"{mib / 1024 / floor:.1f} GiB/s"
    )
    print(
        f"  per new token: Hugging Face {1e3 * best['hf'] / NEW:.1f} ms, gptlib {1e3 * best['gptlib'] / NEW:.1f} ms; "
        f"at that floor a ratio above {best['hf'] / (NEW * floor):.2f}x is out of reach"
    )
    for way in ("cache", "nocache", "hf"):
        out = subprocess.run([sys.executable, __file__, "--memory-of", way], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        label = {"cache": "gptlib, KV cache", "nocache": "gptlib, no cache", "hf": "Hugging Face"}[way]
        print(f"  peak memory added by one generation, {label}: {row['peak_growth_mib']:.1f} MiB")


if __name__ == "__main__":
    main()
