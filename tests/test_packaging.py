"""Installed, not from the source tree: a wheel in a fresh virtual environment.

The venv gets seqgen's wheel, the example third-party plugin and a test-only plugin that
raises on import, all installed --no-deps. Their dependencies (torch, ...) come from the
outer environment through a .pth *path* entry: a plain directory on sys.path, whose own
.pth files (the editable install's import hook) are not run, so `import seqgen` can
only find the installed wheel.
"""
import json
import os

import pytest
from venvs import REPO, build_venv, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    return build_venv(tmp_path_factory.mktemp("pkg"), [
        REPO, REPO / "examples" / "plugin-indrnn", REPO / "tests" / "fixtures" / "broken_plugin"])


def seqgen_cmd(venv, *args, env_extra=None, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("SEQGEN_PLUGINS", "PYTHONPATH")}
    env.update(env_extra or {})
    return sh(venv / "bin" / "seqgen", *args, env=env, cwd=cwd, check=False)


def test_installed_package_runs_an_example_from_outside_the_repo(venv, tmp_path):
    where = sh(venv / "bin" / "python", "-c",
               "import seqgen, seqgen_plugins, seqgen.schemas as s, importlib.resources as r;"
               "print(seqgen.__file__); print(seqgen_plugins.__file__);"
               "print(r.files(s).joinpath('spec.schema.json'))", cwd=tmp_path).stdout.split()
    assert all(str(venv) in w for w in where), where
    # the example extends the built-in preset, which the wheel must carry as package data
    spec = json.loads((REPO / "examples" / "quickstart.json").read_text())
    spec.update({"train": {"epochs": 1}, "generate": {"prompts": ["the "], "max_new_tokens": 10},
                 "dataset": {"num_chars": 3000}})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = seqgen_cmd(venv, "run", "spec.json", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "run directory: out" in result.stdout
    assert (tmp_path / "out" / "last.safetensors").is_file()


def test_third_party_plugin_is_listed_and_the_broken_one_is_reported(venv, tmp_path):
    result = seqgen_cmd(venv, "plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    indrnn = [p for p in info["plugins"] if p["name"] == "indrnn"]
    assert indrnn and indrnn[0]["origin"] == "seqgen-indrnn"
    assert [c["name"] for c in indrnn[0]["components"]] == ["indrnn"]
    assert info["failures"] == [{"name": "broken", "distribution": "seqgen-broken-plugin",
                                 "error": "RuntimeError: this plugin is broken on purpose",
                                 "partial": False}]
    assert "plugin 'broken' from distribution 'seqgen-broken-plugin' failed to load" in result.stderr


def test_third_party_options_join_the_schema_and_validate(venv, tmp_path):
    schema = json.loads(seqgen_cmd(venv, "schema", cwd=tmp_path).stdout)
    cell = schema["properties"]["model"]["else"]["properties"]["cell"]
    assert "indrnn" in cell["properties"]["type"]["enum"]
    [rule] = [r for r in cell["allOf"] if r["if"]["properties"]["type"]["const"] == "indrnn"]
    assert "recurrent_max" in rule["then"]["properties"]
    (tmp_path / "s.json").write_text(json.dumps({"dataset": {"type": "synthetic"},
                                                 "model": {"cell": {"type": "indrnn",
                                                                    "recurrent_max": -1}}}))
    result = seqgen_cmd(venv, "validate", "s.json", cwd=tmp_path)
    assert result.returncode == 2
    assert "$.model.cell.recurrent_max: -1 is less than or equal to the minimum of 0" in result.stderr


def test_a_spec_uses_the_third_party_cell(venv, tmp_path):
    spec = {"dataset": {"type": "synthetic", "num_chars": 2000},
            "model": {"cell": {"type": "indrnn", "hidden_size": 16}},
            "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 16},
            "train": {"epochs": 1}, "generate": {"prompts": ["a "], "max_new_tokens": 5}}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    result = seqgen_cmd(venv, "run", "s.json", "--out", "o", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    gen = seqgen_cmd(venv, "generate", "o", "--prompt", "a ", "--max-new-tokens", "5", "--json",
                     cwd=tmp_path)
    assert len(json.loads(gen.stdout)[0]["logprobs"]) == 5


def test_strict_switch_makes_the_broken_plugin_fatal(venv, tmp_path):
    result = seqgen_cmd(venv, "--strict-plugins", "plugins", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: plugin 'broken' from distribution "
                                     "'seqgen-broken-plugin' failed to load: RuntimeError: this "
                                     "plugin is broken on purpose (strict plugin loading is on)")


def test_env_var_disables_third_party_plugins(venv, tmp_path):
    result = seqgen_cmd(venv, "plugins", "--json", env_extra={"SEQGEN_PLUGINS": ""}, cwd=tmp_path)
    info = json.loads(result.stdout)
    assert info["failures"] == [] and {p["origin"] for p in info["plugins"]} == {"builtin"}
    only = seqgen_cmd(venv, "plugins", "--json", env_extra={"SEQGEN_PLUGINS": "indrnn"}, cwd=tmp_path)
    assert json.loads(only.stdout)["failures"] == []


def test_example_plugin_passes_its_own_contract_tests(venv, tmp_path):
    result = sh(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                REPO / "examples" / "plugin-indrnn" / "tests", cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_python_dash_m_seqgen(venv, tmp_path):
    result = sh(venv / "bin" / "python", "-m", "seqgen", "--version", cwd=tmp_path)
    assert result.stdout.strip() == "seqgen, version 0.1.0"
