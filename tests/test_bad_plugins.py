"""Bad plugins, really installed: each is its own load failure, and never takes the others down.

Every distribution under tests/fixtures/bad_plugins/ is built into a wheel and installed
(--no-deps) beside seqgen's own wheel in a fresh venv (`venv`); a second venv holds
seqgen alone (`bare_venv`), for checkpoints whose plugins are not installed. The tests run
the installed `seqgen` console script as a subprocess, as a user would.

    seqgen-dup-lstm      cells "lstm" (a duplicate: refused) and "lstm-extra" (loads)
    seqgen-raising-hook  register_cells raises RuntimeError("boom")
    seqgen-wrong-type    strategy "int-strategy", whose factory returns 7
    seqgen-bad-defaults  cell "bad-defaults": its schema's default breaks its own minimum
    seqgen-typo-hook     implements `register_cell` (no such hook)
    seqgen-same-ep-a/b   both declare entry point "extras" (strategies argmin-a, argmin-b)
    seqgen-replacer      strategy "greedy", registered with replaces="greedy"
    seqgen-extras 0.3.0  a working cell "xgru" (entry point "more-cells")

The venv helpers are local (tests/venvs.py builds one venv per wheel set; these tests
build the wheels once and install two different subsets of them).
"""
from __future__ import annotations

import json
import os
import shutil
import site
import sys
from pathlib import Path

import pytest
from venvs import REPO, sh

pytestmark = pytest.mark.slow

FIXTURES = REPO / "tests" / "fixtures" / "bad_plugins"
VERSION = "0.1.0"  # seqgen's
TINY = {"dataset": {"type": "synthetic", "num_chars": 3000},
        "model": {"cell": {"type": "lstm", "hidden_size": 8}},
        "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 8},
        "train": {"epochs": 1, "max_steps": 5},
        "generate": {"max_new_tokens": 5}}
STRICT = " (strict plugin loading is on)"
# What `seqgen plugins` reports about each bad plugin (stdout), and warns on stderr.
FAILURES = {
    "dup-lstm": ("PROBLEM", "seqgen-dup-lstm",
                 "duplicate cell name 'lstm': registered by plugin 'seqgen_plugins.cells' "
                 "(builtin) and by plugin 'dup-lstm' (seqgen-dup-lstm); the first keeps it. "
                 "To override it on purpose, register with replaces='lstm'."),
    "raising-hook": ("FAILED", "seqgen-raising-hook",
                     "register_cells raised RuntimeError: boom"),
    "bad-defaults": ("PROBLEM", "seqgen-bad-defaults",
                     "cell 'bad-defaults': the defaults of its options schema break it: "
                     "$.width: 0 is less than the minimum of 1"),
    "typo-hook": ("FAILED", "seqgen-typo-hook",
                  "implements 'register_cell', which is not a seqgen hook. "
                  "Did you mean 'register_cells'?"),
    "seqgen-same-ep-a:extras": ("PROBLEM", "seqgen-same-ep-a",
                                "entry-point name 'extras' is also declared by "
                                "seqgen-same-ep-b; this one loads as 'seqgen-same-ep-a:extras'"),
    "seqgen-same-ep-b:extras": ("PROBLEM", "seqgen-same-ep-b",
                                "entry-point name 'extras' is also declared by "
                                "seqgen-same-ep-a; this one loads as 'seqgen-same-ep-b:extras'"),
}


def describe(name: str) -> str:
    """LoadFailure.describe() of a bad plugin, as the warnings and --strict-plugins say it."""
    label, dist, error = FAILURES[name]
    what = "" if label == "PROBLEM" else " failed to load"
    return f"plugin {name!r} from distribution {dist!r}{what}: {error}"


# -- venvs ----------------------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    """Build from a copy, so the source tree gets no build/ or *.egg-info, and builds that
    other tests run at the same time from the same folder cannot collide."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "runs", "*.egg-info", "__pycache__", ".venv", ".pytest_cache",
        "tests", "examples", "benchmarks"))
    return dst


def _make_venv(env_dir: Path, wheels: list[Path]) -> Path:
    """A venv with `wheels` installed --no-deps; torch & co. from the outer environment
    through a .pth path entry (its own .pth files, e.g. the editable hook, are not run)."""
    sh(sys.executable, "-m", "venv", "--without-pip", env_dir)
    py = env_dir / "bin" / "python"
    purelib = sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(purelib, "outer_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    sh(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q",
       *wheels)
    return env_dir


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """Distribution name -> wheel, for seqgen and every fixture, built once."""
    root = tmp_path_factory.mktemp("bad-plugins")
    projects = [_copy(REPO, root / "src" / "seqgen")]
    projects += [_copy(d, root / "src" / d.name) for d in sorted(FIXTURES.iterdir()) if d.is_dir()]
    out = root / "wheels"
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
       "-w", out, *projects)
    built = {w.name.split("-")[0].replace("_", "-"): w for w in out.glob("*.whl")}
    assert sorted(built) == sorted(["seqgen"] + [d.name for d in FIXTURES.iterdir() if d.is_dir()])
    return built


@pytest.fixture(scope="module")
def venv(wheels, tmp_path_factory) -> Path:
    """seqgen with every bad plugin, the replacer and seqgen-extras installed."""
    return _make_venv(tmp_path_factory.mktemp("venv-all") / "venv", list(wheels.values()))


@pytest.fixture(scope="module")
def bare_venv(wheels, tmp_path_factory) -> Path:
    """seqgen alone: no third-party plugin (so neither seqgen-extras nor seqgen-same-ep-a)."""
    return _make_venv(tmp_path_factory.mktemp("venv-bare") / "venv", [wheels["seqgen"]])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A working directory shared by the module's runs."""
    return tmp_path_factory.mktemp("work")


def seqgen(venv: Path, *args, cwd: Path, **env_extra: str):
    env = {k: v for k, v in os.environ.items()
           if k not in ("SEQGEN_PLUGINS", "SEQGEN_DISABLE_PLUGINS", "SEQGEN_STRICT_PLUGINS",
                        "PYTHONPATH")}
    env.update(OMP_NUM_THREADS="1", **env_extra)
    result = sh(venv / "bin" / "seqgen", *args, env=env, cwd=cwd, check=False)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def lines(text: str) -> list[str]:
    """Non-empty lines, runs of spaces collapsed (the CLI pads its columns)."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def third_party(info: dict) -> list[str]:
    return [p["name"] for p in info["plugins"] if p["origin"] != "builtin"]


@pytest.fixture(scope="module")
def listing(venv, work):
    """`seqgen plugins` with everything installed and nothing selected."""
    return seqgen(venv, "plugins", cwd=work)


@pytest.fixture(scope="module")
def lstm_run(venv, work):
    """A tiny run with the built-in lstm, with every bad plugin installed; it also decodes
    with a plugin strategy (argmin-a), which its checkpoint does not need afterwards."""
    spec = json.loads(json.dumps(TINY))
    spec["generate"]["strategies"] = [{"type": "argmin-a"}]
    (work / "lstm.json").write_text(json.dumps(spec))
    return seqgen(venv, "run", "lstm.json", "--out", "lstm-run", cwd=work)


@pytest.fixture(scope="module")
def xgru_run(venv, work):
    """A tiny run whose cell comes from seqgen-extras 0.3.0."""
    spec = json.loads(json.dumps(TINY))
    spec["model"]["cell"]["type"] = "xgru"
    (work / "xgru.json").write_text(json.dumps(spec))
    result = seqgen(venv, "run", "xgru.json", "--out", "xgru-run", cwd=work,
                    SEQGEN_PLUGINS="seqgen-extras")
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "xgru-run"


# -- 1. `seqgen plugins` lists every failure, and always works ---------------------------------
def test_plugins_lists_each_failure_with_its_cause_and_distribution(listing):
    assert listing.returncode == 0, listing.stderr
    out = lines(listing.stdout)
    for name, (label, dist, error) in FAILURES.items():
        assert f"{label} {name} (distribution {dist}): {error}" in out
    assert sorted(lines(listing.stderr)) == sorted(f"warning: {describe(n)}" for n in FAILURES)


def test_plugins_shows_versions_hooks_and_what_still_loaded(listing):
    out = lines(listing.stdout)
    for line in [
        f"seqgen_plugins.cells (seqgen {VERSION}; hooks: register_cells)",
        "dup-lstm (seqgen-dup-lstm 0.2.0; hooks: register_cells)",
        "cell lstm-extra An LSTM under a name of its own.",   # the duplicate's other cell
        "wrong-type (seqgen-wrong-type 0.1.2; hooks: register_strategies)",
        "strategy int-strategy Not a strategy at all.",     # named only at first use
        "replacer (seqgen-replacer 0.1.7; hooks: register_strategies)",
        "strategy greedy The replacer's argmax. [replaces seqgen_plugins.strategies (seqgen)]",
        "more-cells (seqgen-extras 0.3.0; hooks: register_cells)",
        "cell xgru torch's GRU, from a third-party distribution.",
    ]:
        assert line in out, line
    text = listing.stdout
    # the built-in keeps "lstm"; what the raising hook registered before raising is dropped;
    # the bad-defaults cell is refused; the typo plugin is not loaded at all
    assert "cell lstm LSTM, torch-fused (nn.LSTM)" in out
    assert "Another 'lstm'" not in text and "never-registered" not in text
    assert not any(line.startswith("cell bad-defaults") for line in out)
    assert not any(line.startswith("typo-hook (") for line in out)


def test_strict_plugins_lists_everything_then_fails_with_every_problem(venv, work):
    result = seqgen(venv, "--strict-plugins", "plugins", cwd=work)
    assert result.returncode == 1
    assert "seqgen_plugins.cells (seqgen" in result.stdout           # the listing still shows
    errors = lines(result.stderr)
    assert errors[0] == f"Error: {len(FAILURES)} plugin problems{STRICT}:"
    assert sorted(errors[1:]) == sorted(describe(name) for name in FAILURES)
    dup = seqgen(venv, "--strict-plugins", "validate", "quickstart", cwd=work,
                 SEQGEN_PLUGINS="dup-lstm")
    assert (dup.returncode, dup.stdout) == (1, "")
    assert dup.stderr.strip() == f"Error: {describe('dup-lstm')}{STRICT}"


# -- 2. specs still validate and run, with the built-in lstm ---------------------------------
def test_validate_explain_names_the_builtin_lstm(venv, work, lstm_run):
    result = seqgen(venv, "validate", "lstm.json", "--explain", "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    components = {c["path"]: c for c in json.loads(result.stdout)["components"]}
    assert components["$.model.cell"] == {
        "path": "$.model.cell", "kind": "cell", "name": "lstm", "plugin": "seqgen_plugins.cells",
        "distribution": "seqgen", "version": VERSION}
    [argmin] = [c for c in components.values() if c["name"] == "argmin-a"]
    assert (argmin["plugin"], argmin["distribution"]) == ("seqgen-same-ep-a:extras",
                                                          "seqgen-same-ep-a")
    assert all(line.startswith("warning: plugin ") for line in lines(result.stderr))


def test_a_run_works_with_every_bad_plugin_installed(lstm_run, work):
    assert lstm_run.returncode == 0, lstm_run.stdout + lstm_run.stderr
    assert "run directory: lstm-run" in lines(lstm_run.stdout)
    assert (work / "lstm-run" / "last.safetensors").is_file()
    assert sorted(lines(lstm_run.stderr)) == sorted(f"warning: {describe(n)}" for n in FAILURES)


# -- 3. a factory returning the wrong type is named at first use ------------------------------
def test_wrong_type_is_named_with_its_plugin_at_first_use(venv, work, lstm_run):
    result = seqgen(venv, "generate", "lstm-run", "--strategy", "int-strategy", cwd=work,
                    SEQGEN_PLUGINS="wrong-type")
    assert (result.returncode, result.stdout) == (1, "")
    assert lines(result.stderr) == [
        "Error: strategy 'int-strategy' (plugin 'wrong-type', distribution seqgen-wrong-type): "
        "its factory returned int 7, not a seqgen.Strategy"]


# -- 4. addressing plugins: qualified names, distributions, the allow and deny lists ---------
def test_one_entry_point_name_in_two_distributions_loads_both_qualified(listing):
    out = lines(listing.stdout)
    assert "seqgen-same-ep-a:extras (seqgen-same-ep-a 0.1.5; hooks: register_strategies)" in out
    assert "seqgen-same-ep-b:extras (seqgen-same-ep-b 0.1.6; hooks: register_strategies)" in out
    assert "strategy argmin-a The least likely token (from seqgen-same-ep-a)." in out
    assert "strategy argmin-b The least likely token (from seqgen-same-ep-b)." in out


def test_seqgen_plugins_selects_by_qualified_name(venv, work):
    result = seqgen(venv, "plugins", "--json", cwd=work, SEQGEN_PLUGINS="seqgen-same-ep-b:extras")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert third_party(info) == ["seqgen-same-ep-b:extras"]
    [plugin] = [p for p in info["plugins"] if p["name"] == "seqgen-same-ep-b:extras"]
    assert [c["name"] for c in plugin["components"]] == ["argmin-b"]
    assert {f["name"] for f in info["failures"]} <= {"seqgen-same-ep-b:extras"}
    assert info["warnings"] == []


def test_seqgen_plugins_takes_distribution_names_and_warns_about_unknown_ones(venv, work):
    result = seqgen(venv, "plugins", "--json", cwd=work, SEQGEN_PLUGINS="seqgen-extras,nonexistent")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert third_party(info) == ["more-cells"] and info["failures"] == []
    note = ("SEQGEN_PLUGINS names 'nonexistent', which matches no installed plugin "
            "(entry point or distribution)")
    assert info["warnings"] == [note]
    assert lines(result.stderr) == [f"warning: {note}"]


def test_seqgen_disable_plugins_leaves_a_distribution_out(venv, work):
    result = seqgen(venv, "plugins", "--json", cwd=work, SEQGEN_DISABLE_PLUGINS="seqgen-dup-lstm")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert sorted(third_party(info)) == sorted([
        "bad-defaults", "more-cells", "raising-hook", "replacer", "seqgen-same-ep-a:extras",
        "seqgen-same-ep-b:extras", "wrong-type"])
    assert "dup-lstm" not in {f["name"] for f in info["failures"]}
    assert "lstm-extra" not in result.stdout and "dup-lstm" not in result.stderr


# -- 5. a checkpoint whose cell plugin is missing says what to install -----------------------
MISSING = ("its cell 'xgru' comes from plugin 'more-cells' of distribution 'seqgen-extras' "
           "0.3.0, which is not installed here: pip install seqgen-extras==0.3.0")


def test_generate_names_the_distribution_to_install(bare_venv, xgru_run, work):
    result = seqgen(bare_venv, "generate", "xgru-run", "--max-new-tokens", "3", cwd=work)
    assert (result.returncode, result.stdout) == (1, "")
    assert lines(result.stderr) == [f"Error: xgru-run: {MISSING}"]
    assert "Did you mean" not in result.stderr   # "xgru" is close to the built-in "gru"


def test_eval_names_the_distribution_to_install(bare_venv, xgru_run, work):
    (work / "text.txt").write_text("the cat sees a dog . the dog sees a cat .\n")
    result = seqgen(bare_venv, "eval", "xgru-run", "--text", "text.txt", cwd=work)
    assert (result.returncode, result.stdout) == (1, "")
    assert lines(result.stderr) == [f"Error: xgru-run: {MISSING}"]


def test_a_checkpoint_needs_only_the_plugin_of_its_cell(bare_venv, lstm_run, work):
    # lstm-run decoded with argmin-a (seqgen-same-ep-a), which is not installed here
    assert lstm_run.returncode == 0, lstm_run.stderr
    result = seqgen(bare_venv, "generate", "lstm-run", "--prompt", "the ", "--max-new-tokens", "3",
                    "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[0]["logprobs"]) == 3
