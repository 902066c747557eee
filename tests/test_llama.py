"""gptlib's Llama pieces against Hugging Face's ``modeling_llama``, the reference, on copied
random weights; and ``load_llama`` on small random ``LlamaForCausalLM`` checkpoints written
with ``save_pretrained``. Everything offline."""

import json

import pytest
import torch

from .conftest import skip_or_fail

try:
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.models.llama.modeling_llama import (
        LlamaAttention,
        LlamaMLP,
        LlamaRMSNorm,
        LlamaRotaryEmbedding,
        apply_rotary_pos_emb,
    )
except ImportError:  # pragma: no cover - depends on the environment
    skip_or_fail("transformers is not installed: pip install -e '.[test]'")

from gptlib import GPT, GPTConfig  # noqa: E402
from gptlib.attention import CausalSelfAttention, KVCache, StaticKVCache  # noqa: E402
from gptlib.layers import RMSNorm, SwiGLU  # noqa: E402
from gptlib.llama import (  # noqa: E402
    config_from_llama,
    from_llama_state_dict,
    llama_name_map,
    load_llama,
    to_llama_state_dict,
)
from gptlib.rope import apply_rope, meta_to_hf_order, meta_to_hf_rows, rope_angles  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

C, NH, HS = 64, 4, 16  # hidden size, query heads, head size of the small models here


def llama_config(n_kv_head=NH, tie=False, **changes) -> LlamaConfig:
    fields = dict(
        vocab_size=120,
        hidden_size=C,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=NH,
        num_key_value_heads=n_kv_head,
        max_position_embeddings=48,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=tie,
        bos_token_id=None,
        eos_token_id=None,  # generate must not stop early
        pad_token_id=None,
    )
    return LlamaConfig(**{**fields, **changes})


def nudged(module):
    """The module with every weight moved off its initial value (RMSNorm weights start at 1)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return module.eval()


def causal_bias(T: int) -> torch.Tensor:
    """The additive causal mask Hugging Face's attention takes: (1, 1, T, T), -inf above the diagonal."""
    return torch.full((T, T), float("-inf")).triu(1)[None, None]


# -- the pieces, one by one ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rmsnorm_is_hugging_faces_exactly(dtype):
    torch.manual_seed(0)
    theirs = nudged(LlamaRMSNorm(C, eps=1e-6))
    ours = RMSNorm(C, eps=1e-6)
    ours.load_state_dict(theirs.state_dict())  # the same name: weight
    x = (3 * torch.randn(2, 7, C) + 1).to(dtype)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_rotary_angles_and_rotation_match_hugging_face():
    torch.manual_seed(0)
    config = llama_config()
    positions = torch.arange(5, 5 + 11)  # not starting at 0: as after a cache of 5 positions
    q, k = torch.randn(2, NH, 11, HS), torch.randn(2, NH, 11, HS)
    cos_hf, sin_hf = LlamaRotaryEmbedding(config)(q, positions[None])  # (1, T, hs) each
    cos, sin = rope_angles(positions, HS, 500000.0)  # (T, hs) each
    torch.testing.assert_close(cos, cos_hf[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(sin, sin_hf[0], atol=1e-6, rtol=1e-6)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos_hf, sin_hf)
    torch.testing.assert_close(apply_rope(q, cos, sin), q_hf, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(apply_rope(k, cos, sin), k_hf, atol=1e-6, rtol=1e-6)


def test_swiglu_matches_llama_mlp():
    torch.manual_seed(0)
    theirs = nudged(LlamaMLP(llama_config()))
    ours = SwiGLU(C, 96).eval()
    ours.c_gate.weight.data.copy_(theirs.gate_proj.weight)
    ours.c_fc.weight.data.copy_(theirs.up_proj.weight)
    ours.c_proj.weight.data.copy_(theirs.down_proj.weight)
    x = torch.randn(2, 9, C)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])  # multi-head, grouped-query, multi-query
def test_attention_matches_llama_attention(n_kv_head, attn_implementation):
    torch.manual_seed(0)
    config = llama_config(n_kv_head, attn_implementation=attn_implementation)
    theirs = nudged(LlamaAttention(config, layer_idx=0))
    ours = CausalSelfAttention(C, NH, bias=False, n_kv_head=n_kv_head, rope_theta=500000.0).eval()
    q, k, v = theirs.q_proj.weight, theirs.k_proj.weight, theirs.v_proj.weight
    assert q.shape == (NH * HS, C) and k.shape == v.shape == (n_kv_head * HS, C)
    ours.c_attn.weight.data.copy_(torch.cat([q, k, v]))  # ((nh + 2 * nkv) * hs, C)
    ours.c_proj.weight.data.copy_(theirs.o_proj.weight)
    x = torch.randn(2, 13, C)
    position_embeddings = LlamaRotaryEmbedding(config)(x, torch.arange(13)[None])
    with torch.no_grad():
        expected, _ = theirs(x, position_embeddings=position_embeddings, attention_mask=causal_bias(13))
        for fast in (True, False):
            ours.fast = fast
            torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


# -- the whole model, from a save_pretrained folder -----------------------------------------------
CASES = {"mha-untied": (4, False), "gqa-untied": (2, False), "gqa-tied": (2, True), "mqa-tied": (1, True)}


@pytest.fixture(scope="module", params=list(CASES))
def pair(request, tmp_path_factory):
    """(Hugging Face's LlamaForCausalLM, gptlib's GPT loaded from its save_pretrained folder)."""
    n_kv_head, tie = CASES[request.param]
    torch.manual_seed(0)
    hf = nudged(LlamaForCausalLM(llama_config(n_kv_head, tie)))
    folder = tmp_path_factory.mktemp("llama") / request.param
    hf.save_pretrained(folder)
    return hf, load_llama(folder)


def test_the_config_is_read(pair):
    hf, ours = pair
    c = ours.config
    assert (c.position, c.norm, c.mlp, c.bias, c.dropout) == ("rope", "rmsnorm", "swiglu", False, 0.0)
    assert (c.n_embd, c.n_head, c.n_layer, c.vocab_size, c.block_size) == (C, NH, 2, 120, 48)
    assert (c.kv_heads, c.tie_embeddings) == (hf.config.num_key_value_heads, hf.config.tie_word_embeddings)
    assert (c.mlp_width, c.norm_eps, c.rope_theta) == (96, 1e-5, 500000.0)
    assert not ours.training
    assert (ours.lm_head.weight is ours.transformer.wte.weight) == c.tie_embeddings


def test_parameter_count_and_breakdown_match_hugging_face(pair):
    hf, ours = pair
    assert ours.num_parameters() == hf.num_parameters() == sum(ours.parameter_breakdown().values())
    assert ("lm_head (output embeddings, not tied to wte)" in ours.parameter_breakdown()) != ours.config.tie_embeddings


def test_logits_equal(pair):
    hf, ours = pair
    torch.manual_seed(1)
    idx = torch.randint(0, 120, (3, 48))  # the whole context
    with torch.no_grad():
        expected = hf(idx).logits
    logits, _ = ours(idx)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_twenty_greedy_tokens_identical_with_and_without_the_cache_and_to_hugging_face(pair):
    hf, ours = pair
    torch.manual_seed(2)
    idx = torch.randint(0, 120, (2, 6))
    cached = ours.generate(idx, 20, temperature=0, kv_cache=True)
    plain = ours.generate(idx, 20, temperature=0, kv_cache=False)
    expected = hf.generate(idx, max_new_tokens=20, do_sample=False, attention_mask=torch.ones_like(idx))
    assert torch.equal(cached, plain)
    assert torch.equal(cached, expected)


def test_cache_step_by_step_gives_the_full_pass_logits(pair):
    _, ours = pair
    idx = torch.randint(0, 120, (2, 20))
    full, _ = ours(idx)
    cache = KVCache(2)
    pieces = [ours(idx[:, :9], kv_cache=cache)[0]] + [ours(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(9, 20)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.layers[0].k.shape == (2, ours.config.kv_heads, 20, HS)  # nkv heads cached, keys already turned


def test_generation_past_block_size_is_the_same_with_and_without_the_cache(pair):
    _, ours = pair
    idx = torch.randint(0, 120, (2, 40))  # 8 short of block_size 48: the window slides after 8 new tokens
    for kwargs in (dict(temperature=0), dict(temperature=0.9, top_k=20)):
        a = ours.generate(idx, 16, kv_cache=True, generator=torch.Generator().manual_seed(7), **kwargs)
        b = ours.generate(idx, 16, kv_cache=False, generator=torch.Generator().manual_seed(7), **kwargs)
        assert torch.equal(a, b), kwargs


# -- the name map ----------------------------------------------------------------------------------
def test_every_llama_tensor_is_consumed_exactly_once(pair):
    hf, ours = pair
    names = llama_name_map(ours.config)
    hf_state = hf.state_dict()  # lm_head.weight is listed even when tied
    assert list(names) == list(dict.fromkeys(names)) and set(names) == set(hf_state)
    assert set(names.values()) == set(ours.state_dict())
    for name, tensor in ours.state_dict().items():  # the Llama tensors of each gptlib tensor fill it exactly
        parts = [hf_state[n] for n, target in names.items() if target == name]
        rows = sum(p.shape[0] for p in parts) if len(parts) > 1 else parts[0].shape[0]
        assert rows == tensor.shape[0], name
    back = to_llama_state_dict(ours)
    skipped = {"lm_head.weight"} if ours.config.tie_embeddings else set()
    assert set(back) == set(hf_state) - skipped
    assert all(torch.equal(back[n], hf_state[n]) for n in back)  # the map is a bijection, rows included


def test_a_tensor_outside_the_map_or_a_missing_one_is_named(pair):
    hf, ours = pair
    state = dict(hf.state_dict())
    state["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(C)
    del state["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(ValueError, match=r"2 problem\(s\)") as e:
        from_llama_state_dict(state, ours.config)
    assert "missing: model.layers.1.mlp.up_proj.weight" in str(e.value)
    assert "unexpected: model.layers.0.self_attn.q_proj.bias [64]" in str(e.value)


def test_older_checkpoints_rotary_buffers_are_ignored(pair):
    hf, ours = pair
    state = {**hf.state_dict(), "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(HS // 2)}
    assert set(from_llama_state_dict(state, ours.config)) == set(ours.state_dict())


def test_sharded_and_bfloat16_checkpoints(tmp_path):
    torch.manual_seed(0)
    hf = nudged(LlamaForCausalLM(llama_config(2)))
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ours = load_llama(tmp_path / "sharded")
    assert all(torch.equal(to_llama_state_dict(ours)[n], t) for n, t in hf.state_dict().items())
    hf.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    ours = load_llama(tmp_path / "bf16")  # copied into float32 parameters
    assert ours.transformer.wte.weight.dtype == torch.float32
    assert torch.equal(ours.transformer.wte.weight, hf.model.embed_tokens.weight.float())


# -- properties ------------------------------------------------------------------------------------
def test_rope_scores_depend_only_on_the_offset_between_positions():
    torch.manual_seed(0)
    q, k = torch.randn(1, NH, 12, HS), torch.randn(1, NH, 12, HS)

    def scores(start):
        cos, sin = rope_angles(torch.arange(start, start + 12), HS)
        return apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-2, -1)  # (1, nh, T, T)

    # Float32 angles (pos * frequency) round at about 1e-5 rad for positions near 40.
    torch.testing.assert_close(scores(0), scores(29), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(scores(0), q @ k.transpose(-2, -1), atol=0.1)  # the rotation does something


def test_metas_interleaved_convention_is_hugging_faces_with_permuted_rows():
    """Meta's Llama turns adjacent pairs (2i, 2i + 1) as complex numbers; Hugging Face's the pairs
    (i, i + hs/2). The same weights with each head's rows put in meta_to_hf_order give the same scores."""
    torch.manual_seed(0)
    T, theta = 10, 10000.0
    x = torch.randn(T, C)
    wq_meta, wk_meta = torch.randn(NH * HS, C), torch.randn(NH * HS, C)

    def meta_rope(t):  # (T, nh, hs) -> turned, Meta's way (llama/model.py, apply_rotary_emb)
        freqs = 1.0 / (theta ** (torch.arange(0, HS, 2)[: HS // 2].float() / HS))
        angles = torch.polar(torch.ones(T, HS // 2), torch.outer(torch.arange(T).float(), freqs))  # (T, hs/2)
        z = torch.view_as_complex(t.float().reshape(T, NH, HS // 2, 2)) * angles[:, None]
        return torch.view_as_real(z).flatten(2)

    q_meta, k_meta = meta_rope((x @ wq_meta.T).view(T, NH, HS)), meta_rope((x @ wk_meta.T).view(T, NH, HS))
    scores_meta = torch.einsum("qhd,khd->hqk", q_meta, k_meta)
    cos, sin = rope_angles(torch.arange(T), HS, theta)
    wq, wk = meta_to_hf_rows(wq_meta, NH), meta_to_hf_rows(wk_meta, NH)
    q = apply_rope((x @ wq.T).view(T, NH, HS).transpose(0, 1), cos, sin)  # (nh, T, hs)
    k = apply_rope((x @ wk.T).view(T, NH, HS).transpose(0, 1), cos, sin)
    torch.testing.assert_close(q @ k.transpose(-2, -1), scores_meta, atol=1e-4, rtol=1e-5)
    # the permutation of transformers' convert_llama_weights_to_hf.py
    converted = wq_meta.view(NH, HS // 2, 2, C).transpose(1, 2).reshape(NH * HS, C)
    assert torch.equal(wq, converted)
    assert meta_to_hf_order(8).tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def gpt2_small_shape(n_kv_head) -> GPTConfig:
    """GPT-2 small's attention (12 layers, 12 heads of 64, 512 positions) with Llama's options;
    a small vocabulary and MLP, which the cache does not depend on, keep the test fast."""
    return GPTConfig(
        vocab_size=64,
        block_size=512,
        n_kv_head=n_kv_head,
        position="rope",
        norm="rmsnorm",
        mlp="swiglu",
        mlp_hidden=8,
        bias=False,
    )


def test_the_cache_shrinks_by_n_head_over_n_kv_head():
    sizes = {}
    idx = torch.zeros(1, 512, dtype=torch.long)
    for n_kv_head in (12, 4, 1):
        torch.manual_seed(0)
        model = GPT(gpt2_small_shape(n_kv_head)).eval()
        cache = KVCache(12)
        with torch.no_grad():
            model(idx, kv_cache=cache, last_only=True)  # 512 positions cached
        sizes[n_kv_head] = cache.nbytes
        assert cache.nbytes == 2 * 12 * 1 * n_kv_head * 512 * 64 * 4  # k and v, layers, B, nkv, T, hs, float32
    assert sizes == {12: 37_748_736, 4: 12_582_912, 1: 3_145_728}
    assert sizes[4] * 3 == sizes[12] and sizes[1] * 12 == sizes[12]
    gpt2 = GPT(GPTConfig(vocab_size=64, block_size=512, mlp_hidden=8)).eval()  # GPT-2's own attention
    cache = KVCache(12)
    with torch.no_grad():
        gpt2(idx, kv_cache=cache, last_only=True)
    assert cache.nbytes == sizes[12]


def test_the_static_cache_of_generate_holds_n_kv_head_heads():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", position="rope", n_kv_head=2)).eval()
    cache = StaticKVCache.for_model(model)
    model(torch.zeros(3, 5, dtype=torch.long), kv_cache=cache)
    assert cache.layers[0].k_buffer.shape == (3, 2, 32, 16)
    assert cache.nbytes == 2 * 2 * 3 * 2 * 32 * 16 * 4  # k and v, layers, B, nkv, capacity, hs, float32


# -- clear errors -----------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    LlamaForCausalLM(llama_config(2)).save_pretrained(tmp_path)
    return tmp_path


def rewrite_config(folder, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_folder_without_config_json(saved):
    (saved / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no config.json in .* \(it holds generation_config.json, model.safe"):
        load_llama(saved)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_llama(saved / "nothing-here")


def test_a_folder_without_safetensors_weights(saved):
    (saved / "model.safetensors").rename(saved / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin would need unpickling, which gptlib never does"):
        load_llama(saved)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(model_type="gpt2"), "config.json says model_type 'gpt2'; load_llama reads Llama checkpoints"),
        (dict(rope_parameters={"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}), "rope_parameters=.*llama3"),
        (dict(rope_scaling={"type": "linear", "factor": 2.0}), "rope_scaling=.*linear"),
        (dict(attention_bias=True), "attention_bias=True"),
        (dict(mlp_bias=True), "mlp_bias=True"),
        (dict(hidden_act="gelu"), r"hidden_act='gelu' \(gptlib models 'silu'\)"),
        (dict(head_dim=32), r"head_dim=32 \(gptlib's heads have hidden_size // num_attention_heads"),
        (dict(num_key_value_heads=3), "n_head=4 is not divisible by n_kv_head=3"),
    ],
)
def test_what_gptlib_does_not_model_is_named(saved, changes, message):
    rewrite_config(saved, **changes)
    with pytest.raises(ValueError, match=message):
        load_llama(saved)


def test_a_missing_field_and_a_config_that_is_not_json(saved):
    config = json.loads((saved / "config.json").read_text())
    del config["intermediate_size"]
    with pytest.raises(ValueError, match="the Llama config is missing the field 'intermediate_size'"):
        config_from_llama(config)
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        load_llama(saved)


def test_transformers_4_configs_rope_theta_is_read():
    config = llama_config().to_dict()
    del config["rope_parameters"]
    config.update(rope_theta=123456.0, rope_scaling=None)  # how transformers 4 wrote it
    assert config_from_llama(config).rope_theta == 123456.0


def test_weights_that_do_not_fit_the_config_are_named(saved):
    rewrite_config(saved, num_hidden_layers=3)
    with pytest.raises(ValueError, match=r"missing: model.layers.2.input_layernorm.weight"):
        load_llama(saved)


def test_tied_embeddings_with_a_different_lm_head_are_refused():
    torch.manual_seed(0)
    hf_state = LlamaForCausalLM(llama_config(2)).state_dict()  # untied: two different matrices
    config = config_from_llama(llama_config(2, tie=True).to_dict())
    with pytest.raises(ValueError, match="lm_head.weight differs from model.embed_tokens.weight"):
        from_llama_state_dict(hf_state, config)
