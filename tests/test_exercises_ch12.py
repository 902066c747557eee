import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gptlib import GPT, GPTConfig
from gptlib.attention import KVCache
from gptlib.exercises import ExerciseError, ch12


def written_out(model):
    for block in model.transformer.h:
        block.attn.fast = False  # the flop counter sees the attention products only on this path
    return model


# ---------------------------------------------------------------------------
# The formulas agree with direct counts.


def test_matmul_params_counts_the_linear_weights_lm_head_included():
    for name in ("gpt2-512", "gpt2", "tiny", "shakespeare-char"):
        config = GPTConfig.from_preset(name)
        with torch.device("meta"):
            model = GPT(config)
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        assert ch12.matmul_params(config) == sum(m.weight.numel() for m in linears)
    assert ch12.matmul_params(GPTConfig.from_preset("gpt2-512")) == 123_532_032


@pytest.mark.parametrize("name, T", [("gpt2-512", 512), ("gpt2", 1024), ("tiny", 32)])
def test_training_flops_match_the_flop_counter(name, T):
    config = GPTConfig.from_preset(name)
    with torch.device("meta"):
        model = written_out(GPT(config))
    idx = torch.zeros(1, T, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    assert counter.get_total_flops() == T * ch12.training_flops_per_token(config, T)


def test_training_flops_of_the_running_example():
    assert ch12.training_flops_per_token(GPTConfig.from_preset("gpt2-512"), 512) == 797_815_296
    assert ch12.training_flops_per_token(GPTConfig.from_preset("gpt2"), 1024) == 854_438_400


@pytest.mark.parametrize("prompt_len, n_new", [(4, 10), (1, 32), (5, 1)])
@pytest.mark.parametrize("kv_cache", [False, True])
def test_generation_flops_match_the_flop_counter_on_a_real_model(prompt_len, n_new, kv_cache):
    config = GPTConfig.from_preset("tiny")
    torch.manual_seed(0)
    model = written_out(GPT(config).eval())
    prompt = torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        out = model.generate(prompt, n_new, temperature=0, kv_cache=kv_cache)
    assert out.shape == (1, prompt_len + n_new)
    saved = lm_head_flops_skipped(config, prompt_len, n_new, kv_cache)
    assert counter.get_total_flops() == ch12.generation_flops(config, prompt_len, n_new, kv_cache) - saved


def lm_head_flops_skipped(config, prompt_len, n_new, kv_cache):
    """The chapter's formula counts logits at every position a forward pass reads; gptlib's
    generate computes them for the last position only (the one it samples), so each
    forward over T tokens skips lm_head (2 * V * C FLOPs a position) on T - 1 of them."""
    skipped = 0
    for s in range(n_new):
        T = 1 if (kv_cache and s > 0) else prompt_len + s
        skipped += 2 * config.vocab_size * config.n_embd * (T - 1)
    return skipped


def test_kv_cache_bytes_match_a_filled_cache():
    for name, T in (("gpt2-512", 512), ("gpt2", 1024), ("tiny", 7)):
        config = GPTConfig.from_preset(name)
        with torch.device("meta"):
            model = GPT(config)
        cache = KVCache(config.n_layer)
        with torch.no_grad():
            model(torch.zeros(1, T, dtype=torch.long, device="meta"), kv_cache=cache)
        measured = sum(layer.k.nbytes + layer.v.nbytes for layer in cache.layers)
        assert measured == ch12.kv_cache_bytes(config, T, 4)
    assert ch12.kv_cache_bytes(GPTConfig.from_preset("gpt2-512"), 512) == 37_748_736 == 36 * 2**20


# ---------------------------------------------------------------------------
# Exercise 1: training_flops_per_token


def N(c):
    return 12 * c.n_layer * c.n_embd**2 + c.n_embd * c.vocab_size


def test_training_reference_and_whole_floats_are_accepted():
    assert ch12.check_training_flops_per_token(ch12.training_flops_per_token).startswith("correct")
    assert ch12.check_training_flops_per_token(lambda c, T: float(6 * N(c) + 12 * c.n_layer * T * c.n_embd)).startswith(
        "correct"
    )


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda c, T: 2 * N(c) + 4 * c.n_layer * T * c.n_embd, "the forward pass alone. The backward pass"),
        (lambda c, T: 2 * N(c), "the forward pass alone, and without attention"),
        (lambda c, T: 6 * N(c), "you left out attention"),
        (lambda c, T: 6 * N(c) + 4 * c.n_layer * T * c.n_embd, "have a backward pass too"),
        (lambda c, T: 6 * N(c) + 6 * c.n_layer * T * c.n_embd, "the causal mask allows"),
        (lambda c, T: 6 * N(c) + 12 * c.n_layer * T * T * c.n_embd, "for the whole sequence"),
        (lambda c, T: 6 * 12 * c.n_layer * c.n_embd**2 + 12 * c.n_layer * T * c.n_embd, "lm_head is missing"),
        (
            lambda c, T: 6 * (N(c) + c.vocab_size * c.n_embd) + 12 * c.n_layer * T * c.n_embd,
            "counted the token matrix twice",
        ),
        (lambda c, T: 6 * (N(c) + c.block_size * c.n_embd) + 12 * c.n_layer * T * c.n_embd, "wpe is a lookup table"),
    ],
    ids=[
        "forward-only",
        "2N",
        "no-attention",
        "attention-once",
        "causal-half",
        "per-sequence",
        "no-lm_head",
        "wte-twice",
        "with-wpe",
    ],
)
def test_training_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch12.check_training_flops_per_token(wrong)


def test_training_unknown_mistake_and_crash_fail_clearly():
    with pytest.raises(ExerciseError, match=r"expected 797815296, got 0; values differ \(input 1\)"):
        ch12.check_training_flops_per_token(lambda c, T: 0)
    with pytest.raises(ExerciseError, match="your function raised ZeroDivisionError"):
        ch12.check_training_flops_per_token(lambda c, T: 1 // 0)
    with pytest.raises(ExerciseError, match="not a whole number"):
        ch12.check_training_flops_per_token(lambda c, T: 0.5)


# ---------------------------------------------------------------------------
# Exercise 2: kv_cache_bytes


def test_kv_cache_reference_is_accepted():
    assert ch12.check_kv_cache_bytes(ch12.kv_cache_bytes).startswith("correct")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda c, T, b: c.n_layer * T * c.n_embd * b, "keys AND values"),
        (lambda c, T, b: 2 * T * c.n_embd * b, "that is one layer"),
        (lambda c, T, b: 2 * c.n_layer * T * c.head_size * b, "that is one head"),
        (lambda c, T, b: 2 * c.n_layer * T * T * c.n_embd * b, "grows linearly with T"),
        (lambda c, T, b: c.n_layer * c.n_head * T * T * b, "the size of the attention matrices"),
        (lambda c, T, b: 2 * c.n_layer * T * c.n_embd, "numbers, not bytes"),
    ],
    ids=["no-2", "one-layer", "one-head", "quadratic", "attention-matrix", "no-bytes"],
)
def test_kv_cache_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch12.check_kv_cache_bytes(wrong)


def test_kv_cache_unknown_mistake_fails_clearly():
    with pytest.raises(ExerciseError, match=r"expected 37748736, got 1; values differ \(input 1\)"):
        ch12.check_kv_cache_bytes(lambda c, T, b: 1)


# ---------------------------------------------------------------------------
# Exercise 3: generation_flops


def test_generation_reference_is_accepted():
    assert ch12.check_generation_flops(ch12.generation_flops).startswith("correct")


def test_generation_closed_form_is_accepted():
    def closed_form(c, p, n, kv):
        L, C, n2 = c.n_layer, c.n_embd, 2 * N(c)
        Ts = range(p, p + n)
        if not kv:
            return sum(T * n2 + 4 * L * C * T * T for T in Ts)
        return p * n2 + 4 * L * C * p * p + sum(n2 + 4 * L * C * T for T in Ts[1:])

    assert ch12.check_generation_flops(closed_form).startswith("correct")


def _weights_and_attention(c, T, attention=True):
    "Forward FLOPs of one token that meets T keys (attention=False: the weights only)."
    return 2 * N(c) + (4 * c.n_layer * T * c.n_embd if attention else 0)


def off_by_one(c, p, n, kv):  # every context one token too long
    steps = [(p + 1 + s, s) for s in range(n)]
    return sum(_weights_and_attention(c, T) * (1 if kv and s > 0 else T) for T, s in steps)


def prompt_as_one_token(c, p, n, kv):  # with the cache, even the prompt is fed as one token
    return sum(_weights_and_attention(c, p + s) * (1 if kv else p + s) for s in range(n))


def cache_unused(c, p, n, kv):  # the cache changes nothing
    return sum((p + s) * _weights_and_attention(c, p + s) for s in range(n))


def no_attention(c, p, n, kv):  # 2N per token, whatever the context
    return sum(2 * N(c) * (1 if kv and s > 0 else p + s) for s in range(n))


def no_attention_no_prompt(c, p, n, kv):
    return sum(2 * N(c) * (1 if kv else p + s) for s in range(n))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (off_by_one, "one token too many in every context"),
        (prompt_as_one_token, "the first step still runs on the whole prompt"),
        (cache_unused, "every step after the first feeds only the newest token"),
        (no_attention, "attention is missing. A token"),
        (no_attention_no_prompt, "attention is missing, and with the cache"),
    ],
    ids=["off-by-one", "prompt-as-one-token", "cache-unused", "no-attention", "no-attention-no-prompt"],
)
def test_generation_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch12.check_generation_flops(wrong)


def test_generation_flops_grow_quadratically_without_the_cache():
    config = GPTConfig(vocab_size=78, block_size=512, n_layer=6, n_head=6, n_embd=384)
    plain = [ch12.generation_flops(config, 8, n, False) for n in (100, 200, 400)]
    cached = [ch12.generation_flops(config, 8, n, True) for n in (100, 200, 400)]
    assert plain[2] / plain[1] > 3 and plain[1] / plain[0] > 3
    assert cached[2] / cached[1] < 2.5 and cached[1] / cached[0] < 2.5


# ---------------------------------------------------------------------------
# The notebook's untouched stubs: "not attempted yet", never correct.


def _stub(*args):
    raise NotImplementedError("fill me in")


@pytest.mark.parametrize(
    "checker",
    [ch12.check_training_flops_per_token, ch12.check_kv_cache_bytes, ch12.check_generation_flops],
    ids=["training_flops_per_token", "kv_cache_bytes", "generation_flops"],
)
def test_an_untouched_stub_is_not_attempted_yet(checker):
    message = checker(_stub)
    assert message.startswith("not attempted yet") and "fill me in" in message
