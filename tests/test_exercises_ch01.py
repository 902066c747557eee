import pytest
import torch

from gptlib.exercises import ExerciseError, ch01


def test_reference_solutions_are_accepted():
    assert ch01.check_make_windows(ch01.make_windows).startswith("correct")
    assert ch01.check_tokens_per_word(ch01.tokens_per_word).startswith("correct")
    assert ch01.check_num_offsets(ch01.num_offsets).startswith("correct")


def test_make_windows_shapes_and_shift():
    data = torch.arange(100)
    x, y = ch01.make_windows(data, [0, 10, 87], 12)
    assert x.shape == y.shape == (3, 12)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y, x + 1)


def test_unshifted_targets_get_their_hint():
    def unshifted(data, offsets, block_size):
        xs, ys = [], []
        for i in offsets:
            xs.append(data[i : i + block_size])
            ys.append(data[i : i + block_size])  # the same slice: no shift
        return torch.stack(xs), torch.stack(ys)

    with pytest.raises(ExerciseError, match="your targets are the inputs themselves"):
        ch01.check_make_windows(unshifted)


def test_targets_shifted_the_wrong_way_get_their_hint():
    def backwards(data, offsets, block_size):
        rows = torch.tensor(offsets).unsqueeze(1) + torch.arange(block_size)  # (B, T) indices into data
        return data[rows], data[rows - 1]  # one token back instead of one ahead

    with pytest.raises(ExerciseError, match="shifted the wrong way"):
        ch01.check_make_windows(backwards)


def test_swapped_windows_get_their_hint():
    def swapped(data, offsets, block_size):
        windows = data.unfold(0, block_size + 1, 1)[offsets]  # (B, T + 1): every window of T + 1 tokens
        return windows[:, 1:], windows[:, :-1]

    with pytest.raises(ExerciseError, match="x and y are swapped"):
        ch01.check_make_windows(swapped)


def test_windows_one_token_too_short_are_reported_with_shapes():
    def too_short(data, offsets, T):
        return ch01.make_windows(data, offsets, T - 1)

    with pytest.raises(ExerciseError, match=r"expected a tuple of 2: a tensor of shape \[3, 8\]"):
        ch01.check_make_windows(too_short)


def test_tokens_per_word_values():
    assert ch01.tokens_per_word("One model reads the whole sequence at once.") == 9 / 8
    hindi = ch01.tokens_per_word("एक मॉडल पूरे अनुक्रम को एक साथ पढ़ता है।")
    assert hindi > 4 * 9 / 8


def test_counting_characters_gets_its_hint():
    def characters(text):
        n_chars = sum(1 for _ in text)
        return n_chars / len(text.split())

    with pytest.raises(ExerciseError, match="that counts characters per word"):
        ch01.check_tokens_per_word(characters)


def test_average_word_length_gets_the_characters_hint():
    def word_length(text):
        words = text.split()
        return sum(map(len, words)) / len(words)

    with pytest.raises(ExerciseError, match="that counts characters per word"):
        ch01.check_tokens_per_word(word_length)


def test_counting_bytes_gets_its_hint():
    def byte_level(text):
        n_bytes = len(bytes(text, encoding="utf-8"))  # byte-level BPE starts from the bytes
        return n_bytes / len(text.split())

    with pytest.raises(ExerciseError, match="that counts UTF-8 bytes per word"):
        ch01.check_tokens_per_word(byte_level)


def test_inverted_ratio_gets_its_hint():
    from gptlib import gpt2_tokenizer

    def words_per_token(text):
        n_words = len(text.split(" "))
        n_tokens = len(gpt2_tokenizer().encode_ordinary(text))
        return n_words / n_tokens

    with pytest.raises(ExerciseError, match="the ratio is upside down"):
        ch01.check_tokens_per_word(words_per_token)


def test_num_offsets_counting_one_too_many_gets_its_hint():
    def offsets_up_to_the_end(n_tokens, block_size):
        return len(range(0, n_tokens - block_size + 1))  # offsets whose inputs fit, forgetting the target

    assert ch01.num_offsets(1000, 512) == 488
    with pytest.raises(ExerciseError, match=r"needs block_size \+ 1 tokens"):
        ch01.check_num_offsets(offsets_up_to_the_end)


def test_num_offsets_counting_one_too_few_gets_its_hint():
    def one_short(n_tokens, block_size):
        window = block_size + 1  # inputs plus the last target
        return len(range(n_tokens - window))  # the last start is n_tokens - window, and range stops before it

    with pytest.raises(ExerciseError, match="one offset too few"):
        ch01.check_num_offsets(one_short)


@pytest.mark.parametrize(
    "side_by_side",
    [
        lambda n_tokens, block_size: len(range(0, n_tokens - block_size + 1, block_size)),
        lambda n_tokens, block_size: len(range(0, n_tokens - block_size, block_size)),  # room for the last target
    ],
    ids=["blocks", "blocks-with-target"],
)
def test_num_offsets_without_overlap_gets_its_hint(side_by_side):
    with pytest.raises(ExerciseError, match="windows may overlap"):
        ch01.check_num_offsets(side_by_side)


def test_num_offsets_matches_the_windows_that_fit():
    n, T = 50, 7
    fits = [i for i in range(n) if i + T + 1 <= n]
    assert len(fits) == ch01.num_offsets(n, T)


def test_a_crashing_answer_is_reported():
    with pytest.raises(ExerciseError, match="your function raised ZeroDivisionError"):
        ch01.check_num_offsets(lambda n, T: 1 // 0)


def test_num_offsets_accepts_a_whole_float_and_rejects_a_fraction():
    assert ch01.check_num_offsets(lambda n, T: float(n - T)).startswith("correct")
    with pytest.raises(ExerciseError, match="not a whole number"):
        ch01.check_num_offsets(lambda n, T: n - T + 0.5)


def test_untouched_stubs_are_not_attempted_yet():
    def stub(*args):
        raise NotImplementedError("fill me in")

    for checker in (
        ch01.check_make_windows,
        ch01.check_tokens_per_word,
        ch01.check_num_offsets,
        ch01.check_apply_merges,
    ):
        result = checker(stub)
        assert result.startswith("not attempted yet") and "correct" not in result


# ---------------------------------------------------------------------------
# Exercise 4: apply_merges


def test_apply_merges_reference_matches_gpt2_tokenizer():
    from gptlib import gpt2_tokenizer

    enc = gpt2_tokenizer()
    ranks = ch01.gpt2_merge_ranks()
    assert len(ranks) == 50_000 and ranks[("Ġ", "t")] == 0
    for word in [" tokenization", " banana", " Shakespeare", " thee"]:
        pieces = ch01.apply_merges(tuple(word.replace(" ", "Ġ")), ranks)
        assert [p.replace("Ġ", " ") for p in pieces] == [enc.decode([i]) for i in enc.encode(word)]


def test_apply_merges_solution_is_accepted():
    def mine(pieces, ranks):
        pieces = list(pieces)
        while True:
            candidates = [(ranks[(a, b)], k) for k, (a, b) in enumerate(zip(pieces, pieces[1:])) if (a, b) in ranks]
            if not candidates:
                return tuple(pieces)
            best = min(candidates)[0]
            k = 0
            while k < len(pieces) - 1:  # merge every occurrence of the best pair, left to right
                if ranks.get((pieces[k], pieces[k + 1])) == best:
                    pieces[k : k + 2] = [pieces[k] + pieces[k + 1]]
                k += 1

    assert ch01.check_apply_merges(mine).startswith("correct")


def test_merging_the_leftmost_ranked_pair_gets_its_hint():
    def leftmost(pieces, ranks):
        pieces = list(pieces)
        merged = True
        while merged:
            merged = False
            for k in range(len(pieces) - 1):
                if (pieces[k], pieces[k + 1]) in ranks:
                    pieces[k : k + 2] = [pieces[k] + pieces[k + 1]]
                    merged = True
                    break
        return tuple(pieces)

    with pytest.raises(ExerciseError, match="lowest rank first"):
        ch01.check_apply_merges(leftmost)


def test_merging_the_highest_rank_first_gets_its_hint():
    def highest(pieces, ranks):
        pieces = list(pieces)
        while True:
            found = [(ranks[(a, b)], k) for k, (a, b) in enumerate(zip(pieces, pieces[1:])) if (a, b) in ranks]
            if not found:
                return tuple(pieces)
            _, k = max(found)
            pair = (pieces[k], pieces[k + 1])
            k = 0
            while k < len(pieces) - 1:
                if (pieces[k], pieces[k + 1]) == pair:
                    pieces[k : k + 2] = [pair[0] + pair[1]]
                k += 1

    with pytest.raises(ExerciseError, match="highest rank first"):
        ch01.check_apply_merges(highest)


def test_a_single_merge_gets_its_hint():
    def once(pieces, ranks):
        pieces = list(pieces)
        found = [(ranks[(a, b)], k) for k, (a, b) in enumerate(zip(pieces, pieces[1:])) if (a, b) in ranks]
        _, k = min(found)
        pair = (pieces[k], pieces[k + 1])
        k = 0
        while k < len(pieces) - 1:  # every occurrence of that one pair, then stop
            if (pieces[k], pieces[k + 1]) == pair:
                pieces[k : k + 2] = [pair[0] + pair[1]]
            k += 1
        return tuple(pieces)

    with pytest.raises(ExerciseError, match="stopped after one merge"):
        ch01.check_apply_merges(once)
