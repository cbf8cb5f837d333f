"""`compare(jobs > 1)` runs each variant in a spawned worker with a Session made like the
caller's: plugins given to the Session directly travel (a module by name, an object by
pickle), and one that cannot travel is a clear PluginError before any worker starts."""
from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import pickle
import threading
import types
from pathlib import Path

import pytest

import seqgen
import seqgen.compare as compare_module
from seqgen import PluginError, hookimpl

PLUGINS = Path(__file__).parent / "fixtures" / "plugin_modules"
SPEC = {
    "name": "jobs",
    "seed": 0,
    "dataset": {"type": "synthetic", "num_chars": 500},
    "model": {"embedding": {"type": "learned", "size": 4},
              "cell": {"type": "gru", "hidden_size": 4}},
    "sampler": {"type": "sequential", "batch_size": 2, "num_steps": 8},
    "train": {"max_steps": 2, "log_every": 1},
    "generate": {"prompts": ["the "], "max_new_tokens": 3,
                 "strategies": [{"type": "module-argmax"}, {"type": "object-argmax"}]},
    "sweep": {"grid": {"model.cell.type": ["rnn", "gru"]}, "sample_tokens": 3},
}


@pytest.fixture
def plugin_module(monkeypatch, tmp_path):
    """The fixture plugin module, importable here and (through sys.path, which spawned
    processes inherit) in the workers; its strategies leave marks in tmp_path/marks."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("SEQGEN_TEST_MARKS", str(marks))
    return importlib.import_module("seqgen_test_jobs_plugin")


def marks(tmp_path) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for path in (tmp_path / "marks").iterdir():
        name, pid = path.name.rsplit(".", 1)
        found.setdefault(name, set()).add(int(pid))
    return found


@pytest.mark.slow
def test_plugins_given_to_the_session_reach_the_workers(plugin_module, tmp_path):
    session = seqgen.Session([plugin_module, plugin_module.OBJECT_PLUGIN], entry_points=False)
    result = session.compare(copy.deepcopy(SPEC), out=tmp_path / "out", jobs=2)
    assert [(r["variant"], r["stopped"]) for r in result.rows] == [
        ("cell=rnn", "max-steps"), ("cell=gru", "max-steps")]
    used = marks(tmp_path)
    workers = {n: pids - {os.getpid()} for n, pids in used.items()}
    assert workers["module-argmax"] and workers["object-argmax"], used   # built in workers


def test_the_worker_config_round_trips(plugin_module):
    session = seqgen.Session([plugin_module, plugin_module.OBJECT_PLUGIN], entry_points=False,
                             env={"SEQGEN_PLUGINS": ""}, strict=True)
    sent = compare_module.worker_config(session)
    assert sent["plugins"][0] == ("module", "seqgen_test_jobs_plugin")
    assert sent["plugins"][1][0] == "object"
    carried = pickle.loads(pickle.dumps(sent))     # as the process pool carries initargs
    options = compare_module.session_options(carried)
    assert options["plugins"][0] is plugin_module
    assert options["plugins"][1].name == "object-argmax"
    rebuilt = seqgen.Session(**options)
    assert rebuilt.registry.has("strategy", "object-argmax")
    assert {k: v for k, v in options.items() if k != "plugins"} == {
        k: v for k, v in getattr(session, "config", {}).items() if k != "plugins"}


# -- plugins that cannot travel -----------------------------------------------------------------
def local_class():
    class LocalPlugin:
        @hookimpl
        def register_strategies(self, register):
            pass
    return LocalPlugin(), "plugin LocalPlugin-0", "Can't pickle local object"


def lambda_plugin():
    return (lambda: None), "plugin 'lambda_plugin.<locals>.<lambda>'", "cannot be pickled"


def holding_a_lock(module):
    plugin = module.ObjectPlugin("locked")
    plugin.lock = threading.Lock()
    return plugin, "plugin ObjectPlugin-0", "cannot pickle '_thread.lock' object"


def runtime_module():
    module = types.ModuleType("made_at_run_time")

    @hookimpl
    def register_strategies(register):
        pass
    module.register_strategies = register_strategies
    return module, "plugin module 'made_at_run_time'", "it was made at run time"


def module_off_sys_path(tmp_path):
    path = tmp_path / "elsewhere" / "off_path_plugin.py"
    path.parent.mkdir()
    path.write_text("from seqgen import hookimpl\n\n\n@hookimpl\n"
                    "def register_strategies(register):\n    pass\n")
    spec = importlib.util.spec_from_file_location("off_path_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, "plugin module 'off_path_plugin'", "a worker cannot import it by its name"


@pytest.mark.parametrize("make", ["local class", "lambda", "lock", "runtime module",
                                  "module off sys.path"])
def test_a_plugin_that_cannot_travel_is_refused_before_any_worker(make, plugin_module,
                                                                  tmp_path, monkeypatch):
    plugin, label, why = {
        "local class": local_class, "lambda": lambda_plugin,
        "lock": lambda: holding_a_lock(plugin_module), "runtime module": runtime_module,
        "module off sys.path": lambda: module_off_sys_path(tmp_path)}[make]()
    session = seqgen.Session([plugin], entry_points=False)
    monkeypatch.setattr(compare_module, "ProcessPoolExecutor",
                        lambda *a, **k: pytest.fail("a worker pool was started"))
    spec = copy.deepcopy(SPEC)
    spec["generate"]["strategies"] = [{"type": "greedy"}]
    with pytest.raises(PluginError) as caught:
        session.compare(spec, out=tmp_path / "out", jobs=2)
    message = str(caught.value)
    assert message.startswith(f"compare with jobs > 1: {label}"), message
    assert why in message and "jobs=1" in message and "importable" in message, message
    assert not (tmp_path / "out").exists()        # refused before anything was written


def test_jobs_1_takes_any_plugin(tmp_path):
    plugin, _, _ = local_class()
    session = seqgen.Session([plugin], entry_points=False)
    spec = copy.deepcopy(SPEC)
    spec["generate"]["strategies"] = [{"type": "greedy"}]
    spec["sweep"]["grid"]["model.cell.type"] = ["rnn"]
    result = session.compare(spec, out=tmp_path / "out", jobs=1)
    assert [r["stopped"] for r in result.rows] == ["max-steps"]
