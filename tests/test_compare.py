"""`seqgen compare`: variants in their own run directories, the report, rebuilding it
without training, continuing an interrupted sweep, and the CLI."""
import copy
import csv
import json
import os
import shutil
import signal

import pytest
import torch
from click.testing import CliRunner

import seqgen
import seqgen.cli as cli_module
from seqgen import checkpoint as ckpt
from seqgen.cli import cli
from seqgen.train import Trainer

SPEC = {
    "name": "mini",
    "seed": 0,
    "dataset": {"type": "synthetic", "num_chars": 2000},
    "model": {"embedding": {"type": "learned", "size": 8},
              "cell": {"type": "lstm", "hidden_size": 8}},
    "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 16},
    "train": {"epochs": 1, "log_every": 10},
    "generate": {"prompts": ["the ", "a "], "max_new_tokens": 8,
                 "strategies": [{"type": "greedy"}, {"type": "top-k", "k": 3}]},
    "sweep": {"grid": {"model.cell.type": ["rnn", "gru", "lstm"]}, "sample_tokens": 10},
}
NAMES = ["cell=rnn", "cell=gru", "cell=lstm"]
STEPS = 27     # one epoch: 1800 training tokens in windows of 4 x 16, from a random offset


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One finished comparison, shared; tests that change it work on a copy."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("c") / "out"
    return seqgen.Session(entry_points=False).compare(SPEC, out=out)


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    return path


def copy_of(result, tmp_path):
    return shutil.copytree(result.out, tmp_path / "copy")


def no_training(monkeypatch):
    def fail(self):
        raise AssertionError("trained")
    monkeypatch.setattr(Trainer, "fit", fail)


def mtimes(out):
    return {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}


class SignalIn:
    """Plugin: SIGINT to this process after optimizer step `step` of one variant's run,
    or (step None) as the run starts, before training listens for signals."""
    __name__ = "signal-in"

    def __init__(self, variant, step=None):
        self.variant, self.step, self.armed = variant, step, False

    @seqgen.hookimpl
    def on_event(self, event, session):
        if event.kind == "start":
            self.armed = event.data["run_dir"].endswith(self.variant)
            if self.armed and self.step is None:
                os.kill(os.getpid(), signal.SIGINT)
        elif self.armed and event.kind == "step" and event.data["step"] == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_each_variant_runs_in_its_own_directory_with_its_own_spec(done):
    assert sorted(p.name for p in done.out.iterdir()) == sorted(
        NAMES + ["compare.json", "report.md", "report.csv", "curves.png", "decoding.md"])
    for name, cell in zip(NAMES, ["rnn", "gru", "lstm"]):
        spec = json.loads((done.out / name / "spec.json").read_text())
        assert spec["model"]["cell"]["type"] == cell and "sweep" not in spec
        assert spec["name"] == f"mini-{name}"
        for f in ("last.safetensors", "best.safetensors", "metrics.jsonl", "samples.json"):
            assert (done.out / name / f).is_file()


def test_report_csv_has_one_row_per_variant_with_the_columns(done):
    with open(done.out / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["variant", "model.cell.type", "parameters", "steps", "stopped",
                             "valid_ppl_final", "valid_ppl_best", "tokens_per_second",
                             "train_seconds", "sample_distinct_2", "sample"]
    assert [(r["variant"], r["model.cell.type"], r["stopped"]) for r in rows] == [
        (n, c, "done") for n, c in zip(NAMES, ["rnn", "gru", "lstm"])]
    for row, name in zip(rows, NAMES):
        model = seqgen.load(done.out / name, entry_points=False)
        assert int(row["parameters"]) == model.model.num_parameters()
        progress = ckpt.load(done.out / name / "last.safetensors").state["trainer"]["progress"]
        assert int(row["steps"]) == progress["step"] == STEPS
        valid = [h["valid_perplexity"] for h in progress["history"] if h["event"] == "eval"]
        assert float(row["valid_ppl_final"]) == valid[-1]
        assert float(row["valid_ppl_best"]) == min(valid)
        assert float(row["tokens_per_second"]) == pytest.approx(
            progress["tokens"] / progress["seconds"])
        greedy = model.generate("the ", "greedy", max_new_tokens=10)[0]
        assert row["sample"] == "the " + greedy.text
        assert row["sample_distinct_2"] == str(greedy.distinct_2)
    # the rnn has fewer parameters than the gru, which has fewer than the lstm
    assert [int(r["parameters"]) for r in rows] == sorted(int(r["parameters"]) for r in rows)
    assert done.rows == [{**r, "parameters": int(r["parameters"]), "steps": int(r["steps"]),
                          **{k: float(r[k]) for k in ("valid_ppl_final", "valid_ppl_best",
                                                      "tokens_per_second", "train_seconds",
                                                      "sample_distinct_2")}}
                         for r in rows]


def test_report_markdown_and_png(done):
    md = (done.out / "report.md").read_text()
    assert done.report.table in md
    lines = done.report.table.splitlines()
    assert lines[0].startswith("| variant | model.cell.type | params | steps | stopped |")
    assert len(lines) == 2 + 3 and lines[3].startswith("| cell=gru | gru | ")
    assert (done.out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_decoding_shows_every_strategy_on_every_prompt_with_its_perplexity(done):
    text = (done.out / "decoding.md").read_text()
    section = text.split("## cell=gru\n")[1].split("## ")[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    model = seqgen.load(done.out / "cell=gru", entry_points=False)
    # as decoding.md draws them: all prompts in one batch, with the spec's seed
    sample = model.generate(["the ", "a "], {"type": "top-k", "k": 3}, 8, seed=0)[1]
    assert [(r[0], r[1]) for r in rows] == [
        ("| `the `", "greedy"), ("| `a `", "greedy"),
        ("| `the `", sample.strategy), ("| `a `", sample.strategy)]
    expected = torch.tensor(sample.logprobs).mean().neg().exp().item()
    assert rows[3][2] == f"{expected:.2f}" and rows[3][5] == f"`{sample.text}` |"
    assert (rows[3][3], rows[3][4]) == (f"{sample.distinct_1:.2f}", f"{sample.distinct_2:.2f}")


def test_report_only_rebuilds_the_same_report_without_training(done, tmp_path, monkeypatch):
    out = copy_of(done, tmp_path)
    before = {f: (out / f).read_text() for f in ("report.md", "report.csv", "decoding.md")}
    stamps = mtimes(out)
    for f in before:
        (out / f).unlink()
    no_training(monkeypatch)
    result = seqgen.Session(entry_points=False).compare(None, out=out, report_only=True)
    assert {f: (out / f).read_text() for f in before} == before
    assert mtimes(out) == stamps
    assert result.rows == done.rows


def test_rerunning_a_finished_comparison_only_rebuilds_the_report(done, tmp_path, monkeypatch):
    out = copy_of(done, tmp_path)
    stamps = mtimes(out)
    no_training(monkeypatch)
    events = []
    result = seqgen.Session(entry_points=False).compare(SPEC, out=out, emit=events.append)
    assert [e.data["action"] for e in events if e.kind == "variant"] == ["skip"] * 3
    assert mtimes(out) == stamps and result.report.table == done.report.table


def test_interrupted_sweep_continues_without_rerunning_finished_variants(tmp_path):
    torch.set_num_threads(1)
    cut = seqgen.Session([SignalIn("cell=gru", 5)], entry_points=False).compare(
        SPEC, out="o", handle_signals=True)
    assert (cut.interrupted, cut.variant, cut.report, cut.rows) == ("SIGINT", "cell=gru", None, [])
    assert not (tmp_path / "o" / "cell=lstm").exists()              # the sweep stopped
    assert not (tmp_path / "o" / "report.md").exists()
    state = ckpt.load(tmp_path / "o/cell=gru/last.safetensors").state["trainer"]["progress"]
    assert (state["step"], state["stopped"]) == (5, "interrupted:SIGINT")
    first = (tmp_path / "o/cell=rnn/last.safetensors").stat().st_mtime_ns

    events = []
    result = seqgen.Session(entry_points=False).compare(SPEC, out="o", emit=events.append)
    assert [e.data["action"] for e in events if e.kind == "variant"] == ["skip", "resume", "run"]
    assert [e.data["resumed_at_step"] for e in events if e.kind == "start"] == [5, 0]
    assert (tmp_path / "o/cell=rnn/last.safetensors").stat().st_mtime_ns == first
    assert [(r["variant"], r["stopped"], r["steps"]) for r in result.rows] == [
        (n, "done", STEPS) for n in NAMES]


def test_a_signal_before_training_stops_the_run_at_its_first_step(tmp_path):
    cut = seqgen.Session([SignalIn("cell=rnn")], entry_points=False).compare(
        SPEC, out="o", handle_signals=True)
    assert (cut.interrupted, cut.variant) == ("SIGINT", "cell=rnn")
    state = ckpt.load(tmp_path / "o/cell=rnn/last.safetensors").state["trainer"]["progress"]
    assert (state["step"], state["stopped"]) == (1, "interrupted:SIGINT")
    assert not (tmp_path / "o" / "cell=gru").exists()


def test_a_run_without_a_checkpoint_starts_again(done, tmp_path):
    out = copy_of(done, tmp_path)
    (out / "cell=gru" / "last.safetensors").unlink()     # as if stopped before its first save
    events = []
    result = seqgen.Session(entry_points=False).compare(SPEC, out=out, emit=events.append)
    assert [e.data["action"] for e in events if e.kind == "variant"] == ["skip", "restart", "skip"]
    timing = ("tokens_per_second", "train_seconds")
    assert [{k: v for k, v in r.items() if k not in timing} for r in result.rows] == [
        {k: v for k, v in r.items() if k not in timing} for r in done.rows]   # deterministic


def test_continuing_with_a_changed_spec_is_refused(done, tmp_path):
    out = copy_of(done, tmp_path)
    with pytest.raises(seqgen.SpecError) as e:
        seqgen.Session(entry_points=False).compare(SPEC, ["model.cell.hidden_size=9"], out=out)
    assert len(e.value.problems) == 3
    assert e.value.problems[0] == (f"cell=rnn: {out}/cell=rnn holds a run of another spec "
                                   f"(differs at $.model.cell.hidden_size); use another --out")


def test_invalid_variants_stop_everything_before_it_starts(tmp_path, spec_file):
    bad = copy.deepcopy(SPEC)
    bad["sweep"]["grid"]["model.cell.hidden_size"] = [0]
    spec_file.write_text(json.dumps(bad))
    result = CliRunner().invoke(cli, ["compare", str(spec_file), "--out", "o"])
    assert result.exit_code == 2
    for name in NAMES:
        assert f"  {name},hidden_size=0: $.model.cell.hidden_size: 0 is less than the minimum" \
               in result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_prints_the_table_and_report_only_prints_it_again(spec_file, tmp_path, monkeypatch):
    one = copy.deepcopy(SPEC)
    one.pop("sweep")
    spec_file.write_text(json.dumps(one))
    runner = CliRunner()
    ran = runner.invoke(cli, ["compare", str(spec_file), "--sweep", "sweep.json"])
    assert ran.exit_code == 2 and "sweep.json" in ran.stderr   # the file is read, not ignored
    (tmp_path / "sweep.json").write_text(json.dumps({"variants": [
        {"name": "small", "set": {"model.cell.hidden_size": 4}}]}))
    ran = runner.invoke(cli, ["compare", str(spec_file), "--sweep", "sweep.json", "--out", "o"])
    assert ran.exit_code == 0, ran.output
    table = (tmp_path / "o" / "report.md").read_text().split("\n\n")[1]
    assert table.startswith("| variant | model.cell.hidden_size |")
    assert table in ran.stdout and "== variant 1/1 small: run (o/small)" in ran.stdout
    no_training(monkeypatch)
    again = runner.invoke(cli, ["compare", "--report-only", "o"])
    assert again.exit_code == 0, again.output
    assert again.stdout.strip().startswith(table)


def test_cli_needs_a_spec_or_report_only(spec_file, tmp_path):
    for args in ([], [str(spec_file), "--report-only", str(tmp_path)]):
        result = CliRunner().invoke(cli, ["compare", *args])
        assert result.exit_code == 2 and "give a SPEC" in result.stderr
    result = CliRunner().invoke(cli, ["compare", "--report-only", str(tmp_path)])
    assert result.exit_code == 1 and "not a comparison directory (compare.json not found)" \
        in result.stderr


def test_cli_interruption_exits_130_and_says_how_to_continue(spec_file, monkeypatch):
    class Interrupting(seqgen.Session):
        def __init__(self, *a, **k):
            super().__init__([SignalIn("cell=rnn", 3)], entry_points=False)

    monkeypatch.setattr(cli_module, "Session", Interrupting)
    result = CliRunner().invoke(cli, ["compare", str(spec_file), "--set", "seed=1",
                                      "--out", "my out"])
    assert result.exit_code == 130
    assert "SIGINT: sweep stopped in variant cell=rnn; checkpoints saved." in result.stderr
    assert (f"Continue with: seqgen compare {spec_file} --set seed=1 --out 'my out'"
            in result.stderr)


@pytest.mark.slow
def test_parallel_jobs_give_the_same_report(done, tmp_path):
    result = seqgen.Session(entry_points=False).compare(SPEC, out="o", jobs=2)
    assert [(r["variant"], r["stopped"]) for r in result.rows] == [(n, "done") for n in NAMES]
    # one torch thread per worker on two cores, as in the tests: the same numbers
    assert [r["valid_ppl_best"] for r in result.rows] == pytest.approx(
        [r["valid_ppl_best"] for r in done.rows])


def test_damaged_comparison_directories_are_clear_errors(tmp_path):
    from click.testing import CliRunner
    from seqgen.cli import cli
    (tmp_path / "cmp").mkdir()
    for content, message in (("{bad", "not valid JSON"), ("{}", "damaged (expected name")):
        (tmp_path / "cmp" / "compare.json").write_text(content)
        result = CliRunner().invoke(cli, ["compare", "--report-only", str(tmp_path / "cmp")])
        assert result.exit_code == 1
        assert result.stderr.startswith(f"Error: {tmp_path / 'cmp' / 'compare.json'}: {message}")


def test_a_sweep_over_a_variable_reaches_the_fields_that_use_it(session):
    spec = {**copy.deepcopy(SPEC), "vars": {"h": 8}, "name": "v",
            "sweep": {"grid": {"vars.h": [4, 12]}, "sample_tokens": 2}}
    spec["model"]["cell"]["hidden_size"] = "${vars.h}"
    spec["train"]["max_steps"] = 1
    result = session.compare(spec, out="vars-sweep")
    sizes = {d.name: json.loads((d / "spec.json").read_text())["model"]["cell"]["hidden_size"]
             for d in result.out.iterdir() if (d / "spec.json").is_file()}
    assert sizes == {"h=4": 4, "h=12": 12}
