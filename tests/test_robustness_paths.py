"""Issue 12, parts 3 and 4: runs never write outside where the user said, and filesystem
faults are errors, not bugs (seqgen/paths.py has the policy). Root ignores file modes, so
permission faults are simulated by making the failing OS call raise what the OS would."""
import errno
import json
import os
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

import seqgen
from seqgen import checkpoint as ckpt
from seqgen.atomic import append_line
from seqgen.cli import cli

SPEC = {"dataset": {"type": "synthetic", "num_chars": 3000},
        "model": {"cell": {"type": "lstm", "hidden_size": 8}},
        "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 8},
        "train": {"epochs": 1, "max_steps": 2}, "generate": {"max_new_tokens": 5}}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def clean(result, code):
    """The exit code, and no traceback or 'this is a bug' anywhere."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "this is a bug" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit)


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SPEC))
    return path


@pytest.fixture
def finished(session):
    """A finished one-epoch run in ./r (resume it with --set train.epochs=2)."""
    spec = {**SPEC, "train": {"epochs": 1}}
    session.run(spec, out="r")
    return "r"


def listing(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


# -- names and $.out ------------------------------------------------------------------------
@pytest.mark.parametrize("name, why", [
    ("../../escape", "path separator"), ("a/b", "path separator"), ("..", "not a usable"),
    ("a\u0000b", "NUL"), ("two\nlines", "control character")])
def test_a_run_name_that_is_not_one_directory_name_is_refused(spec_file, tmp_path, name, why):
    spec_file.write_text(json.dumps({**SPEC, "name": name}))
    before = sorted(os.listdir(tmp_path.parent)), listing(tmp_path)
    result = invoke("run", spec_file)
    clean(result, 2)
    assert f"$.name: {name!r} " in result.stderr and why in result.stderr
    assert (sorted(os.listdir(tmp_path.parent)), listing(tmp_path)) == before  # nothing written
    assert invoke("validate", spec_file).exit_code == 2               # and validate says so


def test_a_long_run_name_is_cut_to_fit_the_directory_name(spec_file):
    result = invoke("run", spec_file, "--set", "name=" + "é" * 300)
    clean(result, 0)
    (run_dir,) = os.listdir("runs")
    assert len(run_dir.encode()) <= 255 and run_dir.startswith("é" * 100)
    assert f"run directory: runs/{run_dir}" in result.stdout


def test_spec_out_reaching_out_by_traversal_is_refused(spec_file, tmp_path):
    result = invoke("run", spec_file, "--set", "out=sub/../../outside")
    clean(result, 2)
    assert "$.out: 'sub/../../outside' holds a '..' part" in result.stderr
    assert "--out" in result.stderr
    assert not (tmp_path.parent / "outside").exists() and not os.path.exists("sub")


def test_an_out_with_a_nul_is_a_clean_error_from_cli_and_api(spec_file, session):
    clean(invoke("run", spec_file, "--set", "out=a\u0000b"), 2)
    with pytest.raises(seqgen.SpecError, match="NUL"):
        session.run(SPEC, out="a\x00b")


def test_the_run_directory_is_printed_before_training(spec_file):
    result = invoke("run", spec_file, "--out", "here")
    clean(result, 0)
    lines = result.stdout.splitlines()
    assert lines[0] == "run directory: here"
    assert lines[-1] == "run directory: here"


def test_an_existing_out_not_made_by_seqgen_is_refused_and_left_alone(spec_file):
    os.mkdir("mine")
    for name in ("plot.png", "samples.json", "metrics.jsonl"):
        open(f"mine/{name}", "w").write(f"my own {name}\n")
    result = invoke("run", spec_file, "--out", "mine")
    clean(result, 2)
    assert ("$.out: mine is not empty and was not made by seqgen (it holds metrics.jsonl, "
            "plot.png, samples.json; no spec.json)") in result.stderr
    assert sorted(os.listdir("mine")) == ["metrics.jsonl", "plot.png", "samples.json"]
    assert all(open(f"mine/{n}").read() == f"my own {n}\n" for n in os.listdir("mine"))


def test_an_empty_existing_out_is_used(spec_file):
    os.mkdir("empty")
    clean(invoke("run", spec_file, "--out", "empty"), 0)
    assert os.path.isfile("empty/last.safetensors")


def test_compare_refuses_an_out_it_did_not_make(spec_file):
    spec_file.write_text(json.dumps({**SPEC, "sweep": {"grid": {"model.cell.type": ["rnn"]}}}))
    os.mkdir("mine")
    open("mine/report.md", "w").write("mine\n")
    result = invoke("compare", spec_file, "--out", "mine")
    clean(result, 2)
    assert "--out: mine is not empty and was not made by seqgen" in result.stderr
    assert os.listdir("mine") == ["report.md"]


# -- symbolic links -------------------------------------------------------------------------
def test_append_line_never_writes_through_a_symlink(tmp_path):
    (tmp_path / "victim.txt").write_text("precious\n")
    os.symlink(tmp_path / "victim.txt", "metrics.jsonl")
    with pytest.raises(seqgen.SeqgenError, match="metrics.jsonl: is a symbolic link"):
        append_line("metrics.jsonl", "{}")
    assert (tmp_path / "victim.txt").read_text() == "precious\n"


def test_resume_does_not_read_metrics_through_a_symlink(finished, tmp_path):
    victim = tmp_path / "victim.jsonl"
    victim.write_text('{"event": "epoch", "step": 1}\n')
    os.remove("r/metrics.jsonl")
    os.symlink(victim, "r/metrics.jsonl")
    result = invoke("run", "--resume", "r", "--set", "train.epochs=2")
    clean(result, 1)
    assert "r/metrics.jsonl: is a symbolic link" in result.stderr
    assert victim.read_text() == '{"event": "epoch", "step": 1}\n'


def test_a_logger_never_appends_through_a_symlink(session, tmp_path):
    spec = {**SPEC, "train": {"epochs": 1, "loggers": [{"type": "jsonl"}, {"type": "csv"}]}}
    session.run(spec, out="r")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("events.jsonl", "metrics.csv"):
        os.remove(f"r/{name}")
        os.symlink(victim, f"r/{name}")
        result = invoke("run", "--resume", "r", "--set", "train.epochs=2")
        clean(result, 1)
        assert f"r/{name}: is a symbolic link" in result.stderr
        os.remove(f"r/{name}")
        open(f"r/{name}", "w").close()
    assert victim.read_text() == "precious\n"


def test_a_logger_refuses_a_symlinked_directory_inside_the_run(tmp_path):
    from seqgen_plugins.loggers.jsonl import JsonlLogger
    os.makedirs("r")
    os.mkdir(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", "r/logs")
    with pytest.raises(seqgen.SeqgenError, match="r/logs: is a symbolic link"):
        JsonlLogger("r", path="logs/events.jsonl", events=["start"])
    assert os.listdir(tmp_path / "elsewhere") == []


def test_a_fifo_where_seqgen_appends_is_refused_without_blocking():
    os.mkfifo("metrics.jsonl")

    def unblock():               # the code before the fix waited for a reader: give it one
        if not done.wait(20):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    fifo, done = os.path.abspath("metrics.jsonl"), threading.Event()
    threading.Thread(target=unblock, daemon=True).start()
    try:
        with pytest.raises(seqgen.SeqgenError, match="metrics.jsonl: is a FIFO"):
            append_line("metrics.jsonl", "{}")
    finally:
        done.set()


# -- filesystem faults ----------------------------------------------------------------------
def refuse(monkeypatch, module, name, prefix, code=errno.EACCES):
    """Make module.name(path, ...) fail with `code` for paths under `prefix`, as the OS
    would for a directory the user may not write."""
    real = getattr(module, name)

    def fake(*args, **kwargs):
        where = os.fspath(kwargs["dir"] if "dir" in kwargs else args[0])
        if where == prefix or where.startswith(prefix + os.sep):
            name = os.path.join(where, kwargs.get("prefix", "") + "a1b2c3d4"
                                + kwargs.get("suffix", "")) if "dir" in kwargs else where
            raise OSError(code, os.strerror(code), name)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, fake)


def test_an_unwritable_out_directory_is_one_clear_error(spec_file, monkeypatch):
    refuse(monkeypatch, os, "mkdir", "locked")
    result = invoke("run", spec_file, "--out", "locked/run")
    clean(result, 1)
    assert result.stderr == "Error: locked/run: Permission denied\n"


def test_a_read_only_working_directory_for_default_runs(spec_file, monkeypatch):
    refuse(monkeypatch, os, "mkdir", "runs")
    result = invoke("run", spec_file)
    clean(result, 1)
    assert result.stderr.startswith("Error: runs") and "Permission denied" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_really_read_only_working_directory(spec_file, tmp_path):
    os.mkdir("ro")
    os.chmod("ro", 0o555)
    os.chdir("ro")
    result = invoke("run", spec_file)
    clean(result, 1)
    assert "runs: Permission denied" in result.stderr


def test_a_read_only_run_directory_on_resume(finished, monkeypatch):
    import tempfile
    before = {n: open(f"r/{n}", "rb").read() for n in os.listdir("r") if n != ".lock"}
    refuse(monkeypatch, tempfile, "mkstemp", "r")
    result = invoke("run", "--resume", "r", "--set", "train.epochs=2")
    clean(result, 1)
    assert result.stderr.startswith("Error: r/") and "Permission denied" in result.stderr
    assert ".tmp" not in result.stderr                    # the file, not a random temp name
    assert {n: open(f"r/{n}", "rb").read() for n in os.listdir("r") if n != ".lock"} == before


def test_a_path_component_over_the_os_limit(spec_file):
    result = invoke("run", spec_file, "--out", "x" * 300)
    clean(result, 1)
    assert result.stderr.endswith(": File name too long\n")
    result = invoke("run", text_spec(spec_file, "y" * 300))
    clean(result, 1)
    assert "File name too long" in result.stderr


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(finished, monkeypatch):
    from safetensors import SafetensorError
    last = open("r/last.safetensors", "rb").read()

    def full(tensors, path, metadata=None):                # what safetensors raises
        open(path, "wb").write(b"\0" * 100)
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")
    monkeypatch.setattr(ckpt, "save_file", full)
    result = invoke("run", "--resume", "r", "--set", "train.epochs=2")
    clean(result, 1)
    assert result.stderr.startswith("Error: r/") and result.stderr.endswith(
        ".safetensors: No space left on device\n")
    assert open("r/last.safetensors", "rb").read() == last
    assert not [n for n in os.listdir("r") if n.endswith(".tmp")]


def test_a_broken_pipe_on_generate_exits_quietly(tmp_path):
    from test_generate_models import random_checkpoint
    path = random_checkpoint(tmp_path / "m.safetensors", SPEC)
    read, write = os.pipe()
    os.close(read)                                        # `| head -c 0`: the reader is gone
    for extra in ([], ["--stream"], ["--json"]):
        proc = subprocess.run([sys.executable, "-m", "seqgen", "generate", path,
                               "--max-new-tokens", "20", *extra], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, "SEQGEN_PLUGINS": ""})
        assert proc.returncode == 141, proc.stderr
        assert proc.stderr == ""                          # no message, no "Exception ignored"
    os.close(write)


# -- corpora --------------------------------------------------------------------------------
def text_spec(spec_file, path):
    spec_file.write_text(json.dumps({**SPEC, "dataset": {"type": "text", "path": path},
                                     "sampler": {"type": "sequential", "batch_size": 1,
                                                 "num_steps": 2}}))
    return spec_file


def test_a_corpus_with_glob_characters_in_its_name(spec_file):
    open("corpus[1].txt", "w").write("hello world, hello there\n" * 4)
    result = invoke("run", text_spec(spec_file, "corpus[1].txt"), "--out", "a")
    clean(result, 0)
    assert "data: corpus[1].txt" in result.stdout
    result = invoke("run", text_spec(spec_file, "corpus[[]1].txt"), "--out", "b")  # escaped
    clean(result, 0)


def test_a_fifo_corpus_is_refused_not_waited_on(spec_file):
    os.mkfifo("corpus.txt")

    def unblock():               # the code before the fix waited for a writer: give it one
        if not done.wait(20):
            os.close(os.open(fifo, os.O_WRONLY))
    fifo, done = os.path.abspath("corpus.txt"), threading.Event()
    threading.Thread(target=unblock, daemon=True).start()
    result = invoke("run", text_spec(spec_file, "corpus.txt"))
    done.set()
    clean(result, 1)
    assert result.stderr == ("Error: corpus.txt: is a FIFO (named pipe), not a regular file; "
                             "seqgen reads text from regular files only (copy the data into a "
                             "file first)\n")
    assert not os.path.exists("runs")


@pytest.mark.slow
def test_dev_zero_as_a_corpus_is_refused_not_read_forever(spec_file):
    import resource

    def limit():                 # before the fix it read until memory ran out
        resource.setrlimit(resource.RLIMIT_DATA, (4 << 30, 4 << 30))
    proc = subprocess.run([sys.executable, "-m", "seqgen", "run",
                           str(text_spec(spec_file, "/dev/zero"))], capture_output=True,
                          text=True, timeout=120, preexec_fn=limit,
                          env={**os.environ, "SEQGEN_PLUGINS": ""})
    assert proc.returncode == 1
    assert proc.stderr == ("Error: /dev/zero: is a character device, not a regular file; "
                           "seqgen reads text from regular files only (copy the data into a "
                           "file first)\n")


def test_a_directory_corpus_is_refused(spec_file):
    os.mkdir("texts")
    result = invoke("run", text_spec(spec_file, "texts"))
    clean(result, 1)
    assert "texts: is a directory" in result.stderr


# -- temporary files left by a kill ---------------------------------------------------------
def test_temporary_files_of_a_killed_write_are_removed_on_resume(finished):
    os.makedirs("r/checkpoints", exist_ok=True)
    left = ["r/.last.safetensors.k2j_9xab.tmp", "r/.metrics.jsonl.abcdefgh.tmp",
            "r/checkpoints/.epoch-0001.safetensors.0a1b2c3d.tmp"]
    kept = ["r/.notes.tmp", "r/notes.abcdefgh.tmp"]          # not atomic_path's pattern
    for path in left + kept:
        open(path, "w").write("x")
    result = invoke("run", "--resume", "r", "--set", "train.epochs=2")
    clean(result, 0)
    assert [p for p in left if os.path.exists(p)] == []
    assert all(os.path.exists(p) for p in kept)


def test_temporary_files_of_a_killed_write_are_removed_on_start(spec_file):
    os.mkdir("d")
    open("d/.spec.json.q1w2e3r4.tmp", "w").write("{")       # killed writing spec.json
    result = invoke("run", spec_file, "--out", "d")
    clean(result, 0)
    assert not [n for n in os.listdir("d") if n.endswith(".tmp")]
