"""Spec composition: extends (presets and files), deep merge, cycles, vars and env, and
where every field came from (explain)."""
import json

import pytest

import seqgen
from seqgen import hookimpl
from seqgen.compose import deep_merge

BASE = {"name": "base", "dataset": {"type": "synthetic", "num_chars": 3000},
        "model": {"cell": {"type": "lstm", "hidden_size": 16}},
        "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 8}}


class Presets:
    __name__ = "test-presets"

    @hookimpl
    def register_presets(self, register):
        register("base", BASE, "a tiny base")
        register("child", {"extends": "base", "model": {"cell": {"hidden_size": 32}}}, "deeper")
        register("needy", {"extends": "base", "dataset": {"type": "text"}}, "needs a corpus",
                 needs={"dataset.path": "a text file"})


@pytest.fixture
def s():
    return seqgen.Session([Presets()], entry_points=False)


def write(path, spec):
    path.write_text(json.dumps(spec))
    return path


def test_deep_merge_merges_objects_and_replaces_everything_else():
    assert deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": 2}) == \
        {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}


def test_a_component_whose_type_changes_is_replaced_not_merged():
    base = {"cell": {"type": "lstm", "hidden_size": 8, "num_layers": 2}}
    assert deep_merge(base, {"cell": {"type": "gru"}}) == {"cell": {"type": "gru"}}
    assert deep_merge(base, {"cell": {"type": "lstm", "num_layers": 1}}) == \
        {"cell": {"type": "lstm", "hidden_size": 8, "num_layers": 1}}


def test_extends_a_preset_chain_and_merges_on_top(s):
    spec = s.resolve({"extends": "child", "sampler": {"batch_size": 2}})
    assert spec["model"]["cell"]["hidden_size"] == 32            # child over base
    assert spec["sampler"] == {**spec["sampler"], "batch_size": 2, "num_steps": 8}
    assert spec["name"] == "base" and "extends" not in spec


def test_extends_a_file_relative_to_the_extending_file(s, tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "parent.json", {"extends": "base", "seed": 7})
    child = write(tmp_path / "child.json", {"extends": "sub/parent.json", "name": "kid"})
    spec = s.resolve(str(child))
    assert (spec["seed"], spec["name"], spec["model"]["cell"]["hidden_size"]) == (7, "kid", 16)


def test_a_cycle_is_an_error_naming_the_chain(s, tmp_path):
    write(tmp_path / "a.json", {"extends": "b.json"})
    write(tmp_path / "b.json", {"extends": "a.json"})
    with pytest.raises(seqgen.SpecError) as info:
        s.resolve(str(tmp_path / "a.json"))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert info.value.problems == [f"$.extends: a cycle: file {a} -> file {b} -> file {a}"]


def test_a_preset_cycle_is_refused_when_registered():
    class Loop:
        __name__ = "loop"

        @hookimpl
        def register_presets(self, register):
            register("x", {"extends": "y"})
            register("y", {"extends": "x"})
    s = seqgen.Session([Loop()], entry_points=False)
    assert not s.registry.has_preset("x") and not s.registry.has_preset("y")
    assert [f.error for f in s.load_failures] == [
        "preset 'x' is invalid: invalid spec: $.extends: a cycle: preset 'x' -> preset 'y' -> "
        "preset 'x'",
        "preset 'y' is invalid: invalid spec: $.extends: a cycle: preset 'y' -> preset 'x' -> "
        "preset 'y'"]


def test_unknown_preset_in_extends_suggests_the_nearest(s):
    with pytest.raises(seqgen.SpecError, match=r"\$\.extends: Can't find 'bace' among presets\. "
                                               r"Available: .*Did you mean 'base'\?"):
        s.resolve({"extends": "bace"})


def test_a_preset_that_needs_a_field_says_how_to_give_it(s, tmp_path):
    with pytest.raises(seqgen.SpecError) as info:
        s.resolve("needy")
    assert info.value.problems == [
        "$.dataset.path: preset 'needy' needs a text file: give it with --set "
        "dataset.path=VALUE (or in a spec that extends 'needy')"]
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc " * 100)
    assert s.resolve("needy", [f"dataset.path={corpus}"])["dataset"]["path"] == str(corpus)


def test_comments_are_dropped_at_any_depth(s):
    spec = s.resolve({"$comment": "top", "extends": "base",
                      "model": {"$comment": {"cell": "why"}, "cell": {"$comment": "x"}}})
    assert "$comment" not in json.dumps(spec)


# -- vars and env ---------------------------------------------------------------------------
def test_vars_are_typed_when_whole_and_text_inside_strings(s):
    spec = s.resolve({"extends": "base", "vars": {"h": 24, "tag": "v1", "both": "${vars.tag}-x"},
                      "name": "run-${vars.tag}-${vars.h}",
                      "model": {"cell": {"hidden_size": "${vars.h}"}},
                      "generate": {"prompts": ["${vars.both}", "$${vars.h}"]}})
    assert spec["model"]["cell"]["hidden_size"] == 24
    assert spec["name"] == "run-v1-24"
    assert spec["generate"]["prompts"] == ["v1-x", "${vars.h}"]      # $${ is a literal ${
    assert spec["vars"] == {"h": 24, "tag": "v1", "both": "v1-x"}   # saved resolved


def test_set_vars_overrides_like_any_field(s):
    spec = s.resolve({"extends": "base", "vars": {"h": 24},
                      "model": {"cell": {"hidden_size": "${vars.h}"}}}, ["vars.h=40"])
    assert spec["model"]["cell"]["hidden_size"] == 40


def test_env_references_with_and_without_defaults(s):
    env = {"SEQ_EPOCHS": "3", "SEQ_NAME": "from-env"}
    spec = s.resolve({"extends": "base", "name": "${env:SEQ_NAME}",
                      "train": {"epochs": "${env:SEQ_EPOCHS}", "max_steps": "${env:NOPE:-5}"}},
                     env=env)
    assert (spec["name"], spec["train"]["epochs"], spec["train"]["max_steps"]) == ("from-env", 3, 5)


def test_every_reference_problem_is_reported_at_once_with_its_path(s):
    with pytest.raises(seqgen.SpecError) as info:
        s.resolve({"extends": "base", "vars": {"a": "${vars.b}", "b": "${vars.a}"},
                   "name": "${env:SEQ_UNSET}", "seed": "${vars.missing}",
                   "out": "${oops}", "model": {"cell": {"hidden_size": "${vars.a}"}}}, env={})
    assert info.value.problems == [
        "$.name: environment variable SEQ_UNSET is not set (give a default with "
        "${env:SEQ_UNSET:-VALUE})",
        "$.vars.b: variables refer to each other in a cycle: vars.a -> vars.b -> vars.a",
        "$.seed: ${vars.missing}: no such variable (vars has: a, b)",
        "$.out: ${oops} is not a reference seqgen knows: use ${vars.NAME}, ${env:NAME} or "
        "${env:NAME:-default}"]


# -- provenance -------------------------------------------------------------------------------
def test_explain_says_where_every_field_came_from(s, tmp_path):
    spec = write(tmp_path / "spec.json", {"extends": "child", "seed": 3})
    report = s.explain(str(spec), ["train.epochs=2"])
    origin = {f["path"]: (f["source"], f.get("name")) for f in report["fields"]}
    assert origin["$.model.cell.hidden_size"] == ("preset", "child")
    assert origin["$.sampler.num_steps"] == ("preset", "base")
    assert origin["$.seed"] == ("file", str(spec))
    assert origin["$.train.epochs"] == ("override", "train.epochs=2")
    assert origin["$.train.clip_norm"] == ("default", None)
    assert set(origin) == {f["path"] for f in report["fields"]}
    [cell] = [c for c in report["components"] if c["path"] == "$.model.cell"]
    assert cell == {"path": "$.model.cell", "kind": "cell", "name": "lstm",
                    "plugin": "seqgen_plugins.cells", "distribution": "seqgen",
                    "version": seqgen.__version__}


def test_explain_lists_nested_components(s):
    report = s.explain({"extends": "base", "generate": {"strategies": [
        {"type": "sample", "processors": [{"type": "temperature", "temperature": 0.5}]}]}})
    paths = [c["path"] for c in report["components"]]
    assert "$.generate.strategies[0].processors[0]" in paths


def test_an_unclosed_reference_is_an_error_and_the_escape_is_not(s):
    with pytest.raises(seqgen.SpecError) as info:
        s.resolve({"extends": "base", "name": "run-${vars.tag"})
    assert info.value.problems == ["$.name: 'run-${vars.tag' opens a ${ reference it never "
                                   "closes with } (write $${ for a literal ${)"]
    assert s.resolve({"extends": "base", "name": "a $${b"})["name"] == "a ${b"


def test_a_missing_parent_file_is_reported_at_extends_and_named_by_its_spec(s, tmp_path):
    child = write(tmp_path / "child.json", {"extends": "gone.json"})
    with pytest.raises(seqgen.SpecError) as info:
        s.resolve(str(child))
    assert str(info.value) == (f"{child}: invalid spec: $.extends: spec file not found: "
                               f"{tmp_path / 'gone.json'}")
    broken = tmp_path / "broken.json"
    broken.write_text("{oops")
    write(child, {"extends": "broken.json"})
    with pytest.raises(seqgen.SpecError) as info:   # the parent's own problem names the parent
        s.resolve(str(child))
    assert str(info.value).startswith(f"{broken}: invalid spec: malformed JSON at line 1")


def test_specs_saved_by_earlier_versions_still_resolve(s):
    old = {"extends": "base", "train": {
        "optimizer": {"type": "adam", "lr": 0.01, "weight_decay": 0, "momentum": 0},
        "schedule": {"type": "constant", "gamma": 0.97, "start_epoch": 10, "step_size": 10,
                     "warmup_steps": 0, "min_factor": 0.0}}}
    train = s.resolve(old)["train"]
    assert train["optimizer"] == {"type": "adam", "lr": 0.01, "weight_decay": 0}
    assert train["schedule"] == {"type": "constant"}
    old["train"]["optimizer"]["momentum"] = 0.9       # not what 0.1 wrote: still refused
    with pytest.raises(seqgen.SpecError, match=r"\$\.train\.optimizer: Additional properties"):
        s.resolve(old)


def test_a_saved_spec_with_a_literal_reference_runs_again_as_it_was(s, tmp_path):
    from seqgen.spec import spec_text
    resolved = s.resolve({"extends": "base", "name": "lit-$${env:NOPE}"}, env={})
    assert resolved["name"] == "lit-${env:NOPE}"
    saved = tmp_path / "spec.json"
    saved.write_text(spec_text(resolved))
    assert s.resolve(str(saved), env={}) == resolved


def test_set_extends_rebases_the_spec(s):
    spec = s.resolve({"extends": "base"}, ["extends=child"])
    assert spec["model"]["cell"]["hidden_size"] == 32 and "extends" not in spec


def test_explain_forgets_what_a_replaced_subtree_said(s, tmp_path):
    report = s.explain({"extends": "child", "model": {"cell": {"type": "gru"}},
                        "generate": {"strategies": [{"type": "greedy"}]}})
    origin = {f["path"]: f["source"] for f in report["fields"]}
    assert origin["$.model.cell.hidden_size"] == "default"    # child's 32 went with the lstm
    assert origin["$.generate.strategies[0].type"] == "python"


def test_nan_and_placeholders_are_refused_with_their_path(s):
    with pytest.raises(seqgen.SpecError) as info:
        s.resolve({"extends": "base", "train": {"clip_norm": float("nan")},
                   "dataset": {"type": "text", "path": "<required: a corpus>"}},
                  ["train.optimizer.lr=Infinity"])
    assert info.value.problems == [
        "$.dataset.path: still the placeholder '<required: a corpus>': fill it in",
        "$.train.clip_norm: nan is not a finite number",
        "$.train.optimizer.lr: inf is not a finite number"]


def test_a_preset_is_checked_without_the_users_environment():
    class EnvPreset:
        __name__ = "env-preset"

        @hookimpl
        def register_presets(self, register):
            register("from-env", {"extends": "quickstart", "name": "${env:SEQGEN_TEST_UNSET}"})
            register("relative", {"extends": "some.json"})
    s = seqgen.Session([EnvPreset()], entry_points=False)
    assert s.registry.has_preset("from-env")
    assert [f.error for f in s.load_failures] == [
        "preset 'relative' is invalid: invalid spec: $.extends: preset 'relative' extends the "
        "relative path 'some.json'; a preset may extend other presets or absolute paths only"]
