"""The "lines" and "pairs" datasets: SequenceSets with the right targets."""
import json

import torch

from seqgen import BOS, EOS, PAD, SequenceSet
from seqgen_plugins.datasets.lines import build_lines_dataset
from seqgen_plugins.datasets.pairs import build_pairs_dataset


def test_lines_wrap_each_line_in_bos_eos_and_skip_empty_lines(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("Anna\n\n  \nBo\r\nCy\n")
    ds = build_lines_dataset(path=str(path), lowercase=True, valid_fraction=0.34)
    assert ds.task == "lines" and isinstance(ds.train, SequenceSet)
    assert ds.vocab.tokens[:3] == [PAD, BOS, EOS] and ds.vocab.pad_id == 0
    v = ds.vocab
    decoded = [(v.decode(x, skip_specials=False), v.decode(y, skip_specials=False))
               for x, y in zip(ds.train.inputs, ds.train.targets)]
    assert decoded == [("<bos>anna", "anna<eos>"), ("<bos>bo", "bo<eos>")]
    assert [v.decode(x) for x in ds.valid.inputs] == ["cy"]  # the tail line validates


def test_word_lines(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("the cat sat\nthe dog\n")
    ds = build_lines_dataset(path=str(path), level="word", valid_fraction=0)
    x, y = ds.train.inputs[1], ds.train.targets[1]
    assert ds.vocab.decode(x, skip_specials=False) == "<bos> the dog"
    assert ds.vocab.decode(y, skip_specials=False) == "the dog <eos>"


def test_inline_pairs_validate_on_the_training_pairs():
    ds = build_pairs_dataset(pairs=[["hello", "ohlol"]])
    assert ds.task == "aligned" and ds.vocab.tokens == ["e", "h", "l", "o"]
    assert ds.vocab.decode(ds.train.inputs[0]) == "hello"
    assert ds.vocab.decode(ds.train.targets[0]) == "ohlol"
    assert ds.valid is ds.train


def test_pairs_from_tsv_and_jsonl_agree_and_hold_out_the_tail(tmp_path):
    pairs = [["abc", "cba"], ["xy", "yx"], ["ab", "ba"], ["我们", "们我"]]
    tsv, jsonl = tmp_path / "p.tsv", tmp_path / "p.jsonl"
    tsv.write_text("".join(f"{x}\t{y}\n" for x, y in pairs), encoding="utf-8")
    jsonl.write_text("".join(json.dumps({"input": x, "target": y}) + "\n" for x, y in pairs),
                     encoding="utf-8")
    a = build_pairs_dataset(path=str(tsv), valid_fraction=0.25)
    b = build_pairs_dataset(path=str(jsonl), valid_fraction=0.25)
    assert a.vocab == b.vocab
    assert all(torch.equal(p, q) for p, q in zip(a.train.inputs, b.train.inputs))
    assert (len(a.train), len(a.valid)) == (3, 1)
    assert a.vocab.decode(a.valid.targets[0]) == "们我"
