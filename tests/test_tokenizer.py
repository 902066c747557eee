import hashlib
import shutil

import pytest
import tiktoken

from gptlib import CharTokenizer, gpt2_tokenizer
from gptlib.tokenizer import bpe_file, load_gpt2_encoding

OFFICIAL_URLS = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}

TEXTS = {
    "english": "Hello world! The quick brown fox jumps over the lazy dog. It's 2026, isn't it?",
    "code": "def forward(self, idx):\n    B, T = idx.shape  # (B, T)\n    return {'x': [1, 2.5e-3]}\n\t\tpass",
    "emoji": "GPT sees bytes 🤖🔥👩\u200d💻 and 🇮🇳 flags",
    "hindi": "मुझे मशीन लर्निंग पसंद है। एक ही मॉडल पूरे 512 टोकन पढ़ता है।",
    "whitespace": "  leading and trailing   \n\n\n   spaces\r\n",
}


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """tiktoken's own gpt2 encoding, loaded offline from a cache of the shipped files.

    tiktoken names each cached file by the sha1 of the URL it would download.
    """
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for name, url in OFFICIAL_URLS.items():
        shutil.copy(bpe_file(name), cache / hashlib.sha1(url.encode()).hexdigest())
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    try:
        yield tiktoken.get_encoding("gpt2")
    finally:
        mp.undo()


@pytest.mark.parametrize("kind", TEXTS)
def test_ids_equal_tiktoken_gpt2(official, kind):
    enc = gpt2_tokenizer()
    ids = enc.encode(TEXTS[kind])
    assert ids == official.encode(TEXTS[kind])
    assert enc.decode(ids) == TEXTS[kind]


def test_every_token_equals_tiktoken_gpt2(official):
    enc = gpt2_tokenizer()
    assert enc.n_vocab == official.n_vocab == 50257
    for i in range(50256):
        assert enc.decode_single_token_bytes(i) == official.decode_single_token_bytes(i), i


def test_endoftext():
    enc = gpt2_tokenizer()
    assert enc.eot_token == 50256
    ids = enc.encode("a<|endoftext|>b", allowed_special={"<|endoftext|>"})
    assert ids == [64, 50256, 65]
    with pytest.raises(ValueError):  # tiktoken refuses special text unless allowed
        enc.encode("<|endoftext|>")


def test_hindi_takes_more_tokens_per_word_than_english():
    enc = gpt2_tokenizer()
    english, hindi = "I like machine learning", "मुझे मशीन लर्निंग पसंद है"
    assert len(enc.encode(hindi)) / len(hindi.split()) > 3 * len(enc.encode(english)) / len(english.split())


def test_damaged_tokenizer_file_is_named(tmp_path):
    damaged = tmp_path / "vocab.bpe"
    damaged.write_bytes(open(bpe_file("vocab.bpe"), "rb").read()[:-10])
    with pytest.raises(ValueError, match=f"tokenizer file {damaged} is damaged.*sha256 "):
        load_gpt2_encoding(str(damaged), bpe_file("encoder.json"))


def test_char_tokenizer_round_trip_and_errors():
    text = "First Citizen:\nBefore we proceed any further, hear me speak."
    tok = CharTokenizer(text)
    assert tok.vocab_size == len(set(text))
    assert tok.decode(tok.encode(text)) == text
    assert tok.chars == sorted(tok.chars)
    with pytest.raises(ValueError, match=r"2 character\(s\) not in this tokenizer's vocabulary of \d+: '#', 'Z'"):
        tok.encode("Z#")
    with pytest.raises(ValueError, match=r"token id 99 is outside \[0, "):
        tok.decode([99])
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer("")
