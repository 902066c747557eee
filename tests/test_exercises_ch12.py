"""Chapter 12's formulas agree with direct counts, and its checkers accept right answers
and name typical wrong ones. The wrong answers are written here as a reader would write
them, independently of the checkers' own list of mistakes."""

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
    assert counter.get_total_flops() == ch12.generation_flops(config, prompt_len, n_new, kv_cache)


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


def training_forward_only(config, T):
    C = config.n_embd
    flops = 0
    for _ in range(config.n_layer):
        flops += 2 * (3 * C * C + C * C + 4 * C * C + 4 * C * C)  # c_attn, c_proj, c_fc, c_proj
        flops += 2 * T * C + 2 * T * C  # one query against T keys, T values mixed
    return flops + 2 * C * config.vocab_size  # lm_head


def training_two_flops_per_weight(config, T):
    with torch.device("meta"):
        model = GPT(config)
    return 2 * sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def linear_shapes(config):
    C = config.n_embd
    per_block = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)]
    return per_block * config.n_layer + [(C, config.vocab_size)]


def training_without_attention(config, T):
    return 3 * sum(2 * n_in * n_out for n_in, n_out in linear_shapes(config))


def training_attention_forward_only(config, T):
    weights = 3 * sum(2 * n_in * n_out for n_in, n_out in linear_shapes(config))
    return weights + config.n_layer * 2 * 2 * T * config.n_embd


def training_causal_half(config, T):
    attention = 12 * config.n_layer * T * config.n_embd // 2  # the mask hides half the matrix
    return 6 * N(config) + attention


def training_causal_triangle(config, T):
    keys_per_token = (T + 1) / 2  # token t meets t + 1 keys: 1, 2, ..., T
    return 6 * N(config) + 3 * 2 * 2 * config.n_layer * keys_per_token * config.n_embd


def training_attention_per_sequence(config, T):
    attention = 3 * 2 * 2 * config.n_layer * (T * T) * config.n_embd  # T queries, T keys each
    return 6 * N(config) + attention


def training_without_lm_head(config, T):
    C = config.n_embd
    per_block = 6 * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + 12 * T * C
    return sum(per_block for _ in range(config.n_layer))


def training_wte_and_lm_head(config, T):
    C, V = config.n_embd, config.vocab_size
    blocks = 12 * config.n_layer * C * C
    return 6 * (blocks + V * C + C * V) + 12 * config.n_layer * T * C  # wte, then lm_head


def training_every_matrix(config, T):
    with torch.device("meta"):
        model = GPT(config)
    matrices = sum(p.numel() for p in model.parameters() if p.dim() == 2)  # wte (= lm_head), wpe, blocks
    return 6 * matrices + 12 * config.n_layer * T * config.n_embd


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (training_forward_only, "the forward pass alone. The backward pass"),
        (training_two_flops_per_weight, "the forward pass alone, and without attention"),
        (training_without_attention, "you left out attention"),
        (training_attention_forward_only, "have a backward pass too"),
        (training_causal_half, "the causal mask allows"),
        (training_causal_triangle, "the causal mask allows"),
        (training_attention_per_sequence, "for the whole sequence"),
        (training_without_lm_head, "lm_head is missing"),
        (training_wte_and_lm_head, "counted the token matrix twice"),
        (training_every_matrix, "wpe is a lookup table"),
    ],
    ids=[
        "forward-only",
        "2N",
        "no-attention",
        "attention-once",
        "causal-half",
        "causal-triangle",
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


def cache_of_keys_only(config, T, bytes_per_float=4):
    return sum(T * config.n_embd for _ in range(config.n_layer)) * bytes_per_float


def cache_of_one_layer(config, T, bytes_per_float=4):
    k = torch.empty(1, config.n_head, T, config.head_size, device="meta")  # (B, nh, T, hs)
    return (k.numel() + k.numel()) * bytes_per_float


def cache_of_one_head(config, T, bytes_per_float=4):
    per_layer = 2 * torch.empty(T, config.head_size, device="meta").numel()  # k and v, (T, head_size)
    return config.n_layer * per_layer * bytes_per_float


def cache_refilled_every_step(config, T, bytes_per_float=4):
    return sum(2 * config.n_layer * T * config.n_embd * bytes_per_float for _ in range(T))


def cache_of_attention_weights(config, T, bytes_per_float=4):
    return torch.empty(config.n_layer, config.n_head, T, T, device="meta").numel() * bytes_per_float


def cache_in_numbers(config, T, bytes_per_float=4):
    return 2 * config.n_embd * T * config.n_layer


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (cache_of_keys_only, "keys AND values"),
        (cache_of_one_layer, "that is one layer"),
        (cache_of_one_head, "that is one head"),
        (cache_refilled_every_step, "grows linearly with T"),
        (cache_of_attention_weights, "the size of the attention matrices"),
        (cache_in_numbers, "numbers, not bytes"),
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


def lm_head(config):
    return 2 * config.n_embd * config.vocab_size


def pass_flops(config, fed, T, attention=True):
    """FLOPs of one forward pass that feeds `fed` positions, each meeting T keys, with
    logits for the last position only."""
    per_token = 2 * N(config) + (4 * config.n_layer * T * config.n_embd if attention else 0)
    return fed * per_token - (fed - 1) * lm_head(config)


def test_generation_closed_form_is_accepted():
    def closed_form(c, p, n, kv):
        L, C, n2, head = c.n_layer, c.n_embd, 2 * (N(c) - c.n_embd * c.vocab_size), lm_head(c)
        Ts = range(p, p + n)
        if not kv:
            return sum(T * n2 + 4 * L * C * T * T + head for T in Ts)
        return p * n2 + 4 * L * C * p * p + head + sum(n2 + head + 4 * L * C * T for T in Ts[1:])

    assert ch12.check_generation_flops(closed_form).startswith("correct")


def generation_logits_everywhere(config, prompt_len, n_new, kv_cache):
    total = 0
    for s in range(n_new):
        T = prompt_len + s
        per_token = 2 * N(config) + 4 * config.n_layer * T * config.n_embd
        total += per_token if (kv_cache and s > 0) else T * per_token  # lm_head at all T positions
    return total


def generation_one_token_too_many(config, prompt_len, n_new, kv_cache):
    total = 0
    for s in range(1, n_new + 1):
        T = prompt_len + s  # counts the token being generated as already in the context
        total += pass_flops(config, 1 if (kv_cache and s > 1) else T, T)
    return total


def generation_prompt_fed_as_one_token(config, prompt_len, n_new, kv_cache):
    total = 0
    for T in range(prompt_len, prompt_len + n_new):
        total += pass_flops(config, 1 if kv_cache else T, T)  # even the first step feeds one token
    return total


def generation_cache_ignored(config, prompt_len, n_new, kv_cache):
    return sum(pass_flops(config, T, T) for T in range(prompt_len, prompt_len + n_new))


def generation_weights_only(config, prompt_len, n_new, kv_cache):
    fed = [prompt_len] + [1 if kv_cache else prompt_len + s for s in range(1, n_new)]
    return sum(pass_flops(config, f, 0, attention=False) for f in fed)


def generation_weights_only_one_token_each(config, prompt_len, n_new, kv_cache):
    return sum(pass_flops(config, 1 if kv_cache else prompt_len + s, 0, attention=False) for s in range(n_new))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (generation_logits_everywhere, "lm_head is counted at every position"),
        (generation_one_token_too_many, "one token too many in every context"),
        (generation_prompt_fed_as_one_token, "the first step still runs on the whole prompt"),
        (generation_cache_ignored, "every step after the first feeds only the newest token"),
        (generation_weights_only, "attention is missing. A token"),
        (generation_weights_only_one_token_each, "attention is missing, and with the cache"),
    ],
    ids=[
        "logits-everywhere",
        "off-by-one",
        "prompt-as-one-token",
        "cache-unused",
        "no-attention",
        "no-attention-no-prompt",
    ],
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
