"""One writer per run, and interruption at any moment leaves a resumable run.

Signals and exit codes are checked on real processes: `python -m seqgen`, or for moments
with no output of their own (reading the data) a small driver that runs the same CLI with
a slow step added and says when it is there. Processes are synchronised on what they
print, never on sleeps.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import seqgen
from seqgen.cli import cli

TIMEOUT = 120          # seconds for any one wait on a child process (2 busy cores)


def child_env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "SEQGEN_PLUGINS": "",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Child:
    """A subprocess whose stdout lines can be waited for, stderr collected."""

    def __init__(self, args: list[str], cwd: Path):
        self.proc = subprocess.Popen(args, cwd=cwd, env=child_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.out: list[str] = []
        self.err: list[str] = []
        self.lines: queue.Queue = queue.Queue()
        self.readers = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out, True),
                                         daemon=True),
                        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err, False),
                                         daemon=True)]
        for r in self.readers:
            r.start()

    def _pump(self, stream, store: list, forward: bool) -> None:
        for line in stream:
            store.append(line)
            if forward:
                self.lines.put(line)
        if forward:
            self.lines.put(None)

    def wait_for(self, wanted, what: str = "") -> str:
        """The next stdout line for which wanted(line) (or that starts with wanted)."""
        test = wanted if callable(wanted) else (lambda line: line.startswith(wanted))
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                self.finish()
                raise AssertionError(f"timed out waiting for {what or wanted!r}\n{self.log()}")
            if line is None:
                self.finish()
                raise AssertionError(f"ended before {what or wanted!r}\n{self.log()}")
            if test(line):
                return line

    def signal(self, signum) -> None:
        os.kill(self.pid, signum)

    def finish(self) -> tuple[int, str, str]:
        rc = self.proc.wait(timeout=TIMEOUT)
        for r in self.readers:
            r.join(timeout=TIMEOUT)
        return rc, "".join(self.out), "".join(self.err)

    def log(self) -> str:
        return (f"rc {self.proc.returncode}\n--- stdout\n{''.join(self.out)}"
                f"--- stderr\n{''.join(self.err)}")


def seqgen_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "seqgen", *args]


# A driver for moments that print nothing: the real CLI, with a slow step added where
# asked ("load": reading the dataset; "train": the step event of step 3). There it prints
# "slow", waits for a signal (the stop handler giving way to the default one is what the
# driver can see of it), prints "signal seen", then goes on ("once") or holds for a
# second signal ("hold").
DRIVER = textwrap.dedent('''
    import signal, sys, time
    import seqgen, seqgen.cli as cli

    where, mode = sys.argv[1], sys.argv[2]

    def slow():
        before = signal.getsignal(signal.SIGINT)
        print("slow", flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and signal.getsignal(signal.SIGINT) is before:
            time.sleep(0.005)
        print("signal seen", flush=True)
        while mode == "hold" and time.monotonic() < deadline:
            time.sleep(0.005)

    class Slow(seqgen.Session):
        def __init__(self, *args, **kwargs):
            super().__init__([Hook()], **kwargs)

        def build(self, kind, *args, **kwargs):
            if where == "load" and kind == "dataset":
                slow()
            return super().build(kind, *args, **kwargs)

    class Hook:
        __name__ = "slow-step"

        @seqgen.hookimpl
        def on_event(self, event):
            if where == "train" and event.kind == "step" and event.data["step"] == 3:
                slow()

    cli.Session = Slow
    cli.main(sys.argv[3:])
''')


@pytest.fixture
def spec_file(tmp_path, tiny_spec) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_spec))
    return path


@pytest.fixture
def driver(tmp_path) -> Path:
    path = tmp_path / "driver.py"
    path.write_text(DRIVER)
    return path


def driven(driver: Path, where: str, mode: str, *args) -> Child:
    return Child([sys.executable, str(driver), where, mode, *args], driver.parent)


def losses(rows):
    return [(r["event"], r["step"], r.get("train_loss"), r.get("valid_loss")) for r in rows]


def metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl's epoch and eval records (not the one per step)."""
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r["event"] != "step"]


def stamps(run_dir: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run_dir.iterdir()
            if p.is_file() and p.name != ".lock"}


# -- one writer per run ---------------------------------------------------------------------
def test_the_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    from seqgen.lock import RunInUse, RunLock, check_free
    first = RunLock(tmp_path).acquire()
    assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(RunInUse) as info:
        RunLock(tmp_path).acquire()            # another open file: refused, even in-process
    assert info.value.pid == os.getpid() and info.value.exit_code == 1
    assert str(info.value).startswith(f"{tmp_path}: in use by process {os.getpid()}, which "
                                      f"is training in it")
    with pytest.raises(RunInUse):
        check_free(tmp_path)
    first.release()
    check_free(tmp_path)
    with RunLock(tmp_path):                    # free again: a stale .lock file is no lock
        pass


def test_a_planted_lock_symlink_is_not_written_through(tmp_path):
    from seqgen.lock import RunLock
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(victim)
    with pytest.raises(OSError):
        RunLock(tmp_path / "run").acquire()
    assert victim.read_text() == "keep me"


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_killed_holder_does_not_block(tmp_path, tiny_spec):
    tiny_spec["dataset"]["num_chars"] = 100_000          # 1,400 steps to the first checkpoint
    tiny_spec["train"].update(epochs=50, log_every=1)
    (tmp_path / "spec.json").write_text(json.dumps(tiny_spec))
    first = Child(seqgen_cmd("run", "spec.json", "--out", "r"), tmp_path)
    first.wait_for("step      3")
    runner = CliRunner()
    for args in (["run", "--resume", "r"], ["run", "spec.json", "--out", "r"]):
        second = runner.invoke(cli, args)
        assert second.exit_code == 1, (args, second.output)
        assert f"r: in use by process {first.pid}, which is training in it" in second.stderr
        assert "Traceback" not in second.output
    first.signal(signal.SIGKILL)              # before its first checkpoint
    assert first.finish()[0] == -signal.SIGKILL
    assert not (tmp_path / "r" / "last.safetensors").exists()
    # the dead process's lock does not block, and the run is not a dead end: it starts again
    again = runner.invoke(cli, ["run", "--resume", "r", "--set", "train.max_steps=4"])
    assert again.exit_code == 0, again.output
    assert "training it again from the beginning with its spec.json" in again.stderr
    assert [(r["event"], r["step"]) for r in metrics(tmp_path / "r")] == [("epoch", 4),
                                                                         ("eval", 4)]


# -- killed before the first checkpoint -----------------------------------------------------
def test_resume_before_the_first_checkpoint_starts_again_with_the_same_spec(tiny_spec):
    whole = seqgen.Session(entry_points=False).run(tiny_spec, out="whole")
    cut = Path("cut")                          # what a kill -9 in the first epoch leaves
    cut.mkdir()
    shutil.copy("whole/spec.json", cut / "spec.json")
    shutil.copy("whole/best.safetensors", cut / "best.safetensors")
    (cut / "metrics.jsonl").write_text(json.dumps(metrics(Path("whole"))[0]) + "\n{\"ev")
    result = CliRunner().invoke(cli, ["run", "--resume", "cut"])
    assert result.exit_code == 0, result.output
    assert ("warning: cut: the run stopped before its first checkpoint (no last.safetensors); "
            "training it again from the beginning with its spec.json") in result.stderr
    assert losses(metrics(cut)) == losses(whole.train.history)
    assert json.loads((cut / "samples.json").read_text()) == [s.to_dict() for s in whole.samples]


def test_resume_after_training_but_before_the_samples_finishes_the_run(tiny_spec):
    tiny_spec["train"]["max_steps"] = 30
    whole = seqgen.Session(entry_points=False).run(tiny_spec, out="r")
    os.unlink("r/samples.json")                # as if killed while generating
    events = []
    seqgen.Session(entry_points=False).resume("r", emit=events.append)
    assert not [e for e in events if e.kind == "step"]               # trains nothing more
    assert any("training had finished" in e.data["message"] for e in events
               if e.kind == "warning")
    assert json.loads(Path("r/samples.json").read_text()) == [s.to_dict() for s in whole.samples]
    assert losses(metrics(Path("r"))) == losses(whole.train.history)


# -- signals --------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigint_while_reading_the_data_exits_130_and_writes_nothing(tmp_path, driver,
                                                                     spec_file):
    child = driven(driver, "load", "once", "run", "spec.json", "--out", "r")
    child.wait_for("slow")
    child.signal(signal.SIGINT)
    rc, out, err = child.finish()
    assert rc == 130, child.log()
    assert "Traceback" not in err and "Aborted" not in err
    assert "Error: SIGINT: interrupted before training started; nothing was written" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_sigint_while_a_resume_reads_the_data_changes_nothing(tmp_path, driver, tiny_spec):
    tiny_spec["train"]["epochs"] = 1
    seqgen.Session(entry_points=False).run(tiny_spec, out="r")
    before = stamps(tmp_path / "r")
    child = driven(driver, "load", "once", "run", "--resume", "r", "--set", "train.epochs=2")
    child.wait_for("slow")
    child.signal(signal.SIGINT)
    rc, out, err = child.finish()
    assert rc == 130, child.log()
    assert "Traceback" not in err
    assert ("SIGINT: interrupted before training resumed; r is unchanged (continue it with: "
            "seqgen run --resume r)") in err
    assert stamps(tmp_path / "r") == before


@pytest.mark.slow
@pytest.mark.parametrize("where", ["load", "train"])
def test_a_second_sigint_exits_130_at_once(tmp_path, driver, spec_file, where):
    child = driven(driver, where, "hold", "run", "spec.json", "--out", "r")
    child.wait_for("slow")
    child.signal(signal.SIGINT)
    child.wait_for("signal seen")
    child.signal(signal.SIGINT)
    rc, out, err = child.finish()
    assert rc == 130, child.log()
    assert "Traceback" not in err and "Aborted" not in err
    if where == "load":
        assert err.strip() == "Error: interrupted"
        assert not (tmp_path / "r").exists()
    else:
        assert ("Error: interrupted: stopped at once, without saving; continue from the last "
                "checkpoint with: seqgen run --resume r") in err


def test_a_signal_while_a_variant_starts_stops_the_sweep_before_it_writes(tiny_spec):
    class SignalOnSecondBuild(seqgen.Session):    # SIGINT while variant 2 reads its data
        built = 0

        def build(self, kind, *args, **kwargs):
            if kind == "dataset":
                self.built += 1
                if self.built == 2:
                    os.kill(os.getpid(), signal.SIGINT)
            return super().build(kind, *args, **kwargs)

    tiny_spec["train"]["max_steps"] = 3
    tiny_spec["sweep"] = {"grid": {"model.cell.type": ["rnn", "gru"]}}
    cut = SignalOnSecondBuild(entry_points=False).compare(tiny_spec, out="o",
                                                          handle_signals=True)
    assert (cut.interrupted, cut.variant, cut.report) == ("SIGINT", "cell=gru", None)
    assert (Path("o") / "cell=rnn" / "samples.json").is_file()
    assert not (Path("o") / "cell=gru").exists()             # stopped before it wrote
    events = []
    done = seqgen.Session(entry_points=False).compare(tiny_spec, out="o", emit=events.append)
    assert [e.data["action"] for e in events if e.kind == "variant"] == ["skip", "run"]
    assert [r["stopped"] for r in done.rows] == ["max-steps", "max-steps"]


# -- prompts, and compare without a sweep ---------------------------------------------------
@pytest.mark.parametrize("sets", [
    [],                                                                    # final samples
    ["generate.strategies=[]", "train.sample_every=1"],                   # samples in training
])
def test_prompts_outside_the_vocabulary_are_refused_before_training(spec_file, tmp_path, sets):
    args = ["run", str(spec_file), "--out", "r", "--set", 'generate.prompts=["the ", "h\u20acQ"]',
            *(a for s in sets for a in ("--set", s))]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert ("$.generate.prompts[1] ('h\u20acQ'): 2 token(s) not in the vocabulary: "
            "'\u20ac' at 1, 'Q' at 2.") in result.stderr
    assert "step" not in result.stdout and not (tmp_path / "r").exists()


def test_compare_without_a_sweep_is_an_error_saying_how_to_add_one(spec_file, tmp_path):
    result = CliRunner().invoke(cli, ["compare", str(spec_file), "--out", "o"])
    assert result.exit_code == 2, result.output
    assert "$.sweep: missing; compare runs the variants a sweep names." in result.stderr
    assert '"sweep": {"grid": {"model.cell.type"' in result.stderr
    assert "--sweep FILE" in result.stderr
    assert not (tmp_path / "o").exists()


# -- kill -9 at random moments --------------------------------------------------------------
KILL_SPEC = {
    "name": "k9", "seed": 3,
    "dataset": {"type": "synthetic", "num_chars": 3000},
    # dropout draws from the global RNG; the sequential sampler carries state across a kill
    "model": {"embedding": {"type": "learned", "size": 8},
              "cell": {"type": "lstm", "hidden_size": 48, "num_layers": 2, "dropout": 0.2}},
    "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 16},
    "train": {"epochs": 3, "log_every": 1, "checkpoint_every": 1},
    "generate": {"prompts": ["the "], "max_new_tokens": 12, "strategies": [{"type": "greedy"}]},
}


def moment_of(line: str) -> str | None:
    """A line of training output as a moment: "step 17", "epoch 2" (its summary line) or
    "saved epoch-0002.safetensors"; None for other lines."""
    if line.startswith("step "):
        return "step " + line.split("|")[0].split()[1]
    if line.startswith("epoch ") and ":" in line:
        return line.split(":")[0]
    if line.startswith("saved "):
        return "saved " + Path(line.split()[1]).name
    return None


def kill_moments(lines: list[str], rng: random.Random) -> list[str]:
    """Three moments to kill a run right after, in the order the uninterrupted run
    reaches them: a random step before the first checkpoint, a random step anywhere, and
    one just before a checkpoint write (after "saved ...epoch-N" comes the write of
    last.safetensors; after "epoch N:", the evaluation and the write of best.safetensors)."""
    first = min(i for i, line in enumerate(lines) if line.startswith("epoch "))
    trained = max(i for i, line in enumerate(lines) if line.startswith("epoch "))
    steps = [i for i, line in enumerate(lines[:trained]) if line.startswith("step ")]
    writes = [i for i, line in enumerate(lines[:trained])
              if line.startswith(("saved ", "epoch "))]
    chosen = [rng.choice([i for i in steps if i < first]), rng.choice(steps),
              rng.choice(writes)]
    return [moment_of(lines[i]) for i in sorted(chosen)]


def temp_files(run_dir: Path) -> set[str]:
    found = set()
    for d in (run_dir, run_dir / "checkpoints"):
        with contextlib.suppress(FileNotFoundError):
            found.update(n for n in os.listdir(d) if n.endswith(".tmp"))
    return found


def kill_at(tmp_path: Path, args: list[str], moment: str) -> tuple[str | None, list[str]]:
    """Run `seqgen ARGS` and SIGKILL it right after the line of `moment`; for a moment
    before a checkpoint write, as soon as the write's temporary file appears (or, if the
    write is missed, at the next line). (how it was killed, its output); None when it
    ended first (successfully) without printing the moment."""
    child = Child(seqgen_cmd(*args), tmp_path)
    while (line := child.lines.get(timeout=TIMEOUT)) is not None:
        if moment_of(line) == moment:
            how = "right after the line"
            if not moment.startswith("step"):
                before, how = temp_files(tmp_path / "cut"), "at the next line (write missed)"
                while child.lines.empty() and child.proc.poll() is None:
                    if new := temp_files(tmp_path / "cut") - before:
                        how = f"writing {sorted(new)}"
                        break
            child.signal(signal.SIGKILL)
            assert child.finish()[0] in (-signal.SIGKILL, 0), child.log()
            return how, child.out
    assert child.finish()[0] == 0, child.log()
    return None, child.out


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_same_losses(tmp_path):
    """One run killed three times at random moments, each time resumed from what the kill
    left, then resumed to the end: its losses and samples are the uninterrupted run's."""
    seed = int(os.environ.get("SEQGEN_KILL_SEED", time.time_ns() % 2**32))
    print(f"kill -9 moments from seed {seed} (rerun with SEQGEN_KILL_SEED={seed})")
    import io
    from seqgen.progress import Printer
    shown = io.StringIO()       # the uninterrupted run, and what the CLI prints for it
    whole = seqgen.Session(entry_points=False).run(KILL_SPEC, out="whole",
                                                   emit=Printer(stream=shown))
    lines = shown.getvalue().splitlines()
    moments = kill_moments(lines, random.Random(seed))
    (tmp_path / "spec.json").write_text(json.dumps(KILL_SPEC))

    story = [f"seed {seed}: kill after {moments}"]
    args = ["run", "spec.json", "--out", "cut"]
    for moment in moments:
        killed, out = kill_at(tmp_path, args, moment)
        resumed = [line.strip() for line in out if line.startswith("resuming")]
        story.append(f"{' '.join(args)}: {resumed} killed after {moment!r}: {killed}; left "
                     f"{sorted(p.name for p in (tmp_path / 'cut').rglob('*') if p.is_file())}")
        args = ["run", "--resume", "cut"]
        if not killed:
            break
    else:
        done = subprocess.run(seqgen_cmd(*args), cwd=tmp_path, env=child_env(),
                              capture_output=True, text=True, timeout=TIMEOUT)
        story.append(f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
        assert done.returncode == 0 and "Traceback" not in done.stderr, "\n".join(story)
    story = "\n".join(story)
    print(story)
    assert losses(metrics(tmp_path / "cut")) == losses(whole.train.history), story
    assert json.loads((tmp_path / "cut" / "samples.json").read_text()) == [
        s.to_dict() for s in whole.samples], story
