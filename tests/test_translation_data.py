"""The seq2seq datasets: "translation" (d2l 10.5, fra.txt-style pairs) and "reversal"
(synthetic strings, no file).

seqgen.testing.check_dataset knows only the lm/lines/aligned shapes, so the PairSet
contract is checked here by `check_seq2seq`.
"""
from __future__ import annotations

import inspect
import json
import random
import re

import jsonschema
import pytest
import torch

from seqgen import BOS, EOS, PAD, UNK, DataError, Dataset, PairSet, Vocab
from seqgen_plugins.datasets.reversal import build_reversal
from seqgen_plugins.datasets.translation import (D2L_WORD_PATTERN, build_translation_dataset,
                                                  preprocess_nmt)
from test_datasets_registration import registrations

# The start of d2l's fra.txt and what the book prints after preprocess_nmt (10.5.1)
D2L_RAW = ("Go.\tVa !\nHi.\tSalut !\nRun!\tCours\u202f!\nRun!\tCourez\u202f!\n"
           "Who?\tQui ?\nWow!\tÇa alors\u202f!\n")
D2L_PREPROCESSED = ("go .\tva !\nhi .\tsalut !\nrun !\tcours !\nrun !\tcourez !\n"
                    "who ?\tqui ?\nwow !\tça alors !\n")
ATTRIBUTION = "\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)"
ANKI = "".join(line + ATTRIBUTION + "\n" for line in D2L_RAW.splitlines())
PAIRS = [line.split("\t") for line in D2L_RAW.splitlines()]


def build(**options) -> Dataset:
    return build_translation_dataset(**{"valid_fraction": 0, "min_freq": 1, **options})


def decode(vocab: Vocab, ids: torch.Tensor) -> list[str]:
    return [vocab.tokens[i] for i in ids.tolist()]


def pairs_of(dataset: Dataset, split: str = "train") -> list[tuple[list[str], list[str]]]:
    data = getattr(dataset, split)
    return [(decode(dataset.input_vocab, s), decode(dataset.vocab, t))
            for s, t in zip(data.sources, data.targets)]


def check_seq2seq(factory, **options) -> Dataset:
    """The Dataset contract for task "seq2seq" (what check_dataset checks for the others)."""
    dataset = factory(**options)
    assert isinstance(dataset, Dataset) and dataset.task == "seq2seq"
    assert isinstance(dataset.source, str) and dataset.source
    json.dumps(dataset.info)
    vocab, input_vocab = dataset.vocab, dataset.input_vocab
    for v in {id(vocab): vocab, id(input_vocab): input_vocab}.values():
        assert isinstance(v, Vocab) and v.level in ("char", "word")
        again = Vocab.from_dict(json.loads(v.to_json()))     # canonical order, or it raises
        assert again == v and again.tokens == v.tokens
        assert PAD in v.tokens and len(set(v.tokens)) == len(v.tokens)
    assert {BOS, EOS, PAD} <= set(vocab.tokens)
    assert dataset.source_vocab is None or EOS not in dataset.source_vocab.tokens
    splits = {"train": dataset.train, **({"valid": dataset.valid} if dataset.valid else {})}
    for name, split in splits.items():
        assert isinstance(split, PairSet) and split.kind == "pairs" and len(split) > 0, name
        assert split.bos_id == vocab.bos_id
        assert len(split.sources) == len(split.targets)
        for i, (s, t) in enumerate(zip(split.sources, split.targets)):
            for ids, v in ((s, input_vocab), (t, vocab)):
                assert ids.dim() == 1 and ids.numel() > 0, (name, i)
                assert not ids.is_floating_point() and ids.dtype != torch.bool
                assert 0 <= int(ids.min()) and int(ids.max()) < len(v), (name, i)
            assert int(t[-1]) == vocab.eos_id, f"{name} {i}: target does not end with <eos>"
            assert vocab.eos_id not in t[:-1].tolist()
            assert not {BOS, EOS, PAD} & set(decode(input_vocab, s)), "a marker in a source"
            decoder_input = split.decoder_inputs(i)
            assert decoder_input[0] == vocab.bos_id and torch.equal(decoder_input[1:], t[:-1])
    second = factory(**options)                                       # deterministic
    assert second.vocab.tokens == vocab.tokens
    assert second.input_vocab.tokens == input_vocab.tokens
    for name, split in splits.items():
        other = getattr(second, name)
        assert all(torch.equal(a, b) for a, b in zip(split.sources, other.sources))
        assert all(torch.equal(a, b) for a, b in zip(split.targets, other.targets))
    return dataset


# -- d2l preprocessing -----------------------------------------------------------------------
def test_preprocess_matches_d2l_preprocess_nmt():
    assert preprocess_nmt(D2L_RAW) == D2L_PREPROCESSED
    assert preprocess_nmt("Go.\tVa !") == "go .\tva !"
    assert preprocess_nmt("Hi,you...\xa0OK?") == "hi ,you . . . ok ?"
    assert preprocess_nmt(".Hi") == ".hi"                  # nothing before the first one


def d2l_preprocess_nmt(text):
    """d2l 0.17's preprocess_nmt (section 9.5.1 then), but for its name and a def for the
    lambda."""
    def no_space(char, prev_char):
        return char in set(',.!?') and prev_char != ' '
    text = text.replace('\u202f', ' ').replace('\xa0', ' ').lower()
    out = [' ' + char if i > 0 and no_space(char, text[i - 1]) else char
           for i, char in enumerate(text)]
    return ''.join(out)


def test_preprocess_agrees_with_d2ls_code_on_random_text():
    rng = random.Random(0)
    for _ in range(500):
        text = "".join(rng.choice("aZé .,!?\u202f\xa0\t\n") for _ in range(rng.randint(0, 12)))
        assert preprocess_nmt(text) == d2l_preprocess_nmt(text), repr(text)


@pytest.mark.parametrize("text", ["Go.", "Hi,you...", "a.b c", "Wow!  OK?", "Ça alors\u202f!",
                                  "«Quoi ?»", ". , !", "x\xa0!"])
def test_the_vocab_pattern_splits_raw_text_as_preprocess_nmt_does(text):
    vocab = Vocab([], level="word", pattern=D2L_WORD_PATTERN, lowercase=True)
    assert vocab.split(text) == preprocess_nmt(text).split()


def test_fra_txt_with_attribution_column_gives_d2ls_tokens(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text(ANKI, encoding="utf-8")
    dataset = check_seq2seq(build, path=str(path))
    assert pairs_of(dataset)[:3] == [(["go", "."], ["va", "!", EOS]),
                                     (["hi", "."], ["salut", "!", EOS]),
                                     (["run", "!"], ["cours", "!", EOS])]
    assert dataset.source == str(path)
    assert dataset.source_vocab.tokens == [PAD, UNK, "!", ".", "?", "go", "hi", "run", "who",
                                           "wow"]
    assert dataset.vocab.tokens[:4] == [PAD, UNK, BOS, EOS]
    assert dataset.info == {"pairs": 6, "train_pairs": 6, "valid_pairs": 0,
                            "mean_source_tokens": 2.0, "mean_target_tokens": 3.17,
                            "source_vocab_size": 10, "target_vocab_size": 13}
    # a prompt in raw form is split as the training text was
    assert dataset.source_vocab.split("Who? Go.") == ["who", "?", "go", "."]


def test_preprocess_none_keeps_the_text():
    dataset = build(pairs=[["Go.", "Va !"], ["Hi!", "Salut!"]], preprocess="none")
    assert pairs_of(dataset) == [(["Go."], ["Va", "!", EOS]), (["Hi!"], ["Salut!", EOS])]
    assert dataset.source_vocab.pattern is None and not dataset.source_vocab.lowercase


# -- sources and formats ---------------------------------------------------------------------
def test_path_text_json_and_inline_pairs_agree(tmp_path):
    (tmp_path / "fra.txt").write_text(ANKI, encoding="utf-8")
    (tmp_path / "pairs.json").write_text(json.dumps(PAIRS), encoding="utf-8")
    (tmp_path / "objects.data").write_text(json.dumps(
        [{"source": x, "target": y} for x, y in PAIRS]), encoding="utf-8")
    reference = pairs_of(build(pairs=PAIRS))
    for options in ({"path": str(tmp_path / "fra.txt")}, {"text": ANKI},
                    {"text": D2L_RAW, "format": "tsv"},
                    {"path": str(tmp_path / "pairs.json")},                   # from the suffix
                    {"path": str(tmp_path / "objects.data"), "format": "json"},
                    {"text": json.dumps(PAIRS), "format": "json"}):
        assert pairs_of(check_seq2seq(build, **options)) == reference, options


def test_exactly_one_source_and_inline_pairs_take_no_format(tmp_path):
    with pytest.raises(DataError, match="give exactly one of 'pairs'"):
        build()
    with pytest.raises(DataError, match="got pairs and text"):
        build(pairs=PAIRS, text=D2L_RAW)
    with pytest.raises(DataError, match="'format' is for 'path' or 'text'"):
        build(pairs=PAIRS, format="tsv")
    with pytest.raises(DataError, match="unknown format 'csv'"):
        build(text=D2L_RAW, format="csv")


# -- levels and vocabularies -----------------------------------------------------------------
def test_char_level():
    dataset = check_seq2seq(build, pairs=[["Go.", "Va !"], [" Hi ", "Salut"]], level="char")
    assert pairs_of(dataset) == [(list("go ."), list("va !") + [EOS]),
                                 (list("hi"), list("salut") + [EOS])]
    assert dataset.vocab.level == dataset.source_vocab.level == "char"
    assert dataset.source_vocab.lowercase


def test_shared_vocabulary():
    dataset = check_seq2seq(build, pairs=PAIRS, shared_vocab=True)
    assert dataset.source_vocab is None and dataset.input_vocab is dataset.vocab
    assert {"go", "va", BOS, EOS, PAD, UNK} <= set(dataset.vocab.tokens)
    assert dataset.info["vocab_size"] == len(dataset.vocab)
    assert "source_vocab_size" not in dataset.info
    separate = build(pairs=PAIRS)
    assert "va" not in separate.source_vocab.tokens and "go" not in separate.vocab.tokens
    assert {BOS, EOS} & set(separate.source_vocab.tokens) == set()


def test_min_freq_makes_rare_tokens_unk():
    dataset = check_seq2seq(build, pairs=PAIRS, min_freq=2)          # d2l's default
    assert dataset.source_vocab.tokens == [PAD, UNK, "!", ".", "run"]
    assert dataset.vocab.tokens == [PAD, UNK, BOS, EOS, "!"]
    assert pairs_of(dataset)[:3] == [([UNK, "."], [UNK, "!", EOS]), ([UNK, "."], [UNK, "!", EOS]),
                                     (["run", "!"], [UNK, "!", EOS])]
    shared = build(pairs=PAIRS, min_freq=2, shared_vocab=True)     # counts both sides
    assert shared.vocab.tokens == [PAD, UNK, BOS, EOS, "!", ".", "?", "run"]  # who? qui ?
    assert inspect.signature(build_translation_dataset).parameters["min_freq"].default == 2


def test_num_examples_keeps_the_first_pairs_and_stops_reading():
    text = D2L_RAW + "no tab on this line\n"
    dataset = build(text=text, num_examples=2)
    assert pairs_of(dataset) == [(["go", "."], ["va", "!", EOS]),
                                 (["hi", "."], ["salut", "!", EOS])]
    with pytest.raises(DataError, match=":7: expected source<TAB>target"):
        build(text=text)


def test_max_length_drops_long_pairs():
    pairs = [["Go.", "Va !"], ["I am here.", "Je suis là."], ["Hi.", "Salut !"]]
    dataset = build(pairs=pairs, max_length=3)
    assert [s for s, _ in pairs_of(dataset)] == [["go", "."], ["hi", "."]]
    assert dataset.info["dropped_too_long"] == 1
    assert "dropped_too_long" not in build(pairs=pairs).info
    with pytest.raises(DataError, match="max_length 1"):
        build(pairs=pairs, max_length=1)


def test_validation_is_the_tail():
    dataset = check_seq2seq(build, text=D2L_RAW, valid_fraction=0.5)
    assert [s for s, _ in pairs_of(dataset, "valid")] == [["run", "!"], ["who", "?"],
                                                          ["wow", "!"]]
    assert dataset.info["train_pairs"] == 3 and dataset.info["valid_pairs"] == 3
    assert build(text=D2L_RAW).valid is None                           # valid_fraction 0
    with pytest.raises(DataError, match="leaves no validation pairs"):
        build_translation_dataset(text=D2L_RAW)                       # 10% of 6 pairs


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("content, line, message", [
    ("Go.\tVa !\nHi. Salut !\n", 2, "expected source<TAB>target, found no tab"),
    ("Go.\tVa !\n\n\nHi.\t \n", 4, "target is empty"),
    ("\tVa !\n", 1, "source is empty"),
    ("Go.\tVa !\n\u202f\tx\n", 2, "source is empty"),                # nothing after preprocess
    ("Go.\tVa ! <eos> !\n", 1, "target holds '<eos>', which the vocabulary reserves"),
])
def test_bad_lines_name_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "fra.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: {message}")):
        build(path=str(path))


def test_bad_json(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text('[\n["Go.", "Va !"],\n["Hi."]\n]', encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}: [1]: expected [source, target]")):
        build(path=str(path))
    path.write_text('[\n["Go.", "Va !"],\n]', encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: not valid JSON")):
        build(path=str(path))
    path.write_text('{"source": "Go.", "target": "Va !"}', encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON list"):
        build(path=str(path))
    with pytest.raises(DataError, match=re.escape("[0]: target is empty")):
        build(text='[{"source": "Go.", "target": ""}]', format="json")


def test_missing_undecodable_and_empty_files(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match=re.escape(f"{missing}: no such file")):
        build(path=str(missing))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Go.\tVa \xff!\n")
    with pytest.raises(DataError, match=re.escape(f"{bad}: not valid UTF-8")):
        build(path=str(bad))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n")
    with pytest.raises(DataError, match=re.escape(f"{blank}: no pairs")):
        build(path=str(blank))


# -- the reversal dataset --------------------------------------------------------------------
def test_reversal_targets_are_reversed_sources():
    state = torch.random.get_rng_state()
    dataset = check_seq2seq(build_reversal)
    assert torch.equal(torch.random.get_rng_state(), state)          # never the global RNG
    assert dataset.source_vocab is None and dataset.vocab.level == "char"
    assert dataset.vocab.tokens == [PAD, BOS, EOS, *"abcdefgh"]
    assert len(dataset.train) == 1800 and len(dataset.valid) == 200
    for split in (dataset.train, dataset.valid):
        for s, t in zip(split.sources, split.targets):
            assert 3 <= len(s) <= 8
            assert torch.equal(t[:-1], s.flip(0))
            assert dataset.vocab.decode(t) == dataset.vocab.decode(s)[::-1]


@pytest.mark.parametrize("transform, expected", [("sort", sorted), ("copy", list)])
def test_reversal_transforms(transform, expected):
    dataset = check_seq2seq(build_reversal, transform=transform, alphabet="zyx01",
                            min_length=1, max_length=4, size=50, valid_fraction=0)
    vocab = dataset.vocab
    for s, t in zip(dataset.train.sources, dataset.train.targets):
        assert vocab.decode(t) == "".join(expected(vocab.decode(s)))
    assert dataset.info["transform"] == transform and dataset.valid is None


def test_reversal_seed_and_bad_options():
    a, b = build_reversal(seed=1, size=20), build_reversal(seed=2, size=20)
    assert [s.tolist() for s in a.train.sources] != [s.tolist() for s in b.train.sources]
    with pytest.raises(DataError, match="'a' repeats"):
        build_reversal(alphabet="aba")
    with pytest.raises(DataError, match="min_length"):
        build_reversal(min_length=5, max_length=4)
    with pytest.raises(DataError, match="unknown transform"):
        build_reversal(transform="shuffle")


# -- registration ----------------------------------------------------------------------------
OURS = {"translation": build_translation_dataset, "reversal": build_reversal}


@pytest.mark.parametrize("name", sorted(OURS))
def test_registered_as_seq2seq_with_schema_matching_the_factory(name):
    factory, schema, description, extra = registrations()[name]
    assert factory is OURS[name] and description and extra == {"task": "seq2seq"}
    jsonschema.Draft202012Validator.check_schema(schema)
    params = inspect.signature(factory).parameters
    assert set(schema["properties"]) == set(params)
    for option, prop in schema["properties"].items():
        assert prop.get("description"), f"{name}.{option} has no description"
        if "default" in prop:
            assert prop["default"] == params[option].default, f"{name}.{option}"
            jsonschema.validate(params[option].default, prop)
        else:
            assert params[option].default is None


def test_translation_schema_refuses_two_sources_and_inline_format():
    validator = jsonschema.Draft202012Validator(registrations()["translation"][1])
    assert not list(validator.iter_errors({"path": "fra.txt", "num_examples": 600}))
    for bad in ({"path": "a", "text": "b"}, {"pairs": PAIRS, "format": "tsv"},
                {"path": "a", "level": "byte"}, {"path": "a", "min_freq": 0},
                {"path": "a", "preprocess": "x"}, {}):
        assert list(validator.iter_errors(bad)), bad


def test_session_builds_both(session):
    reversal = session.build("dataset", {"type": "reversal", "size": 40})
    assert reversal.task == "seq2seq" and len(reversal.train) == 36
    translation = session.build("dataset", {"type": "translation", "text": D2L_RAW,
                                            "valid_fraction": 0.5, "min_freq": 1})
    assert translation.task == "seq2seq" and len(translation.valid) == 3
