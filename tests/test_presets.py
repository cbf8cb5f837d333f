"""Presets in the registry: the built-ins, the register_presets hook, `seqgen run NAME`,
`seqgen presets`, `seqgen init`, specs from standard input, and `validate --explain`."""
import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

import seqgen
from seqgen import hookimpl
from seqgen.cli import cli

BUILTIN = {"quickstart", "hello", "shakespeare", "d2l-rnn-scratch", "d2l-rnn-concise",
           "d2l-gru", "d2l-lstm", "char-rnn", "reversal", "d2l-seq2seq"}
FAST = ["train.epochs=1", "dataset.num_chars=3000", "model.cell.hidden_size=8",
        "train.sample_every=null", "generate.max_new_tokens=5"]


def invoke(*args, input=None):
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_hook_register_presets():
    class Mine:
        __name__ = "mine"

        @hookimpl
        def register_presets(self, register):
            register("tiny-qs", {"extends": "quickstart", "train": {"epochs": 1}}, "one epoch",
                     needs={"name": "what to call the run"})
    s = seqgen.Session([Mine()], entry_points=False)
    [row] = [p for p in s.presets() if p["name"] == "tiny-qs"]
    assert row == {"name": "tiny-qs", "description": "one epoch",
                   "needs": {"name": "what to call the run"}, "plugin": "mine",
                   "distribution": "direct", "version": ""}
    spec = s.resolve("tiny-qs", ["name=mine"])
    assert (spec["train"]["epochs"], spec["dataset"]["type"], spec["name"]) == (1, "synthetic", "mine")


def test_builtin_presets_are_all_valid_and_listed(session):
    assert session.load_failures == []
    rows = {p["name"]: p for p in session.presets()}
    assert set(rows) == BUILTIN
    assert all(r["description"] and r["plugin"] == "seqgen_plugins.presets" for r in rows.values())
    assert {n for n, r in rows.items() if r["needs"]} == BUILTIN - {"quickstart", "hello", "reversal"}


@pytest.mark.parametrize("name, cell, hidden", [("d2l-rnn-scratch", "rnn-scratch", 512),
                                                ("d2l-rnn-concise", "rnn", 256),
                                                ("d2l-gru", "gru", 256), ("d2l-lstm", "lstm", 256)])
def test_d2l_presets_use_the_textbooks_hyperparameters(session, name, cell, hidden):
    spec = session.resolve(name, ["dataset.path=corpus.txt"])
    assert spec["dataset"] == {**spec["dataset"], "type": "text", "level": "char", "clean": "d2l",
                               "max_chars": 10000, "path": "corpus.txt"}
    assert spec["model"]["embedding"]["type"] == "one-hot"
    assert (spec["model"]["cell"]["type"], spec["model"]["cell"]["hidden_size"]) == (cell, hidden)
    assert spec["sampler"] == {**spec["sampler"], "type": "sequential", "batch_size": 32,
                               "num_steps": 35}
    train = spec["train"]
    assert (train["epochs"], train["clip_norm"]) == (500, 1.0)
    assert (train["optimizer"]["type"], train["optimizer"]["lr"]) == ("sgd", 1.0)


def test_d2l_cleaning_reads_the_time_machine_as_the_textbook_does(session, tmp_path):
    (tmp_path / "tm.txt").write_text("The Time Machine, by H. G. Wells [1898]\n\n\nI\n"
                                     "The Time Traveller (for so it will be convenient)\n")
    data = session.build("dataset", {"type": "text", "path": str(tmp_path / "tm.txt"),
                                     "clean": "d2l", "valid_fraction": 0})
    assert data.vocab.decode(data.train.ids.tolist()) == (
        "the time machine by h g wellsithe time traveller for so it will be convenient")


def test_an_invalid_preset_is_its_plugins_load_failure():
    class Bad:
        __name__ = "bad-presets"

        @hookimpl
        def register_presets(self, register):
            register("broken", {"extends": "quickstart", "model": {"cell": {"hidden_size": -3}}})
            register("fine", {"extends": "quickstart"})
    s = seqgen.Session([Bad()], entry_points=False)
    assert s.registry.has_preset("fine") and not s.registry.has_preset("broken")
    [failure] = s.load_failures
    assert failure.error == ("preset 'broken' is invalid: invalid spec: $.model.cell.hidden_size:"
                             " -3 is less than the minimum of 1")
    with pytest.raises(seqgen.PluginError, match="preset 'broken' is invalid"):
        seqgen.Session([Bad()], entry_points=False, strict=True)


# -- the CLI ----------------------------------------------------------------------------------
def test_run_a_preset_by_name_saves_a_fully_resolved_spec():
    code, out, err = invoke("run", "quickstart", *sum((["--set", o] for o in FAST), []),
                            "--set", "vars.tag=x", "--set", "name=qs-${vars.tag}", "--out", "run")
    assert code == 0, err
    saved = json.loads(open("run/spec.json").read())
    assert saved["name"] == "qs-x" and "extends" not in saved and "${" not in json.dumps(saved)
    assert seqgen.Session(entry_points=False).resolve("run/spec.json") == saved


def test_an_unknown_name_is_neither_file_nor_preset():
    code, _, err = invoke("run", "quickstrat")
    assert code == 2
    assert err.strip().endswith("quickstrat: no such spec file or preset. Presets: char-rnn, "
                                "d2l-gru, d2l-lstm, d2l-rnn-concise, d2l-rnn-scratch, d2l-seq2seq, "
                                "hello, quickstart, reversal, shakespeare. Did you mean "
                                "'quickstart'?")


def test_validate_and_explain_read_standard_input():
    spec = json.dumps({"extends": "hello", "vars": {"n": 3}, "train": {"epochs": "${vars.n}"}})
    assert invoke("validate", "-", input=spec)[:2] == (0, "-: valid\n")
    code, out, _ = invoke("validate", "-", "--explain", "--json", input=spec)
    fields = {f["path"]: f for f in json.loads(out)["fields"]}
    assert fields["$.train.epochs"] == {"path": "$.train.epochs", "value": 3, "source": "stdin"}
    assert fields["$.model.cell.type"]["name"] == "hello"
    code, out, _ = invoke("validate", "-", "--explain", input=spec)
    assert code == 0
    line = next(l for l in out.splitlines() if l.strip().startswith("$.model.cell.hidden_size"))
    assert line.split()[1:] == ["8", "preset", "'hello'"]
    assert re.search(r"\$\.model\.cell +cell 'rnn-scratch' from plugin seqgen_plugins\.cells "
                     r"\(seqgen \d", out)


def test_run_reads_standard_input():
    spec = json.dumps({"extends": "quickstart", "name": "from-stdin"})
    code, out, err = invoke("run", "-", *sum((["--set", o] for o in FAST), []), "--out", "r",
                            input=spec)
    assert code == 0, err
    assert json.loads(open("r/spec.json").read())["name"] == "from-stdin"


def test_presets_lists_name_description_needs_and_plugin():
    code, out, _ = invoke("presets", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == BUILTIN
    code, out, _ = invoke("presets")
    assert "d2l-gru" in out and "needs --set dataset.path=...: The Time Machine" in out


def test_init_writes_a_described_schema_linked_spec_that_validates(tmp_path):
    code, out, err = invoke("init", "d2l-gru", "-o", "mine/spec.json")
    assert code == 0, err
    spec = json.loads(open("mine/spec.json").read())
    schema = json.loads(open("mine/seqgen.schema.json").read())
    assert spec["$schema"] == "./seqgen.schema.json"
    assert "Fill in before running: dataset.path" in spec["$comment"][""]
    assert spec["dataset"]["path"].startswith("<required: The Time Machine")
    assert spec["model"]["cell"]["$comment"]["hidden_size"].startswith("Features in the hidden")
    assert list(Draft202012Validator(schema).iter_errors(spec)) == []   # editors agree
    code, out, _ = invoke("validate", "mine/spec.json", "--resolved",
                          "--set", "dataset.path=corpus.txt")
    resolved = json.loads(out)
    assert resolved == seqgen.Session(entry_points=False).resolve(
        "d2l-gru", ["dataset.path=corpus.txt"])
    code, _, err = invoke("init", "d2l-gru", "-o", "mine/spec.json")
    assert code == 2 and "exists; choose another -o, or add --force" in err


@pytest.mark.slow
def test_init_to_stdout_pipes_into_run_as_a_real_process(tmp_path):
    init = subprocess.run([sys.executable, "-m", "seqgen", "init", "hello", "-o", "-"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert init.returncode == 0, init.stderr
    run = subprocess.run([sys.executable, "-m", "seqgen", "run", "-", "--set", "train.epochs=2",
                          "--out", "hello-run"], input=init.stdout, capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "hello-run" / "spec.json").read_text())["train"]["epochs"] == 2


def test_plugins_lists_everything_under_strict_loading_then_fails(monkeypatch):
    from importlib import metadata

    class Point:
        name, value, dist = "broken", "x:y", type("D", (), {"name": "broken-dist", "version": "1"})

        def load(self):
            raise ImportError("gone")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [Point()] if group == "seqgen" else [])
    monkeypatch.delenv("SEQGEN_PLUGINS")
    code, out, err = invoke("--strict-plugins", "plugins")
    assert code == 1 and "seqgen_plugins.cells (seqgen" in out
    assert "FAILED broken (distribution broken-dist): ImportError: gone" in out
    assert err.strip().endswith("Error: plugin 'broken' from distribution 'broken-dist' failed "
                                "to load: ImportError: gone (strict plugin loading is on)")


@pytest.mark.parametrize("args, message", [
    (["validate", "hello", "--json"], "--json goes with --explain, and --resolved without it"),
    (["validate", "hello", "--explain", "--resolved"], "--json goes with --explain"),
    (["plugins", "new", "cell", "Bad Name"], "is not a valid plugin name"),
    (["init", "hello", "-o", "."], "is a directory; give a file name"),
])
def test_usage_errors_exit_2(args, message):
    code, _, err = invoke(*args)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_file_system_refusal_is_an_error_not_a_bug(tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = invoke("init", "hello", "-o", str(tmp_path / "file" / "spec.json"))
    assert code == 1 and "this is a bug" not in err and str(tmp_path / "file") in err


def test_an_extends_chain_has_a_depth_limit(tmp_path):
    for i in range(70):
        (tmp_path / f"s{i}.json").write_text(json.dumps({"extends": f"s{i + 1}.json"}))
    (tmp_path / "s70.json").write_text(json.dumps({"extends": "hello"}))
    code, _, err = invoke("validate", str(tmp_path / "s0.json"))
    assert code == 2 and "$.extends: a chain of more than 64 specs" in err
