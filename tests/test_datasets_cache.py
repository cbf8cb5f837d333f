"""The text dataset with `cache: true` (plugins/datasets/streamed.py, seqgen/token_cache.py):
the corpus streamed in pieces into a memory-mapped token cache, giving exactly the
vocabulary and ids of the in-memory pipeline; reused while the files are unchanged,
rebuilt when they change. Its speed and memory: benchmarks/corpus_cache.py."""
from __future__ import annotations

import json
import os

import pytest
import torch

import seqgen
import seqgen.text_io
from seqgen_plugins.datasets import streamed

CORPUS = ("The Time Machine, by H. G. Wells\r\n\ufeffÉtude — naïve 😀 text, twice.\n\n"
          "I\tsaw  the   Time Traveller\rhold it.\n") * 40


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbf" + CORPUS.encode("utf-8"))   # a BOM
    (tmp_path / "b.txt").write_text("no newline at the end, the end", encoding="utf-8")
    return [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]


@pytest.fixture
def tiny_pieces(monkeypatch):
    """Read 7 bytes at a time, cut lines past 50 characters and split words 13
    characters at a time: every boundary case (a character, a "\\r\\n" or a word split
    between reads) happens many times."""
    monkeypatch.setattr(seqgen.text_io, "CHUNK_BYTES", 7)
    monkeypatch.setattr(streamed, "MAX_LINE", 50)
    monkeypatch.setattr(streamed, "WORD_PART", 13)


def build(session, **options):
    return session.build("dataset", {"type": "text", **options})


@pytest.mark.parametrize("options", [
    {},
    {"clean": "d2l"},
    {"newlines": "space", "lowercase": True, "max_chars": 777},
    {"level": "word"},
    {"level": "word", "pattern": r"\w+|[^\w\s]", "min_freq": 3, "lowercase": True},
    {"level": "word", "clean": "d2l", "max_chars": 1000, "valid_fraction": 0.3},
])
def test_cache_gives_the_in_memory_vocabulary_and_ids(session, files, tiny_pieces, options):
    memory = build(session, paths=files, **options)
    first = build(session, paths=files, cache=True, **options)
    again = build(session, paths=files, cache=True, **options)
    for cached in (first, again):
        assert cached.vocab == memory.vocab
        assert cached.vocab.to_dict() == memory.vocab.to_dict()
        assert torch.equal(cached.train.ids, memory.train.ids)
        assert cached.train.ids.dtype == memory.train.ids.dtype
        assert torch.equal(cached.valid.ids, memory.valid.ids)
        assert {k: v for k, v in cached.info.items() if not k.startswith("cache")} == memory.info
    assert (first.info["cache_hit"], again.info["cache_hit"]) == (False, True)


def test_the_splits_are_memory_mapped_from_the_cache_file(session, files):
    ds = build(session, path=files[0], cache=True)
    ids_file = os.path.realpath(os.path.join(ds.info["cache"], "ids.bin"))
    with open("/proc/self/maps") as maps:
        assert any(line.rstrip().endswith(ids_file) for line in maps)
    before = os.path.getmtime(ids_file)
    ds.train.ids[0] = ds.train.ids[1]               # copy-on-write: the file never changes
    assert os.path.getmtime(ids_file) == before
    assert build(session, path=files[0], cache=True).train.ids[0] != ds.train.ids[1] or (
        CORPUS[0] == CORPUS[1])


def test_an_unchanged_corpus_is_not_read_again(session, files, monkeypatch):
    build(session, paths=files, cache=True)
    monkeypatch.setattr(streamed, "corpus_pieces", lambda *a, **k: pytest.fail("re-encoded"))
    assert build(session, paths=files, cache=True).info["cache_hit"] is True


def test_a_changed_corpus_is_encoded_again(session, files):
    first = build(session, paths=files, cache=True)
    with open(files[1], "a", encoding="utf-8") as f:
        f.write(" and more words")
    changed = build(session, paths=files, cache=True)
    assert changed.info["cache_hit"] is False and changed.info["cache"] == first.info["cache"]
    assert torch.equal(changed.valid.ids, build(session, paths=files).valid.ids)
    assert len(changed.valid) > len(first.valid) or len(changed.train) > len(first.train)


def test_options_that_change_the_ids_get_their_own_cache(session, files):
    chars = build(session, path=files[0], cache=True)
    words = build(session, path=files[0], cache=True, level="word")
    lower = build(session, path=files[0], cache=True, lowercase=True)
    assert len({chars.info["cache"], words.info["cache"], lower.info["cache"]}) == 3
    # valid_fraction only splits the ids: the same cache serves every split
    assert build(session, path=files[0], cache=True, valid_fraction=0.5).info["cache_hit"]


@pytest.mark.parametrize("damage", ["manifest", "ids", "format"])
def test_a_damaged_cache_is_rebuilt(session, files, damage):
    first = build(session, path=files[0], cache=True)
    folder = first.info["cache"]
    manifest = os.path.join(folder, "manifest.json")
    if damage == "manifest":
        with open(manifest, "w") as f:
            f.write("{not json")
    elif damage == "ids":
        with open(os.path.join(folder, "ids.bin"), "ab") as f:
            f.write(b"\x00\x01")
    else:
        data = json.load(open(manifest))
        data["format"] = 999
        json.dump(data, open(manifest, "w"))
    rebuilt = build(session, path=files[0], cache=True)
    assert rebuilt.info["cache_hit"] is False
    assert torch.equal(rebuilt.train.ids, build(session, path=files[0]).train.ids)


def test_cache_dir_is_used_and_a_bad_one_is_a_clear_error(session, files, tmp_path):
    ds = build(session, path=files[0], cache=True, cache_dir=str(tmp_path / "cache here"))
    assert os.path.dirname(ds.info["cache"]) == str(tmp_path / "cache here")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(seqgen.DataError, match=r"a-file.*cannot write the token cache.*"
                                               r"dataset.cache_dir"):
        build(session, path=files[0], cache=True, cache_dir=str(tmp_path / "a-file" / "sub"))
    assert sorted(os.listdir(tmp_path / "cache here")) == [os.path.basename(ds.info["cache"])]


def test_bad_input_is_reported_as_without_the_cache(session, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text\n" * 3 + b"caf\xe9\n")
    with pytest.raises(seqgen.DataError, match=r"bad.txt: not valid UTF-8 at byte 33 \(0xe9\)"):
        build(session, path=str(bad), cache=True)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(seqgen.DataError, match="empty corpus"):
        build(session, path=str(empty), cache=True)
    with pytest.raises(seqgen.DataError, match="'cache' is for corpora in files"):
        build(session, text="some text", cache=True)
    with pytest.raises(seqgen.DataError, match="not a valid regular expression"):
        build(session, path=str(bad), cache=True, level="word", pattern="(")
    assert not (tmp_path / ".seqgen-cache").exists()    # nothing half-written


def test_read_text_chunks_reads_what_read_text_reads(tmp_path):
    import random
    rng = random.Random(0)
    pieces = ["a", "é", "\r\n", "\n", "\r", "😀", "\ufeff", "x y"]
    for trial in range(200):
        raw = ("\ufeff" if trial % 3 == 0 else "").join([""]) + "".join(
            rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        data = raw.encode("utf-8")
        if trial % 5 == 0 and data:
            at = rng.randrange(len(data))
            data = data[:at] + b"\xff" + data[at:]
        path = tmp_path / "t.txt"
        path.write_bytes(data)
        for size in (1, 2, 3, 5, 64):
            try:
                want = seqgen.read_text(path)
            except seqgen.DataError as e:
                want = f"error: {e}"
            try:
                got = "".join(seqgen.read_text_chunks(path, size))
            except seqgen.DataError as e:
                got = f"error: {e}"
            assert got == want, (data, size)


def test_training_on_the_cache_equals_training_in_memory(session, tiny_spec, files):
    tiny_spec["dataset"] = {"type": "text", "paths": files}
    tiny_spec["train"]["max_steps"] = 6
    losses = []
    for cache in (False, True):
        events = []
        session.run({**tiny_spec, "dataset": {**tiny_spec["dataset"], "cache": cache}},
                    save=False, emit=events.append)
        losses.append([e.data["loss"] for e in events if e.kind == "step"])
    assert len(losses[0]) == 6 and losses[0] == losses[1]


def test_the_memory_check_counts_a_streamed_corpus_as_streamed(files):
    from seqgen.budget import STREAMED_BYTES, data_need
    need, _ = data_need({"type": "text", "path": files[0], "cache": True})
    assert need.bytes == STREAMED_BYTES and "token cache" in need.what
    in_memory, _ = data_need({"type": "text", "path": files[0]})
    assert "token cache" not in in_memory.what
