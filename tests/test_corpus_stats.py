"""`seqgen data SPEC`: corpus statistics as training will see the data."""
import json

from click.testing import CliRunner

from seqgen.cli import cli


def text_spec(text: str, **dataset) -> dict:
    return {"name": "stats", "dataset": {"type": "text", "text": text, **dataset},
            "model": {"cell": {"type": "gru", "hidden_size": 8}},
            "sampler": {"type": "sequential", "batch_size": 2, "num_steps": 4}}


def test_counts_frequencies_and_coverage_are_exact(session):
    text = "aaaaabbbc\n" * 10                           # a 50, b 30, c 10, \n 10
    stats = session.data_stats(text_spec(text, valid_fraction=0.2), top=2)
    assert stats["tokens"] == {"train": 80, "valid": 20, "total": 100}
    assert stats["vocabulary"] == {"size": 4, "level": "char", "unused": 0}
    assert stats["most_frequent"] == [{"token": "a", "count": 50}, {"token": "b", "count": 30}]
    assert [e["count"] for e in stats["least_frequent"]] == [10, 10]
    assert stats["coverage"] == {"4": 1.0}                # no top-10 below the vocabulary
    assert stats["characters"] == 100


def test_the_spec_preprocessing_is_what_is_counted(session):
    stats = session.data_stats(text_spec("AbA\nab\n" * 5, lowercase=True, newlines="space"))
    tokens = {e["token"]: e["count"] for e in stats["most_frequent"]}
    assert tokens == {"a": 15, "b": 10, " ": 10}


def test_word_level_unused_words_and_coverage(session):
    words = " ".join(["the"] * 50 + [f"w{i}" for i in range(20)] + ["rare"])
    stats = session.data_stats(text_spec(words, level="word", min_freq=1))
    assert stats["vocabulary"]["unused"] == 1                # <unk> never occurs
    assert stats["most_frequent"][0] == {"token": "the", "count": 50}
    assert stats["coverage"]["10"] == round(59 / 71, 4)


def test_line_datasets_report_sequence_lengths(session, tmp_path):
    (tmp_path / "l.txt").write_text("ab\nabcd\nabcdef\n", encoding="utf-8")
    spec = {"name": "lines", "dataset": {"type": "lines", "path": str(tmp_path / "l.txt"),
                                         "valid_fraction": 0},
            "model": {"cell": {"type": "gru", "hidden_size": 8}},
            "sampler": {"type": "bucket", "batch_size": 2}}
    lengths = session.data_stats(spec)["lengths"]
    assert (lengths["sequences"], lengths["min"], lengths["max"]) == (3, 3, 7)   # <bos> + line
    assert lengths["median"] == 5 and lengths["mean"] == 5.0


def test_the_command_prints_lines_and_json(tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(text_spec("hello world\n" * 20)), encoding="utf-8")
    runner = CliRunner()
    shown = runner.invoke(cli, ["data", str(spec), "--top", "3"])
    assert shown.exit_code == 0, shown.output
    assert "most frequent:  'l' 60, 'o' 40" in shown.output and "'\\n' 20" in shown.output
    as_json = runner.invoke(cli, ["data", str(spec), "--json"])
    assert json.loads(as_json.output)["tokens"]["total"] == 240
    bad = runner.invoke(cli, ["data", str(spec), "--set", "dataset.path=nope.txt"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
