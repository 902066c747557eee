"""Chapter 13's checkers accept right answers and name typical wrong ones. The wrong
answers are written here, independently of the checkers' own list of mistakes."""

import copy

import pytest
import torch
import torch.nn.functional as F

from gptlib.exercises import ExerciseError, ch13
from gptlib.pretrained import load_induction_model


def prev_by_loop(patterns):
    L, H, T, _ = patterns.shape
    out = torch.zeros(L, H, dtype=patterns.dtype)
    for t in range(1, T):
        out += patterns[:, :, t, t - 1]
    return out / (T - 1)


def induction_by_loop(patterns, period):
    L, H, T, _ = patterns.shape
    out = torch.zeros(L, H, dtype=patterns.dtype)
    for t in range(period, T):
        out += patterns[:, :, t, t - period + 1]
    return out / (T - period)


def test_previous_token_scores_right_answers():
    assert ch13.check_previous_token_scores(prev_by_loop).startswith("correct")


def test_previous_token_scores_divided_by_T():
    def wrong(patterns):
        T = patterns.shape[-1]
        return sum(patterns[:, :, t, t - 1] for t in range(1, T)) / T

    with pytest.raises(ExerciseError, match="divide by T - 1"):
        ch13.check_previous_token_scores(wrong)


def test_previous_token_scores_next_token_instead():
    def wrong(patterns):
        T = patterns.shape[-1]
        return torch.stack([patterns[:, :, t, t + 1] for t in range(T - 1)], -1).mean(-1)

    with pytest.raises(ExerciseError, match=r"the diagonal above the main one \(entries \[t, t \+ 1\]"):
        ch13.check_previous_token_scores(wrong)


def test_previous_token_scores_self_attention_instead():
    with pytest.raises(ExerciseError, match="main diagonal"):
        ch13.check_previous_token_scores(lambda p: torch.einsum("lhtt->lht", p).mean(-1))


def test_induction_scores_right_answer():
    assert ch13.check_induction_scores(induction_by_loop).startswith("correct")


def test_induction_scores_duplicate_token_instead():
    def wrong(patterns, period):
        T = patterns.shape[-1]
        return torch.stack([patterns[:, :, t, t - period] for t in range(period, T)], -1).mean(-1)

    with pytest.raises(ExerciseError, match="duplicate-token"):
        ch13.check_induction_scores(wrong)


def test_induction_scores_one_row_too_early():
    def wrong(patterns, period):
        T = patterns.shape[-1]
        return torch.stack([patterns[:, :, t, t - period + 1] for t in range(period - 1, T)], -1).mean(-1)

    with pytest.raises(ExerciseError, match="start at t = period"):
        ch13.check_induction_scores(wrong)


def test_untouched_stubs_are_not_attempted():
    def my_previous_token_scores(patterns):
        raise NotImplementedError("average below the diagonal")

    def my_induction_scores(patterns, period):
        raise NotImplementedError("take the diagonal period - 1 below the main one")

    assert ch13.check_previous_token_scores(my_previous_token_scores).startswith("not attempted yet")
    assert ch13.check_induction_scores(my_induction_scores).startswith("not attempted yet")


def test_a_crash_is_reported_as_the_answer():
    with pytest.raises(ExerciseError, match=r"induction_scores: your function raised IndexError: .*\(on input 1\)"):
        ch13.check_induction_scores(lambda patterns, period: patterns[:, :, period + patterns.shape[-1]])


@pytest.fixture(scope="module")
def second_copy_losses():
    """{(layer, head): the induction model's loss on the second copy of repeated random strings
    with that head's output zeroed}, measured here without the checker's code: the head's
    columns of its layer's attention c_proj weight are set to 0 in a copy of the model, and
    the loss is taken on other random strings than the checker's."""
    model, _, data = load_induction_model()
    V, P = model.config.vocab_size, data["probe_period"]
    g = torch.Generator().manual_seed(2024)
    first = torch.randint(V, (24, P), generator=g)
    seqs = torch.cat([first, first], dim=1)  # (24, 2P): P random tokens, then the same P again
    hs = model.config.head_size
    losses = {}
    for layer in range(model.config.n_layer):
        for head in range(model.config.n_head):
            ablated = copy.deepcopy(model)
            with torch.no_grad():
                ablated.transformer.h[layer].attn.c_proj.weight[:, head * hs : (head + 1) * hs] = 0.0
                logits, _ = ablated(seqs)
            # positions P .. 2P - 2 predict tokens P + 1 .. 2P - 1, which repeat tokens 1 .. P - 1
            second = logits[:, P:-1]
            losses[(layer, head)] = F.cross_entropy(second.reshape(-1, V), seqs[:, P + 1 :].reshape(-1)).item()
    return losses


def test_most_needed_head_accepts_the_head_measured_independently(second_copy_losses):
    most = max(second_copy_losses, key=second_copy_losses.get)
    assert ch13.check_most_needed_head(lambda: most).startswith("correct")
    assert ch13.check_most_needed_head(lambda: list(most)).startswith("correct")
    assert ch13.check_most_needed_head(lambda: torch.tensor(most)).startswith("correct")
    n_layer, n_head = (1 + max(k[i] for k in second_copy_losses) for i in (0, 1))
    rises = torch.tensor([[second_copy_losses[(layer, head)] for head in range(n_head)] for layer in range(n_layer)])
    as_unravelled = torch.unravel_index(rises.argmax(), rises.shape)  # a tuple of two 0-d tensors
    assert ch13.check_most_needed_head(lambda: as_unravelled).startswith("correct")


def test_most_needed_head_taking_the_smallest_rise_gets_its_hint(second_copy_losses):
    least = min(second_copy_losses, key=second_copy_losses.get)
    with pytest.raises(ExerciseError, match="take the largest rise, not the smallest"):
        ch13.check_most_needed_head(lambda: least)


def test_most_needed_head_the_best_of_the_other_layer_gets_its_hint(second_copy_losses):
    most = max(second_copy_losses, key=second_copy_losses.get)
    other_layer = {k: v for k, v in second_copy_losses.items() if k[0] != most[0]}
    runner_up = max(other_layer, key=other_layer.get)
    with pytest.raises(ExerciseError, match=f"that head matters.*layer {most[0]} holds a head"):
        ch13.check_most_needed_head(lambda: runner_up)


def test_most_needed_head_written_head_first_gets_its_hint(second_copy_losses):
    layer, head = max(second_copy_losses, key=second_copy_losses.get)
    assert (head, layer) in second_copy_losses and head != layer  # a head the model has, and not the answer
    with pytest.raises(ExerciseError, match=r"if you answered \(head, layer\), swap them"):
        ch13.check_most_needed_head(lambda: (head, layer))


def test_most_needed_head_untouched_stub_is_not_attempted():
    def my_most_needed_head():
        raise NotImplementedError("loop over (layer, head)")

    assert ch13.check_most_needed_head(my_most_needed_head).startswith("not attempted yet")


def head_share_by_hand(model, idx, targets, layer, head, centre=True, own_scale=False, weight=True, var=None):
    """A head's direct share of the target logit, written out here with hooks of its own:
    its slice of c_proj's input times its c_proj columns, centred, divided by the scale of
    the stream that ln_f reads, times ln_f's weight, dotted with the target's unembedding.
    The keywords make the wrong versions the tests feed to the checker."""
    seen = {}
    hs, C = model.config.head_size, model.config.n_embd
    proj = model.transformer.h[layer].attn.c_proj
    hooks = [
        proj.register_forward_pre_hook(lambda m, args: seen.update(heads=args[0])),
        model.transformer.ln_f.register_forward_pre_hook(lambda m, args: seen.update(final=args[0])),
    ]
    with torch.no_grad():
        model(idx)
        for h in hooks:
            h.remove()
        write = seen["heads"][..., head * hs : (head + 1) * hs] @ proj.weight[:, head * hs : (head + 1) * hs].T
        x = write if own_scale else seen["final"]
        variance = var(x) if var is not None else ((x - x.mean(-1, keepdim=True)) ** 2).sum(-1, keepdim=True) / C
        s = (variance + model.transformer.ln_f.eps).sqrt()
        part = write - write.mean(-1, keepdim=True) if centre else write
        part = part / s * (model.transformer.ln_f.weight if weight else 1.0)
        return torch.einsum("btc,btc->bt", part, model.lm_head.weight[targets])


def test_head_logit_share_right_answer():
    assert ch13.check_head_logit_share(head_share_by_hand).startswith("correct: head_logit_share agrees")


def test_head_logit_share_uncentred_write_gets_its_hint():
    def wrong(*case):
        return head_share_by_hand(*case, centre=False)

    with pytest.raises(ExerciseError, match="centre the head's write too"):
        ch13.check_head_logit_share(wrong)


def test_head_logit_share_divided_by_its_own_scale_gets_its_hint():
    def wrong(*case):
        return head_share_by_hand(*case, own_scale=True)

    with pytest.raises(ExerciseError, match="divided the head's write by its own scale"):
        ch13.check_head_logit_share(wrong)


def test_head_logit_share_through_the_whole_ln_f_gets_its_hint():
    def wrong(model, idx, targets, layer, head):
        seen = {}
        hs = model.config.head_size
        proj = model.transformer.h[layer].attn.c_proj
        hook = proj.register_forward_pre_hook(lambda m, args: seen.update(heads=args[0]))
        with torch.no_grad():
            model(idx)
            hook.remove()
            write = seen["heads"][..., head * hs : (head + 1) * hs] @ proj.weight[:, head * hs : (head + 1) * hs].T
            logits = model.lm_head(model.transformer.ln_f(write))  # [B, T, V]
        return logits.gather(-1, targets[..., None])[..., 0]

    with pytest.raises(ExerciseError, match="the bias belongs to no head"):
        ch13.check_head_logit_share(wrong)


def test_head_logit_share_without_ln_f_weight_gets_its_hint():
    def wrong(*case):
        return head_share_by_hand(*case, weight=False)

    with pytest.raises(ExerciseError, match=r"multiplies by its weight \(ln_f.weight\)"):
        ch13.check_head_logit_share(wrong)


def test_head_logit_share_with_the_sample_variance_gets_its_hint():
    def wrong(*case):
        return head_share_by_hand(*case, var=lambda x: x.std(-1, keepdim=True) ** 2)  # torch's default: n - 1

    with pytest.raises(ExerciseError, match="not n_embd - 1"):
        ch13.check_head_logit_share(wrong)


def test_head_logit_share_scale_after_the_heads_layer_gets_its_hint():
    def wrong(model, idx, targets, layer, head):
        seen = {}
        ln_f = model.transformer.ln_f
        hooks = [
            model.transformer.h[layer].register_forward_hook(lambda m, args, out: seen.update(after=out)),
            ln_f.register_forward_pre_hook(lambda m, args: seen.update(final=args[0])),
        ]
        with torch.no_grad():
            model(idx)
        for h in hooks:
            h.remove()
        s_after, s_final = ((seen[k].var(-1, unbiased=False) + ln_f.eps).sqrt() for k in ("after", "final"))
        # the right share, divided by the scale of the stream after the head's layer instead
        return head_share_by_hand(model, idx, targets, layer, head) * s_final / s_after

    with pytest.raises(ExerciseError, match="not of the stream right after the head's own layer"):
        ch13.check_head_logit_share(wrong)


def test_head_logit_share_two_mistakes_get_the_difference_not_a_hint():
    def wrong(*case):
        return head_share_by_hand(*case, centre=False, weight=False)

    with pytest.raises(ExerciseError, match=r"head_logit_share: the shape, \[3, 12\], is right, but the values differ"):
        ch13.check_head_logit_share(wrong)


def test_head_logit_share_untouched_stub_is_not_attempted():
    def my_head_logit_share(model, idx, targets, layer, head):
        raise NotImplementedError

    assert ch13.check_head_logit_share(my_head_logit_share).startswith("not attempted yet")
