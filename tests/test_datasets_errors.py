"""Corpus problems are DataErrors that name the file and what to fix."""
import re

import pytest

from seqgen import DataError
from seqgen_plugins.datasets.lines import build_lines_dataset
from seqgen_plugins.datasets.pairs import build_pairs_dataset
from seqgen_plugins.datasets.text import build_text_dataset


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match=re.escape(f"{missing}: no such file")):
        build_text_dataset(path=str(missing))


def test_directory_instead_of_a_file(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: is a directory, not a file")):
        build_text_dataset(path=str(tmp_path))


def test_glob_matching_nothing(tmp_path):
    pattern = str(tmp_path / "*.txt")
    with pytest.raises(DataError, match=re.escape(f"{pattern}: no file matches")):
        build_lines_dataset(path=pattern)


def test_undecodable_bytes_give_the_byte_offset(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("héllo ".encode() + b"\xff rest")  # é is 2 bytes: 0xff is at byte 7
    with pytest.raises(DataError, match=re.escape(f"{path}: not valid UTF-8 at byte 7 (0xff)")):
        build_text_dataset(path=str(path))


@pytest.mark.parametrize("build", [build_text_dataset, build_lines_dataset])
def test_empty_corpus(tmp_path, build):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with pytest.raises(DataError, match=re.escape(f"{path}: empty corpus")):
        build(path=str(path))


def test_no_words_and_blank_lines_only(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text(" \n\n  \n")
    with pytest.raises(DataError, match="no words found"):
        build_text_dataset(path=str(path), level="word")
    with pytest.raises(DataError, match="no non-empty lines"):
        build_lines_dataset(path=str(path))


def test_path_and_paths_together(tmp_path):
    with pytest.raises(DataError, match="exactly one of 'path'"):
        build_text_dataset(path="a.txt", paths=["b.txt"])


def test_unequal_pair_names_its_index_and_lengths():
    with pytest.raises(DataError, match=re.escape(
            "pair 1: input 'abc' has 3 characters and target 'ab' has 2")):
        build_pairs_dataset(pairs=[["xy", "yx"], ["abc", "ab"]])


def test_malformed_inline_pair():
    with pytest.raises(DataError, match=re.escape("pair 0: expected [input, target]")):
        build_pairs_dataset(pairs=[["a", "b", "c"]])


def test_unequal_pair_in_a_file_names_its_line(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("ab\tba\n\nabc\tx\n")
    with pytest.raises(DataError, match=re.escape(f"{path} line 3: input 'abc' has 3")):
        build_pairs_dataset(path=str(path))


def test_bad_pairs_lines(tmp_path):
    tsv, jsonl, csv = tmp_path / "p.tsv", tmp_path / "p.jsonl", tmp_path / "p.csv"
    tsv.write_text("a\tb\tc\n")
    jsonl.write_text('{"input": "a"}\n')
    csv.write_text("a,b\n")
    with pytest.raises(DataError, match=re.escape(f"{tsv} line 1: expected input<TAB>target")):
        build_pairs_dataset(path=str(tsv))
    with pytest.raises(DataError, match=re.escape(f"{jsonl} line 1: expected an object")):
        build_pairs_dataset(path=str(jsonl))
    with pytest.raises(DataError, match=re.escape(f"{csv}: unknown pairs format '.csv'")):
        build_pairs_dataset(path=str(csv))
