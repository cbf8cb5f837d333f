"""Vocabulary: deterministic ids, the chunked vectorised char path, unknown tokens."""
import pytest
import torch

from seqgen import GenerationError, Vocab
from seqgen import vocab as vocab_module


def test_chunks_of_ascii_and_utf32_agree_with_a_plain_lookup(monkeypatch):
    monkeypatch.setattr(vocab_module, "CHUNK", 3)  # chunks: "abc" (ASCII) "é漢字" "xy🌸" "z"
    text = "abcé漢字xy🌸z"
    vocab = Vocab.from_text(text)
    assert vocab.tokens == sorted(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == torch.uint8
    assert ids.tolist() == [vocab.stoi[c] for c in text]
    assert vocab.decode(ids) == text


def test_dtype_follows_vocabulary_size():
    text = "".join(chr(0x4E00 + i) for i in range(300))  # 300 CJK characters
    ids = Vocab.from_text(text).encode(text)
    assert ids.dtype == torch.int16 and ids.tolist() == list(range(300))


def test_unknown_characters_are_named_with_their_positions():
    with pytest.raises(GenerationError, match=r"2 token\(s\) not in the vocabulary: 'z' at 2, "
                                              r"'\\n' at 3"):
        Vocab(["a", "b"]).encode("abz\n")


def test_unknown_handling_skip_and_unk():
    v = Vocab(["a", "b"], specials=["<unk>"])
    assert v.decode(v.encode("azb", on_unknown="skip")) == "ab"
    assert v.encode("azb", on_unknown="unk").tolist() == [1, 0, 2]


def test_specials_come_first_in_a_fixed_order_and_the_rest_sorted():
    v = Vocab(["b", "<eos>", "a"], specials=["<eos>", "<pad>", "<bos>"])
    assert v.tokens == ["<pad>", "<bos>", "<eos>", "a", "b"]


def test_round_trip_through_json_and_difference():
    v = Vocab.from_text("hello")
    assert Vocab.from_json(v.to_json()) == v
    assert v.difference(v) is None
    assert v.difference(Vocab.from_text("help")) == (
        "1 token(s) not in the model's vocabulary: 'p'; "
        "1 model token(s) absent from the data: 'o'")


def test_word_tokenisation_travels_with_the_vocabulary():
    v = Vocab(["the", "cat", ",", "dog"], level="word", specials=["<unk>"],
              pattern=r"\w+|[^\w\s]", lowercase=True)
    again = Vocab.from_json(v.to_json())
    assert again == v
    assert again.decode(again.encode("The cat, dog")) == "the cat , dog"


def test_word_continuations_get_a_separator_after_the_prompt():
    v = Vocab(["a"], level="word")
    assert v.continuation("the cat", "sees a dog") == " sees a dog"
    assert v.continuation("the cat ", "sees") == "sees"
    assert Vocab.from_text("ab").continuation("a", "b") == "b"
