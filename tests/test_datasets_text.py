"""The "text" dataset: tokens, vocabulary, splits and options."""
import pytest
import torch

from seqgen import UNK, DataError, TokenStream
from seqgen_plugins.datasets.text import build_text_dataset


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def whole(ds) -> torch.Tensor:
    return torch.cat([ds.train.ids] + ([ds.valid.ids] if ds.valid else []))


def test_char_stream_round_trips_with_smallest_dtype(tmp_path):
    text = "hello world\nhi\n"
    ds = build_text_dataset(path=write(tmp_path, "a.txt", text), valid_fraction=0)
    assert ds.task == "lm" and isinstance(ds.train, TokenStream) and ds.valid is None
    assert ds.vocab.tokens == sorted(set(text))
    assert ds.train.ids.dtype == torch.uint8
    assert ds.vocab.decode(ds.train.ids) == text


def test_cjk_corpus_decodes_to_exactly_the_text(tmp_path):
    text = "春眠不覚暁\n処処聞啼鳥 — 夜来風雨声, 花落知多少。🌸\n"
    ds = build_text_dataset(path=write(tmp_path, "cjk.txt", text), valid_fraction=0)
    assert len(ds.train) == len(text)  # one token per character, not per byte
    assert ds.vocab.decode(ds.vocab.encode(text)) == text
    assert ds.vocab.decode(ds.train.ids) == text


def test_validation_is_the_contiguous_tail(tmp_path):
    text = "abcdefghij" * 10
    ds = build_text_dataset(path=write(tmp_path, "a.txt", text), valid_fraction=0.2)
    assert (len(ds.train), len(ds.valid)) == (80, 20)
    assert ds.vocab.decode(ds.train.ids) == text[:80]
    assert ds.vocab.decode(ds.valid.ids) == text[80:]


def test_newlines_lowercase_and_max_chars(tmp_path):
    path = write(tmp_path, "a.txt", "Ab\nCd\nEF")
    ds = build_text_dataset(path=path, newlines="space", lowercase=True, max_chars=5,
                            valid_fraction=0)
    assert ds.vocab.decode(ds.train.ids) == "ab cd"  # cut to 5 chars before the rest


def test_word_level_min_freq_maps_rare_words_to_unk(tmp_path):
    path = write(tmp_path, "a.txt", "the cat the dog\nthe cat")
    ds = build_text_dataset(path=path, level="word", min_freq=2, valid_fraction=0)
    assert ds.vocab.tokens == [UNK, "cat", "the"]
    assert ds.vocab.decode(ds.train.ids, skip_specials=False) == "the cat the <unk> the cat"


def test_word_level_regex_pattern(tmp_path):
    path = write(tmp_path, "a.txt", "It's 2 cats, it's!")
    ds = build_text_dataset(path=path, level="word", pattern="[a-z]+", lowercase=True,
                            valid_fraction=0)
    assert ds.vocab.decode(ds.train.ids) == "it s cats it s"


def test_glob_and_paths_join_files_in_order(tmp_path, monkeypatch):
    write(tmp_path, "b.txt", "second\n")
    write(tmp_path, "a.txt", "first")  # no trailing newline: one is added between files
    monkeypatch.chdir(tmp_path)  # relative names resolve against the working directory
    by_glob = build_text_dataset(path="*.txt", valid_fraction=0)
    by_list = build_text_dataset(paths=["a.txt", "b.txt"], valid_fraction=0)
    assert by_glob.vocab.decode(by_glob.train.ids) == "first\nsecond\n"
    assert torch.equal(by_glob.train.ids, by_list.train.ids)
    assert by_glob.info["files"] == 2


def test_vocabulary_is_deterministic_and_covers_validation(tmp_path):
    path = write(tmp_path, "a.txt", "aaaaaaaaab" * 3 + "zyx")  # z, y, x only in the tail
    a = build_text_dataset(path=path, valid_fraction=0.1)
    b = build_text_dataset(path=path, valid_fraction=0.1)
    assert a.vocab == b.vocab and a.vocab.tokens == ["a", "b", "x", "y", "z"]
    assert a.vocab.decode(whole(a)) == "aaaaaaaaab" * 3 + "zyx"


def test_fraction_that_leaves_no_validation_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"valid_fraction 0.1 of 5 tokens leaves no validation"):
        build_text_dataset(path=write(tmp_path, "a.txt", "abcde"), valid_fraction=0.1)


def test_a_word_model_scores_and_continues_text_split_like_its_corpus(tmp_path):
    import json

    from click.testing import CliRunner

    from seqgen.cli import cli
    (tmp_path / "c.txt").write_text("The cat, sees a dog. A dog, sees the cat. " * 40)
    spec = {"dataset": {"type": "text", "path": str(tmp_path / "c.txt"), "level": "word",
                        "pattern": r"\w+|[^\w\s]", "lowercase": True},
            "model": {"cell": {"type": "gru", "hidden_size": 8}},
            "sampler": {"type": "sequential", "batch_size": 2, "num_steps": 8},
            "train": {"epochs": 1}, "generate": {"prompts": ["the cat"], "max_new_tokens": 3}}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    runner = CliRunner()
    assert runner.invoke(cli, ["run", str(tmp_path / "s.json"), "--out", "w"]).exit_code == 0
    (tmp_path / "t.txt").write_text("The cat, sees a dog.")
    scored = runner.invoke(cli, ["eval", "w", "--text", str(tmp_path / "t.txt"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["tokens"] == 6    # "the cat , sees a dog ." : 7 ids, 6 predicted
    out = runner.invoke(cli, ["generate", "w", "--prompt", "The cat,", "--max-new-tokens", "2"])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("The cat, ") and not out.stdout.startswith("The cat,,")
