"""seqgen logs through `logging` ("seqgen" and its children) and configures nothing; the
CLI installs the one handler that prints, so each warning shows exactly once."""
from __future__ import annotations

import logging
import subprocess
import sys
from importlib import metadata

import pytest
from click.testing import CliRunner

import seqgen
from seqgen import hookimpl
from seqgen.cli import cli
from seqgen.log import log_event

TYPO = ("plugin 'typo' from distribution 'direct' failed to load: implements 'register_cell', "
        "which is not a seqgen hook. Did you mean 'register_cells'?")
BROKEN = ("plugin 'broken' from distribution 'broken-dist' failed to load: "
          "ImportError: No module named 'missing_dep'")
# A run warning to provoke: the teacher-forcing option that a ratio of 1 makes moot
WARNED = "$.train.strategy: ratio 1 without decay always feeds the reference: 'free' has no effect"
MOOT = {"type": "teacher-forcing", "ratio": 1.0, "free": "sample"}


class Typo:
    """A plugin whose hook name is misspelt: a load failure."""
    __name__ = "typo"

    @hookimpl
    def register_cell(self, register):
        pass


class FakeEntryPoint:
    def __init__(self, name, target, dist):
        self.name, self._target = name, target
        self.dist = type("Dist", (), {"name": dist, "version": "0.1"})()

    def load(self):
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


@pytest.fixture
def broken_entry_point(monkeypatch):
    """One installed-looking plugin that fails to import."""
    points = [FakeEntryPoint("broken", ImportError("No module named 'missing_dep'"),
                             "broken-dist")]
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: points if group == "seqgen" else [])
    monkeypatch.delenv("SEQGEN_PLUGINS")


def seqgen_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.split(".")[0] == "seqgen"]


# -- the library: records, and no output --------------------------------------------------
def test_a_load_failure_is_a_warning_record_and_prints_nothing(caplog, capsys):
    with caplog.at_level(logging.DEBUG, logger="seqgen"):
        session = seqgen.Session([Typo()], entry_points=False)
    [failure] = session.load_failures                 # the list the API exposes stays
    [record] = [r for r in seqgen_records(caplog) if r.levelno == logging.WARNING]
    assert (record.name, record.getMessage()) == ("seqgen.plugins", TYPO)
    assert record.seqgen_failure == failure
    assert capsys.readouterr() == ("", "")


def test_a_failing_entry_point_is_logged_when_it_fails(broken_entry_point, caplog, capsys):
    with caplog.at_level(logging.DEBUG, logger="seqgen"):
        session = seqgen.Session()
    assert [f.describe() for f in session.load_failures] == [BROKEN]
    warned = [r.getMessage() for r in seqgen_records(caplog) if r.levelno == logging.WARNING]
    assert warned == [BROKEN]
    [debug] = [r for r in seqgen_records(caplog) if r.levelno == logging.DEBUG]
    assert "Traceback" in debug.getMessage() and "missing_dep" in debug.getMessage()
    assert capsys.readouterr() == ("", "")


def test_plugin_selection_notes_are_logged_too(monkeypatch, caplog):
    monkeypatch.setenv("SEQGEN_PLUGINS", "nothing-like-it")
    with caplog.at_level(logging.WARNING, logger="seqgen"):
        session = seqgen.Session()
    note = ("SEQGEN_PLUGINS names 'nothing-like-it', which matches no installed plugin "
            "(entry point or distribution)")
    assert session.warnings == [note]
    assert [r.getMessage() for r in seqgen_records(caplog)] == [note]


def test_strict_loading_raises_instead_of_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="seqgen"), pytest.raises(seqgen.PluginError):
        seqgen.Session([Typo()], entry_points=False, strict=True)
    assert seqgen_records(caplog) == []


def test_run_warning_events_are_warning_records_on_seqgen_run(caplog):
    event = seqgen.Event("warning", {"message": "something to know"})
    with caplog.at_level(logging.WARNING, logger="seqgen"):
        log_event(event)
        log_event(seqgen.Event("step", {"step": 1, "loss": 2.0}))    # not a message: not logged
    [record] = seqgen_records(caplog)
    assert (record.name, record.levelno, record.getMessage()) == (
        "seqgen.run", logging.WARNING, "something to know")
    assert record.seqgen_event is event


def test_a_run_logs_its_warnings(tiny_spec, caplog, capsys):
    tiny_spec["train"].update(strategy=MOOT, max_steps=2, epochs=1)
    events = []
    with caplog.at_level(logging.WARNING, logger="seqgen"):
        seqgen.Session(entry_points=False).run(tiny_spec, out="r", emit=events.append)
    assert [e.data["message"] for e in events if e.kind == "warning"] == [WARNED]   # still an event
    assert [(r.name, r.getMessage()) for r in seqgen_records(caplog)] == [("seqgen.run", WARNED)]
    assert capsys.readouterr() == ("", "")


def test_seqgen_installs_no_handler_that_prints():
    seqgen.Session([Typo()], entry_points=False)
    handlers = logging.getLogger("seqgen").handlers
    assert not [h for h in handlers if isinstance(h, logging.StreamHandler)]
    assert all(isinstance(h, logging.NullHandler) for h in handlers)
    assert logging.getLogger("seqgen").level == logging.NOTSET       # no level set either
    assert not [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]


def test_an_application_without_logging_set_up_sees_nothing(tmp_path):
    """Outside pytest (which captures logging itself): no last-resort output on stderr."""
    code = ("import seqgen\n"
            "from seqgen import hookimpl\n"
            "class Typo:\n"
            "    __name__ = 'typo'\n"
            "    @hookimpl\n"
            "    def register_cell(self, register): pass\n"
            "s = seqgen.Session([Typo()], entry_points=False)\n"
            "assert len(s.load_failures) == 1\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# -- the CLI: one handler, each message once -----------------------------------------------
def test_the_cli_shows_a_load_failure_once(broken_entry_point):
    result = CliRunner().invoke(cli, ["validate", "quickstart"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"warning: {BROKEN}"]
    assert result.stdout == "quickstart: valid\n"


def test_the_cli_with_debug_adds_the_traceback(broken_entry_point):
    result = CliRunner().invoke(cli, ["--debug", "validate", "quickstart"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count(f"warning: {BROKEN}") == 1
    assert "debug: traceback of plugin 'broken'" in result.stderr


def test_the_cli_removes_its_handler_when_the_command_ends(broken_entry_point):
    before = list(logging.getLogger("seqgen").handlers)
    CliRunner().invoke(cli, ["--debug", "validate", "quickstart"])
    assert logging.getLogger("seqgen").handlers == before
    assert logging.getLogger("seqgen").level == logging.NOTSET


def test_strict_plugins_listing_does_not_warn(broken_entry_point):
    result = CliRunner().invoke(cli, ["--strict-plugins", "plugins"])
    assert result.exit_code == 1
    assert "warning:" not in result.stderr
    assert result.stderr.strip() == f"Error: {BROKEN} (strict plugin loading is on)"


def test_the_cli_shows_a_run_warning_once(tiny_spec, tmp_path):
    import json
    tiny_spec["train"].update(strategy=MOOT, max_steps=2, epochs=1)
    (tmp_path / "spec.json").write_text(json.dumps(tiny_spec))
    result = CliRunner().invoke(cli, ["run", "spec.json", "--out", "r"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"warning: {WARNED}"]
