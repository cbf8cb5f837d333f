"""seqgen.scaffold: `seqgen plugins new KIND NAME` writes a plugin package that works as is.

Fast tests check names, refusals and the files; the slow one installs all four kinds into
a fresh venv (as tests/test_packaging.py does) and runs each package's own tests there.
"""
from __future__ import annotations

import importlib
import json
import os
import sys

import pytest
import torch
from venvs import REPO, build_venv, sh

import seqgen
from seqgen.scaffold import SCAFFOLD_KINDS, class_name, scaffold
from seqgen.testing import check_cell, check_dataset, check_sampler, check_strategy

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

NAMES = {"cell": "elman-x", "dataset": "twinkle", "sampler": "windows-x", "strategy": "top-k-x"}


@pytest.mark.parametrize("name", ["", "My-Cell", "1cell", "a--b", "cell-", "-cell", "a b",
                                  "café", "a.b", "x" * 41, "seqgen/x"])
def test_invalid_names_are_refused(name, tmp_path):
    with pytest.raises(seqgen.PluginError, match=r"is not a valid plugin name: use lowercase "
                                                 r"letters and digits"):
        scaffold("cell", name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_kinds_and_built_in_names_are_refused(tmp_path):
    with pytest.raises(seqgen.PluginError, match="can't scaffold a plugin of kind 'optimizer': "
                                                 "choose one of cell, dataset, sampler, strategy"):
        scaffold("optimizer", "adam-x", tmp_path / "a")
    with pytest.raises(seqgen.PluginError, match=r"'lstm' is already the name of a built-in "
                                                 r"cell; pick another name"):
        scaffold("cell", "lstm", tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_that_is_not_empty_is_never_overwritten(tmp_path):
    target = tmp_path / "seqgen-mine"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(seqgen.PluginError) as caught:
        scaffold("cell", "mine", target)
    assert str(caught.value) == (f"{target} already exists and is a folder that is not empty; "
                                 "nothing was written. Give another folder (-o DIR) or remove it.")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(seqgen.PluginError, match="already exists and is a file"):
        scaffold("cell", "mine", tmp_path / "file")


def test_default_folder_is_seqgen_name_in_the_working_directory(tmp_path):
    # conftest runs each test in its own empty tmp_path
    made = scaffold("sampler", "my_windows")
    assert made == tmp_path / "seqgen-my_windows"
    assert sorted(str(p.relative_to(made)) for p in made.rglob("*") if p.is_file()) == [
        "README.md", "pyproject.toml", "seqgen_my_windows/__init__.py",
        "tests/test_my_windows.py"]
    (tmp_path / "empty").mkdir()
    assert scaffold("cell", "mine", tmp_path / "empty") == tmp_path / "empty"  # empty is fine


@pytest.mark.parametrize("kind", SCAFFOLD_KINDS)
def test_the_package_files(kind, tmp_path):
    name = NAMES[kind]
    ident = name.replace("-", "_")
    made = scaffold(kind, name, tmp_path / "pkg")
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads((made / "pyproject.toml").read_text())
    assert project["project"]["name"] == f"seqgen-{name}"
    assert project["project"]["entry-points"]["seqgen"] == {name: f"seqgen_{ident}"}
    assert project["project"]["dependencies"] == [f"seqgen>={seqgen.__version__}"]
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    module = (made / f"seqgen_{ident}" / "__init__.py").read_text()
    test = (made / "tests" / f"test_{ident}.py").read_text()
    compile(module, "module", "exec")
    compile(test, "test", "exec")
    hook = {"cell": "cells", "dataset": "datasets", "sampler": "samplers",
            "strategy": "strategies"}[kind]
    assert f"@seqgen.hookimpl\ndef register_{hook}(register):" in module
    assert "from seqgen.options import" in module
    kit = f"check_{kind}"
    assert f"from seqgen.testing import {kit}" in test
    readme = (made / "README.md").read_text()
    for needle in ("pip install -e .", "pytest", f'"type": "{name}"', f"seqgen.testing.{kit}"):
        assert needle in readme
    assert "$" not in module + test + readme   # every placeholder was filled


def test_class_names():
    assert class_name("cell", "elman") == "ElmanCell"
    assert class_name("cell", "my-cell") == "MyCell"
    assert class_name("strategy", "none") == "NoneStrategy"
    assert class_name("sampler", "a1_b2") == "A1B2Sampler"


KITS = {
    "cell": lambda m, c: check_cell(c.factory, input_size=3, options={"hidden_size": 4,
                                                                       "num_layers": 2}),
    "dataset": lambda m, c: check_dataset(c.factory, options={}, task=c.extra["task"]),
    "sampler": lambda m, c: check_sampler(c.factory, seqgen.TokenStream(torch.arange(200)),
                                          options={"batch_size": 4, "num_steps": 5}),
    "strategy": lambda m, c: check_strategy(c.factory, options={"k": 3}),
}


@pytest.mark.parametrize("kind", SCAFFOLD_KINDS)
def test_the_stub_registers_and_passes_its_kit_in_process(kind, tmp_path, monkeypatch):
    name = NAMES[kind]
    made = scaffold(kind, name, tmp_path / "pkg")
    monkeypatch.syspath_prepend(str(made))
    module = importlib.import_module(f"seqgen_{name.replace('-', '_')}")
    try:
        session = seqgen.Session(plugins=[module], entry_points=False)
        component = session.component(kind, name)
        assert component.plugin and component.description
        KITS[kind](module, component)
    finally:
        sys.modules.pop(module.__name__, None)


@pytest.mark.slow
def test_all_four_kinds_install_into_a_fresh_venv_and_pass_their_tests(tmp_path):
    packages = {kind: scaffold(kind, name, tmp_path / f"seqgen-{name}")
                for kind, name in NAMES.items()}
    venv = build_venv(tmp_path / "env", [REPO, *packages.values()])
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("SEQGEN_PLUGINS", "PYTHONPATH")}
    for kind, package in packages.items():
        result = sh(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", env=env, cwd=package,
                    check=False)
        assert result.returncode == 0, f"{kind}:\n{result.stdout}\n{result.stderr}"
        assert " passed" in result.stdout and "failed" not in result.stdout
    listing = sh(py, "-c", "import json, seqgen; s = seqgen.Session(); print(json.dumps("
                           "{'file': seqgen.__file__, 'failures': [f.name for f in "
                           "s.load_failures], 'components': {c.kind + ':' + c.name: "
                           "c.distribution for c in s.registry.all()}}))",
                 env=env, cwd=tmp_path)
    found = json.loads(listing.stdout)
    assert str(venv) in found["file"], found["file"]   # the wheel, not the source tree
    assert found["failures"] == []
    for kind, name in NAMES.items():
        assert found["components"][f"{kind}:{name}"] == f"seqgen-{name}"
