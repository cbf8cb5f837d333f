"""Data-parallel training with gloo on localhost: two ranks train as one process does.

Two-rank runs go through the real launchers (`seqgen run --nproc 2`, and torchrun's own
`python -m torch.distributed.run`), as subprocesses; the one-process references run in
this process. Each comparison reads the losses metrics.jsonl recorded step by step.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import seqgen
from seqgen import checkpoint as ckpt
from seqgen.distributed import World
from seqgen.evaluate import token_nll
from seqgen.seeding import dropout_generator, generator
from seqgen.state import detach_state

pytestmark = pytest.mark.distributed

STEPS = 50
SPEC = {
    "name": "ddp", "seed": 5,
    "dataset": {"type": "synthetic", "num_chars": 6000},
    "model": {"embedding": {"type": "learned", "size": 8},
              "cell": {"type": "lstm", "hidden_size": 16}},
    "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 8},
    "train": {"epochs": 10, "max_steps": STEPS, "log_every": 10, "eval_every": 25,
              "optimizer": {"type": "adam", "lr": 0.01}},
    "generate": {"strategies": []},
}


def spec_with(**sections) -> dict:
    spec = json.loads(json.dumps(SPEC))
    for key, value in sections.items():
        spec[key] = {**spec[key], **value}
    return spec


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "SEQGEN_PLUGINS": ""}


def seqgen_nproc(spec: dict, out: Path, *extra: str) -> subprocess.CompletedProcess:
    path = out.parent / f"{out.name}.json"
    path.write_text(json.dumps(spec))
    return subprocess.run([sys.executable, "-m", "seqgen", "run", str(path), "--out", str(out),
                           "--nproc", "2", *extra], capture_output=True, text=True,
                          env=env(), timeout=120)


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", "2", "-m", "seqgen", "run", *args]


def losses(run_dir: Path, event: str = "step", key: str = "loss") -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in records if r["event"] == event}


def one_process(spec: dict, out: Path) -> Path:
    seqgen.Session(entry_points=False).run(spec, out=out)
    return out


def assert_close(two: dict, one: dict, rel: float) -> None:
    assert sorted(two) == sorted(one)
    worst = max(abs(two[s] - one[s]) / abs(one[s]) for s in one)
    assert worst <= rel, f"largest relative difference {worst:.2e} > {rel:g}"


@pytest.fixture(scope="module")
def sequential_runs(tmp_path_factory):
    """The sequential spec on 2 ranks (seqgen run --nproc 2) and in one process."""
    base = tmp_path_factory.mktemp("sequential")
    done = seqgen_nproc(SPEC, base / "two")
    assert done.returncode == 0, done.stderr
    return base / "two", one_process(SPEC, base / "one"), done


def test_two_ranks_give_the_one_process_losses_and_eval(sequential_runs):
    two, one, _ = sequential_runs
    # the global batch's NLL per token at every one of the first 50 steps: each rank
    # carries its own lanes' state, and the averaged gradient is the one-process one
    assert len(losses(two)) == STEPS
    assert_close(losses(two), losses(one), 1e-5)
    # the validation loss, scored by both ranks on half the rows each, then summed
    assert_close(losses(two, "eval", "valid_loss"), losses(one, "eval", "valid_loss"), 1e-6)


def test_rank_zero_alone_writes_one_run_directory(sequential_runs):
    two, _, done = sequential_runs
    saved = ckpt.load(two / ckpt.LAST_FILE)
    trainer = saved.state["trainer"]
    assert trainer["world_size"] == 2 and trainer["progress"]["step"] == STEPS
    # every rank's generators, and the carried state as the global batch's 4 rows
    assert {"rng.trainer", "rng.trainer.1", "rng.dropout", "rng.dropout.1"} <= set(saved.tensors)
    assert saved.tensors["carry.0"].shape == (1, 4, 16)
    assert (two / "best.safetensors").is_file() and (two / "plot.png").is_file()
    steps = [json.loads(line)["step"] for line in (two / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "step"]
    assert steps == list(range(1, STEPS + 1))        # once each: rank 1 wrote nothing
    assert done.stdout.count("run directory:") == 2  # rank 0's start and end lines only


def test_random_sampler_through_torchrun(tmp_path):
    spec = spec_with(sampler={"type": "random", "batch_size": 6, "num_steps": 8})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(torchrun("spec.json", "--out", "two"), cwd=tmp_path,
                          capture_output=True, text=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr
    one = one_process(spec, tmp_path / "one")
    assert_close(losses(tmp_path / "two"), losses(one), 1e-5)


def emulated_two_ranks(spec: dict) -> dict[int, float]:
    """What two ranks must compute, in one process: rank r's rows of each batch with
    dropout drawn from generator(seed, "dropout/rank{r}of2"), gradients summed over the
    ranks' halves and divided by the global token count (what DDP's mean gives), Adam."""
    session = seqgen.Session(entry_points=False)
    spec = session.resolve(spec)
    data = session.build("dataset", spec["dataset"])
    model = session.build_model(spec, len(data.vocab))
    optimizer = session.build("optimizer", spec["train"]["optimizer"], model.parameters())
    ranks = [session.build("sampler", spec["sampler"], data.train, seed=spec["seed"],
                           rank=r, world_size=2) for r in (0, 1)]
    drops = [generator(spec["seed"], f"dropout/rank{r}of2") for r in (0, 1)]
    states, result = [None, None], {}
    model.train()
    for step, batches in enumerate(zip(*(s.epoch(0) for s in ranks)), 1):
        if step > STEPS:
            break
        total = sum(b.num_tokens for b in batches)
        optimizer.zero_grad()
        nll = 0.0
        for r, batch in enumerate(batches):
            with dropout_generator(drops[r]):
                logits, state = model(batch.inputs, states[r])
            part = token_nll(logits, batch).sum()
            (part / total).backward()
            states[r], nll = detach_state(state), nll + float(part.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec["train"]["clip_norm"] or 1e9)
        optimizer.step()
        result[step] = nll / total
    return result


def test_dropout_draws_per_rank_streams(tmp_path):
    """With dropout the masks cannot match one process's (that draws one mask for the
    whole batch), so the 2-rank run is compared with an emulation of two ranks in one
    process that draws each rank's masks from its own stream (seed, rank)."""
    cell = {"type": "lstm-scratch", "hidden_size": 16, "num_layers": 2, "dropout": 0.3}
    spec = spec_with(model={"cell": cell}, train={"eval_every": None})
    assert seqgen.Session(entry_points=False).build_model(
        seqgen.Session(entry_points=False).resolve(spec), 5).cell.explicit_randomness
    done = seqgen_nproc(spec, tmp_path / "two")
    assert done.returncode == 0, done.stderr
    two = losses(tmp_path / "two")
    assert_close(two, emulated_two_ranks(spec), 1e-5)
    # and it is not the one-process run: the masks really are the ranks' own
    one = losses(one_process(spec, tmp_path / "one"))
    assert max(abs(two[s] - one[s]) for s in one) > 1e-3


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen, deadline: float = 60):
    """Poll metrics.jsonl (rank 0 writes a line per step) until it reaches `step`."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert process.poll() is None, process.communicate()
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists() and len(losses(run_dir)) >= step:
            return
        time.sleep(0.05)
    raise AssertionError(f"no step {step} within {deadline} s")


def long_spec(tmp_path: Path) -> Path:
    path = tmp_path / "long.json"
    path.write_text(json.dumps(spec_with(train={"max_steps": 100_000, "eval_every": None})))
    return path


def test_sigterm_stops_every_rank_at_one_step_and_resume_is_exact(tmp_path, sequential_runs):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    process = subprocess.Popen([sys.executable, "-m", "seqgen", "run", str(spec), "--out",
                                str(tmp_path / "two"), "--nproc", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    wait_for_step(tmp_path / "two", 5, process)
    process.send_signal(signal.SIGTERM)          # to torchrun's agent, which tells each rank
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    stopped = ckpt.load(tmp_path / "two" / ckpt.LAST_FILE).state["step"]
    assert 5 <= stopped < STEPS
    assert f"SIGTERM: stopped at step {stopped}; checkpoint saved." in err
    assert "Traceback" not in err
    assert max(losses(tmp_path / "two")) == stopped

    shutil.copytree(tmp_path / "two", tmp_path / "one")
    # the same world size: bit-exact, step for step, with the uninterrupted 2-rank run
    done = subprocess.run([sys.executable, "-m", "seqgen", "run", "--resume",
                           str(tmp_path / "two"), "--nproc", "2"],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert losses(tmp_path / "two") == losses(sequential_runs[0])
    # another world size: one process takes all 4 rows of the carried state
    seqgen.Session(entry_points=False).resume(tmp_path / "one")
    assert_close(losses(tmp_path / "one"), losses(sequential_runs[1]), 1e-5)


def rank_pids(agent: int) -> dict[int, int]:
    """{rank: pid} of the processes torchrun's agent (pid `agent`) started."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != agent:
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(proc.name)
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_rank_that_dies_stops_the_other_with_an_error_naming_it(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "seqgen", "run", str(long_spec(tmp_path)),
                                "--out", str(tmp_path / "run"), "--nproc", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    wait_for_step(tmp_path / "run", 3, process)
    ranks = rank_pids(process.pid)
    assert sorted(ranks) == [0, 1]
    os.kill(ranks[1], signal.SIGKILL)
    _, err = process.communicate(timeout=60)      # no hang: the agent stops rank 0
    assert process.returncode not in (0, 130)
    assert "Error: rank 1 of 2 failed first (exit code -9, SIGKILL)" in err


def test_a_batch_that_does_not_split_is_refused_before_launching(tmp_path):
    from click.testing import CliRunner
    from seqgen.cli import cli
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    result = CliRunner().invoke(cli, ["run", "spec.json", "--nproc", "3"])
    assert result.exit_code == 2
    assert ("$.sampler.batch_size: 4 rows do not split evenly over 3 processes"
            in result.output)
    assert not Path("runs").exists()
    # and under torchrun's environment, before waiting for the other ranks
    with pytest.raises(seqgen.SpecError, match="do not split evenly over 3"):
        seqgen.Session(entry_points=False).run(SPEC, world=World(1, 3))


@pytest.mark.parametrize("args", [["generate", "runs/x", "--prompt", "a"], ["compare", "spec.json"],
                                  ["run", "spec.json", "--nproc", "2"]])
def test_only_run_works_under_torchrun(args, monkeypatch):
    from click.testing import CliRunner
    from seqgen.cli import cli
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert ("runs in one process" in result.output or "do not give it to a process that "
            "torchrun started" in result.output)


def test_more_processes_than_cores_are_refused(monkeypatch):
    from click.testing import CliRunner
    from seqgen.cli import cli
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    result = CliRunner().invoke(cli, ["run", "quickstart", "--nproc", "3", "--set",
                                      "device=cpu", "--set", "sampler.batch_size=6"])
    assert result.exit_code == 2 and "--nproc 3: this machine has 2 CPU cores" in result.output


def test_joining_without_torchrun_is_a_clear_error(monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(seqgen.TrainingError, match="could not join the other ranks"):
        with World(1, 2).joined(torch.device("cpu")):
            pass


def test_launching_checks_the_run_directory_first(tmp_path):
    from click.testing import CliRunner
    from seqgen.cli import cli
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "spec.json").write_text("{}")
    result = CliRunner().invoke(cli, ["run", "spec.json", "--out", "done", "--nproc", "2"])
    assert result.exit_code == 2 and "already holds a run" in result.output
    result = CliRunner().invoke(cli, ["run", "--resume", "missing", "--nproc", "2"])
    assert result.exit_code != 0 and "missing: not a run directory" in result.output


def test_standard_input_under_torchrun_is_refused(monkeypatch):
    from click.testing import CliRunner
    from seqgen.cli import cli
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = CliRunner().invoke(cli, ["run", "-"], input=json.dumps(SPEC))
    assert result.exit_code == 2 and "standard input reaches one process only" in result.output


def test_standard_input_cannot_feed_several_ranks(tmp_path):
    from click.testing import CliRunner
    from seqgen.cli import cli
    result = CliRunner().invoke(cli, ["run", "-", "--nproc", "2"], input=json.dumps(SPEC))
    assert result.exit_code == 2 and "standard input reaches one process only" in result.output


@pytest.mark.parametrize("environ, problem", [
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is outside 0..WORLD_SIZE-1"),
    ({"WORLD_SIZE": "two"}, "must be integers"),
])
def test_a_broken_torchrun_environment_is_named(environ, problem):
    with pytest.raises(seqgen.SpecError, match=problem):
        World.from_env(environ)


def test_world_from_env_reads_torchrun_variables():
    assert World.from_env({}) == World(0, 1, 0)
    assert World.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == World(3, 4, 1)
    assert not World().distributed and World(0, 2).distributed


def test_resuming_where_the_sampler_makes_other_batches_is_refused():
    """The bucket sampler drops a last batch too small to share among the ranks, so an
    epoch's batches can depend on the world size: such a resume is refused, naming the
    world size that fits, rather than skipping the wrong batches."""
    from seqgen.runner import Run
    session = seqgen.Session(entry_points=False)
    run = Run(session, session.resolve(SPEC), lambda event: None)
    tensors, meta = run.trainer.training_state()
    assert meta["batches"] == len(run.sampler) and meta["world_size"] == 1
    meta.update(batches=len(run.sampler) - 1, world_size=2)
    with pytest.raises(ValueError, match=r"resume with 2 process\(es\)"):
        run.trainer.load_training_state(tensors, meta)
    meta.update(batches=len(run.sampler))          # same batches, other size: continues
    run.trainer.load_training_state(tensors, meta)
    run.release()
