"""Interrupt and resume: the continued run ends with exactly the uninterrupted losses."""
import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

import seqgen
from seqgen.cli import cli


class SignalAt:
    """Plugin that sends this process a signal after optimizer step `step`."""
    __name__ = "signal-at"

    def __init__(self, step, signum=signal.SIGINT):
        self.step, self.signum = step, signum

    @seqgen.hookimpl
    def on_event(self, event, session):
        if event.kind == "step" and event.data["step"] == self.step:
            os.kill(os.getpid(), self.signum)


def losses(history):
    return [(h["event"], h["step"], h.get("train_loss"), h.get("valid_loss")) for h in history]


@pytest.mark.parametrize("sampler, stop_at", [("sequential", 7), ("random", 4), ("sequential", 10)])
def test_interrupted_and_resumed_run_ends_exactly_like_an_uninterrupted_one(
        tiny_spec, sampler, stop_at):
    # dropout draws from the run's generator, the sequential sampler carries state across the
    # interruption, and step 10 is an epoch boundary (10 batches per epoch here).
    tiny_spec["model"]["cell"].update(num_layers=2, dropout=0.3)
    tiny_spec["sampler"] = {"type": sampler, "batch_size": 4, "num_steps": 16}
    tiny_spec["train"].update(epochs=3, strategy={"type": "teacher-forcing", "ratio": 0.8})
    whole = seqgen.Session(entry_points=False).run(tiny_spec, out="whole")

    first = seqgen.Session([SignalAt(stop_at)], entry_points=False).run(tiny_spec, out="cut",
                                                                    handle_signals=True)
    assert first.interrupted and first.train.step == stop_at
    assert first.train.stopped == "interrupted:SIGINT"
    resumed = seqgen.Session(entry_points=False).resume("cut")
    assert not resumed.interrupted
    assert losses(resumed.train.history) == losses(whole.train.history)
    rows = [json.loads(line) for line in open("cut/metrics.jsonl")]
    whole_rows = [json.loads(line) for line in open("whole/metrics.jsonl")]
    assert ([r for r in rows if r["event"] == "step"]                # each step once, with
            == [r for r in whole_rows if r["event"] == "step"])      # the same grad norms
    rows = [r for r in rows if r["event"] != "step"]
    assert losses(rows) == losses(whole.train.history)
    assert [s.text for s in resumed.samples] == [s.text for s in whole.samples]


def test_cli_interrupt_prints_the_resume_command_and_resume_finishes(tiny_spec, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec))
    runner = CliRunner()
    session_cls = seqgen.Session

    class Interrupting(session_cls):
        def __init__(self, *a, **k):
            super().__init__([SignalAt(3)], entry_points=False)

    import seqgen.cli as cli_module
    cli_module.Session = Interrupting
    try:
        result = runner.invoke(cli, ["run", str(spec), "--out", "r"])
    finally:
        cli_module.Session = session_cls
    assert result.exit_code == 130
    assert "SIGINT: stopped at step 3; checkpoint saved." in result.stderr
    assert "Resume with: seqgen run --resume r" in result.stderr
    resumed = runner.invoke(cli, ["run", "--resume", "r"])
    assert resumed.exit_code == 0, resumed.output
    again = runner.invoke(cli, ["run", "--resume", "r"])
    assert again.exit_code == 1
    assert "the run already finished (2 epochs" in again.stderr
    assert "--set train.epochs=12" in again.stderr
    longer = runner.invoke(cli, ["run", "--resume", "r", "--set", "train.epochs=3"])
    assert longer.exit_code == 0, longer.output
    assert json.load(open("r/spec.json"))["train"]["epochs"] == 3


def test_resume_needs_a_run_directory(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--resume", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a run directory (spec.json not found)" in result.stderr


def test_run_needs_a_spec_or_resume():
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 2 and "give a SPEC" in result.stderr


@pytest.mark.slow
def test_sigterm_in_a_real_process_saves_and_resumes(tiny_spec, tmp_path):
    tiny_spec["train"].update(epochs=50, log_every=1)
    (tmp_path / "spec.json").write_text(json.dumps(tiny_spec))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "seqgen", "run", "spec.json", "--out", "r"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    for line in proc.stdout:                 # wait until training is really under way
        if line.startswith("step      5"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGTERM: stopped at step" in err and "Resume with: seqgen run --resume r" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "r").iterdir()          # no temporary files
                  if p.name.startswith(".") and p.name != ".lock") == []
    state = seqgen.checkpoint.load(tmp_path / "r" / "last.safetensors").state
    assert state["step"] >= 5
    done = subprocess.run([sys.executable, "-m", "seqgen", "run", "--resume", "r",
                           "--set", f"train.epochs={state['epoch'] + 1}"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming at step {state['step']}" in done.stdout


def test_resume_refuses_data_whose_vocabulary_changed(tiny_spec, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sees the dog. " * 60)
    tiny_spec["dataset"] = {"type": "text", "path": str(corpus)}
    first = seqgen.Session([SignalAt(2)], entry_points=False).run(tiny_spec, out="r",
                                                                  handle_signals=True)
    assert first.interrupted
    corpus.write_text("the cat sees the dog! " * 60)       # '.' became '!'
    with pytest.raises(seqgen.CheckpointError) as info:
        seqgen.Session(entry_points=False).resume("r")
    assert str(info.value) == (
        "r: the data's vocabulary differs from the checkpoint's: 1 token(s) not in the "
        "model's vocabulary: '!'; 1 model token(s) absent from the data: '.'")
