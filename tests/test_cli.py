"""The CLI through click's CliRunner: exit codes, one-paragraph errors, no tracebacks."""
import json

import pytest
from click.testing import CliRunner

from seqgen.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def spec_file(tmp_path, tiny_spec):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_spec))
    return path


@pytest.fixture
def trained(runner, spec_file):
    result = runner.invoke(cli, ["run", str(spec_file), "--out", "run", "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    return "run"


def test_validate_ok(runner, spec_file):
    result = runner.invoke(cli, ["validate", str(spec_file)])
    assert (result.exit_code, result.stdout) == (0, f"{spec_file}: valid\n")


def test_validate_resolved_prints_defaults(runner, spec_file):
    result = runner.invoke(cli, ["validate", str(spec_file), "--resolved",
                                 "--set", "train.epochs=7"])
    resolved = json.loads(result.stdout)
    assert resolved["train"]["epochs"] == 7 and resolved["train"]["clip_norm"] == 1.0


def test_schema_error_exits_2_with_path_and_no_traceback(runner, spec_file):
    result = runner.invoke(cli, ["validate", str(spec_file), "--set", "model.cell.hidden_size=-3"])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {spec_file}: invalid spec: $.model.cell.hidden_size: "
                             "-3 is less than the minimum of 1\n")
    assert "Traceback" not in result.output


def test_malformed_json_reports_line_and_column(runner, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"dataset": {"type": "synthetic"},}')
    result = runner.invoke(cli, ["run", str(bad)])
    assert result.exit_code == 2
    assert "malformed JSON at line 1, column 35" in result.stderr


def test_unknown_component_exits_2_and_suggests(runner, spec_file):
    result = runner.invoke(cli, ["run", str(spec_file), "--set", "sampler.type=sequental"])
    assert result.exit_code == 2
    assert "$.sampler.type: Can't find 'sequental' among samplers" in result.stderr
    assert "Did you mean 'sequential'?" in result.stderr


def test_missing_corpus_exits_1_naming_the_file(runner, spec_file, tmp_path):
    result = runner.invoke(cli, ["run", str(spec_file), "--out", "r",
                                 "--set", 'dataset={"type": "text", "path": "nope.txt"}'])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: nope.txt: no such file")
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()  # nothing is left behind by a run that never started


def test_debug_shows_the_traceback(runner, spec_file):
    result = runner.invoke(cli, ["--debug", "run", str(spec_file), "--out", "r",
                                 "--set", 'dataset={"type": "text", "path": "nope.txt"}'])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr


def test_run_writes_everything_into_one_directory(runner, trained, tmp_path):
    files = sorted(p.name for p in (tmp_path / trained).iterdir())
    assert files == [".lock", "best.safetensors", "last.safetensors", "metrics.jsonl",
                     "plot.png", "samples.json", "spec.json", "vocab.json"]  # .lock: lock.py


def test_run_refuses_to_overwrite_a_finished_run(runner, trained, spec_file, tmp_path):
    before = (tmp_path / trained / "last.safetensors").read_bytes()
    result = runner.invoke(cli, ["run", str(spec_file), "--out", trained])
    assert result.exit_code == 2 and "already holds a run" in result.stderr
    assert (tmp_path / trained / "last.safetensors").read_bytes() == before


def test_resolved_spec_reruns_unchanged(runner, trained):
    result = runner.invoke(cli, ["run", f"{trained}/spec.json", "--out", "again"])
    assert result.exit_code == 0, result.output
    first = [json.loads(l) for l in open(f"{trained}/metrics.jsonl")]
    second = [json.loads(l) for l in open("again/metrics.jsonl")]
    assert [r.get("train_loss") for r in first] == [r.get("train_loss") for r in second]
    assert [r.get("valid_loss") for r in first] == [r.get("valid_loss") for r in second]


def test_plugins_json(runner):
    info = json.loads(runner.invoke(cli, ["plugins", "--json"]).stdout)
    names = {c["name"] for p in info["plugins"] for c in p["components"]}
    assert {"lstm", "synthetic", "sequential", "greedy"} <= names
    assert info["failures"] == []


def test_schema_prints_a_json_schema(runner):
    schema = json.loads(runner.invoke(cli, ["schema"]).stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "lstm" in schema["properties"]["model"]["else"]["properties"]["cell"]["properties"]["type"]["enum"]


def test_generate_is_deterministic_per_seed(runner, trained):
    args = ["generate", trained, "--prompt", "the ", "--strategy", "temperature",
            "--set", "temperature=1.0", "--max-new-tokens", "30", "--json"]
    a = json.loads(runner.invoke(cli, args + ["--seed", "3"]).stdout)
    b = json.loads(runner.invoke(cli, args + ["--seed", "3"]).stdout)
    c = json.loads(runner.invoke(cli, args + ["--seed", "4"]).stdout)
    assert a == b and a != c
    assert len(a[0]["logprobs"]) == 30


def test_prompt_outside_the_vocabulary_names_characters_and_positions(runner, trained):
    result = runner.invoke(cli, ["generate", trained, "--prompt", "the Zoo!"])
    assert result.exit_code == 1
    assert "prompt 1 ('the Zoo!'): 2 token(s) not in the vocabulary: 'Z' at 4, '!' at 7" in result.stderr


def test_prompt_outside_the_vocabulary_can_be_skipped(runner, trained):
    result = runner.invoke(cli, ["generate", trained, "--prompt", "the Zoo", "--on-unknown",
                                 "skip", "--max-new-tokens", "5", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["prompt"] == "the Zoo"


def test_corrupt_checkpoint_is_a_clear_error(runner, tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    result = runner.invoke(cli, ["generate", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {bad}: not a readable safetensors checkpoint")
    assert "Traceback" not in result.output


def test_eval_reports_perplexity(runner, trained, tmp_path):
    (tmp_path / "t.txt").write_text("the cat sees a dog. the dog likes a tree.")
    result = runner.invoke(cli, ["eval", trained, "--text", "t.txt", "--json"])
    out = json.loads(result.stdout)
    assert out["tokens"] == 40 and 1.0 < out["perplexity"] < 30


def test_eval_text_that_is_not_utf8_names_the_byte(runner, trained, tmp_path):
    (tmp_path / "t.txt").write_bytes(b"the cat\xff sees")
    result = runner.invoke(cli, ["eval", trained, "--text", "t.txt"])
    assert result.exit_code == 1
    assert result.stderr == "Error: t.txt: not valid UTF-8 at byte 7 (0xff)\n"
