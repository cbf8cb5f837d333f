"""Honest text: scored text is preprocessed as the training text was, and generated
<unk> tokens stay visible."""
import json

import pytest
from click.testing import CliRunner

import seqgen
from seqgen.cli import cli
from seqgen.stopping import RowText, finish

LINES = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n" * 30


@pytest.fixture(scope="module")
def spaced_run(tmp_path_factory):
    """A char model trained on text whose newlines became spaces (no "\\n" token)."""
    spec = {"name": "spaced", "seed": 0,
            "dataset": {"type": "text", "text": LINES, "newlines": "space",
                        "lowercase": True},
            "model": {"embedding": {"type": "learned", "size": 8},
                      "cell": {"type": "gru", "hidden_size": 16}},
            "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 16},
            "train": {"epochs": 1, "max_steps": 3},
            "generate": {"prompts": ["the "], "max_new_tokens": 5}}
    out = tmp_path_factory.mktemp("honest") / "run"
    seqgen.Session(entry_points=False).run(spec, out=out)
    return out


def test_the_vocabulary_carries_the_newline_rule(spaced_run):
    model = seqgen.load(spaced_run, entry_points=False)
    assert "\n" not in model.vocab.stoi and model.vocab.newlines == "space"
    multi, flat = "The cat\nsat", "the cat sat"
    assert model.score(multi) == model.score(flat)          # same tokens once prepared


def test_eval_scores_a_multi_line_file_as_the_run_read_its_text(spaced_run, tmp_path):
    text = tmp_path / "eval.txt"
    text.write_text("The cat sat on the mat\nA dog sat on the log\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(spaced_run), "--text", str(text), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    want = seqgen.load(spaced_run, entry_points=False).score(
        "the cat sat on the mat a dog sat on the log ")
    assert got["tokens"] == want.tokens and got["loss"] == pytest.approx(want.loss)


def test_eval_has_the_on_unknown_option_its_error_suggests(spaced_run, tmp_path):
    text = tmp_path / "odd.txt"
    text.write_text("the cat sat! on the mat?", encoding="utf-8")
    refused = CliRunner().invoke(cli, ["eval", str(spaced_run), "--text", str(text)])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "'!'" in refused.stderr
    skipped = CliRunner().invoke(cli, ["eval", str(spaced_run), "--text", str(text),
                                       "--on-unknown", "skip", "--json"])
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.output)["tokens"] == len("the cat sat on the mat") - 1


def test_a_vocabulary_without_the_newline_key_reads_as_keep():
    v = seqgen.Vocab.from_dict({"level": "char", "tokens": ["\n", "a"]})
    assert v.newlines == "keep" and "newlines" not in v.to_dict()
    spaced = seqgen.Vocab(["a", " "], newlines="space")
    assert seqgen.Vocab.from_json(spaced.to_json()).newlines == "space"
    assert "newlines 'keep' vs 'space'" in seqgen.Vocab([" ", "a"]).difference(spaced)


def test_generated_unk_stays_in_the_text():
    vocab = seqgen.Vocab(["a", "cat", "sat"], level="word",
                         specials=[seqgen.UNK, seqgen.EOS])
    unk, cat, eos = vocab.unk_id, vocab.stoi["cat"], vocab.eos_id
    assert vocab.decode([cat, unk, unk, cat]) == "cat <unk> <unk> cat"
    assert finish(vocab, [cat, unk, eos, cat], ())[0] == "cat <unk>"
    row = RowText(vocab, ("sat",))
    for token in (cat, unk, cat):
        row.add(token)
    assert row.final()[0] == "cat <unk> cat"                # the stop-string path too


def test_an_aligned_model_says_what_it_ignores_and_prints_input_then_output(tmp_path):
    out = tmp_path / "hello"
    seqgen.Session(entry_points=False).run({"extends": "hello", "train": {"max_steps": 3}},
                                           out=out)
    result = CliRunner().invoke(cli, ["generate", str(out), "--prompt", "hello", "--strategy",
                                      "top-k", "--set", "k=3", "--num-samples", "2"])
    assert result.exit_code == 0, result.output
    assert "no effect" in result.stderr and "num_samples 2" in result.stderr
    assert "top-k" in result.stderr
    line = result.stdout.strip().splitlines()[0]
    assert line.startswith("hello -> ") and len(line) == len("hello -> ") + 5
    quiet = CliRunner().invoke(cli, ["generate", str(out), "--prompt", "hello"])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_the_vocabulary_is_written_to_the_run_directory(spaced_run):
    written = json.loads((spaced_run / "vocab.json").read_text(encoding="utf-8"))
    model = seqgen.load(spaced_run, entry_points=False)
    assert seqgen.Vocab.from_dict(written) == model.vocab
    assert written["newlines"] == "space" and written["lowercase"] is True


def test_how_unk_reads_is_configurable():
    vocab = seqgen.Vocab(["a", "cat", "sat"], level="word", specials=[seqgen.UNK, seqgen.EOS])
    unk, cat = vocab.unk_id, vocab.stoi["cat"]
    marked = vocab.showing_unk_as("[?]")
    assert marked.decode([cat, unk, cat]) == "cat [?] cat" and marked == vocab
    assert vocab.decode([cat, unk, cat]) == "cat <unk> cat"          # the original is kept
    dropped = vocab.showing_unk_as("")
    assert dropped.decode([unk, cat, unk, unk, cat]) == "cat cat"    # no doubled separators
    row = RowText(marked, ("sat",))
    for token in (cat, unk, cat):
        row.add(token)
    assert row.final()[0] == "cat [?] cat"
    assert "unk_text" not in marked.to_dict()                      # display only, not saved
    with pytest.raises(TypeError, match="must be a string"):
        vocab.showing_unk_as(None)


def test_generate_shows_unk_as_the_run_or_the_command_says(tmp_path):
    words = "the cat sat on the mat . the dog sat on the log . " * 20 + "the zebra ."
    spec = {"name": "words", "seed": 0,
            "dataset": {"type": "text", "text": words, "level": "word", "min_freq": 2},
            "model": {"embedding": {"type": "learned", "size": 8},
                      "cell": {"type": "gru", "hidden_size": 8}},
            "sampler": {"type": "sequential", "batch_size": 2, "num_steps": 8},
            "train": {"max_steps": 2},
            "generate": {"prompts": ["the"], "max_new_tokens": 2, "unk_text": "[?]"}}
    seqgen.Session(entry_points=False).run(spec, out=tmp_path / "run")
    model = seqgen.load(tmp_path / "run", entry_points=False)
    assert model.vocab.unk_text == "[?]"
    tf = {"type": "teacher-forcing", "reference": "cat zebra sat"}
    assert model.generate("the", tf, on_unknown="unk")[0].text == "cat [?] sat"
    plain = model.showing_unk_as("<unk>")
    assert plain.model is model.model and plain.generate("the", tf, on_unknown="unk")[
        0].text == "cat <unk> sat"
    result = CliRunner().invoke(cli, ["generate", str(tmp_path / "run"), "--prompt", "the",
                                      "--strategy", "teacher-forcing", "--set",
                                      "reference=cat zebra sat", "--on-unknown", "unk",
                                      "--unk-text", ""])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "the cat sat"
