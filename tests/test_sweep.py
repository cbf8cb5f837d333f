"""Expanding a sweep into variant specs: order, names, overrides, and every problem at once."""
import pytest

import seqgen
from seqgen.sweep import expand


def names(sweep):
    return [v.name for v in sweep.variants]


def test_grid_runs_every_combination_first_field_slowest(session, tiny_spec):
    tiny_spec["sweep"] = {"grid": {"model.cell.type": ["rnn", "gru", "lstm"],
                                   "sampler.type": ["random", "sequential"]}}
    sweep = expand(session, tiny_spec)
    assert names(sweep) == ["cell=rnn,sampler=random", "cell=rnn,sampler=sequential",
                            "cell=gru,sampler=random", "cell=gru,sampler=sequential",
                            "cell=lstm,sampler=random", "cell=lstm,sampler=sequential"]
    assert [(v.spec["model"]["cell"]["type"], v.spec["sampler"]["type"])
            for v in sweep.variants] == [(c, s) for c in ("rnn", "gru", "lstm")
                                         for s in ("random", "sequential")]
    assert sweep.fields == ["model.cell.type", "sampler.type"]
    assert sweep.name == "tiny" and sweep.sample_tokens == 60          # the schema default


def test_variant_specs_are_resolved_without_the_sweep_and_named_after_the_variant(
        session, tiny_spec):
    tiny_spec["sweep"] = {"grid": {"model.cell.num_layers": [1, 2]}}
    variants = expand(session, tiny_spec).variants
    assert [v.spec["model"]["cell"]["num_layers"] for v in variants] == [1, 2]
    assert all("sweep" not in v.spec for v in variants)
    assert [v.spec["name"] for v in variants] == ["tiny-num_layers=1", "tiny-num_layers=2"]
    assert variants[0].spec["train"]["optimizer"]["lr"] == 0.002      # defaults filled
    assert "sweep" in tiny_spec                                        # the input is untouched


def test_listed_variants_follow_the_grid_with_their_own_or_generated_names(session, tiny_spec):
    tiny_spec["sweep"] = {
        "grid": {"model.cell.type": ["gru"]},
        "variants": [{"name": "deep-lstm", "set": {"model.cell.num_layers": 2,
                                                   "model.cell.dropout": 0.1}},
                     {"set": {"generate.strategies": [{"type": "top-k", "k": 3}],
                              "train.optimizer.lr": 0.01}}]}
    variants = expand(session, tiny_spec).variants
    assert [v.name for v in variants] == [
        "cell=gru", "deep-lstm", "strategies=top-k-k=3,lr=0.01"]
    assert variants[1].spec["model"]["cell"]["dropout"] == 0.1
    (strategy,) = variants[2].spec["generate"]["strategies"]
    assert (strategy["type"], strategy["k"], strategy["temperature"]) == ("top-k", 3, 1.0)
    assert variants[2].settings == {"generate.strategies": [{"type": "top-k", "k": 3}],
                                    "train.optimizer.lr": 0.01}


def test_values_are_set_exactly_as_given(session, tiny_spec):
    # "3" must stay a string: the grid builds --set strings, and JSON round-trips them
    tiny_spec["sweep"] = {"grid": {"generate.prompts": [["3"], ["x=1"]]}}
    variants = expand(session, tiny_spec).variants
    assert [v.spec["generate"]["prompts"] for v in variants] == [["3"], ["x=1"]]


def test_no_sweep_is_one_variant_named_after_the_spec(session, tiny_spec):
    sweep = expand(session, tiny_spec)
    assert names(sweep) == ["tiny"] and sweep.fields == []
    assert sweep.variants[0].spec == session.resolve(tiny_spec)


def test_a_sweep_given_separately_replaces_the_specs_own(session, tiny_spec):
    tiny_spec["sweep"] = {"grid": {"model.cell.type": ["rnn", "gru"]}}
    sweep = expand(session, tiny_spec, {"grid": {"sampler.type": ["random"]}})
    assert names(sweep) == ["sampler=random"]
    assert sweep.variants[0].spec["model"]["cell"]["type"] == "lstm"


def test_command_line_overrides_apply_first_and_a_variant_wins(session, tiny_spec):
    tiny_spec["sweep"] = {"grid": {"model.cell.type": ["rnn", "gru"]}}
    spec = seqgen.spec.apply_overrides(tiny_spec, ["model.cell.type=lstm",
                                                   "model.cell.hidden_size=12"])
    variants = expand(session, spec).variants
    assert [(v.spec["model"]["cell"]["type"], v.spec["model"]["cell"]["hidden_size"])
            for v in variants] == [("rnn", 12), ("gru", 12)]


def test_every_invalid_variant_is_reported_at_once_with_its_name(session, tiny_spec):
    tiny_spec["sweep"] = {"grid": {"model.cell.type": ["rnn", "lstmm"],
                                   "model.cell.hidden_size": [8, -1]}}
    with pytest.raises(seqgen.SpecError) as e:
        expand(session, tiny_spec, source="s.json")
    problems = e.value.problems
    assert len(problems) == 3
    assert problems[0] == ("cell=rnn,hidden_size=-1: $.model.cell.hidden_size: -1 is less "
                           "than the minimum of 1")
    assert problems[1].startswith("cell=lstmm,hidden_size=8: $.model.cell.type: ")
    assert "Did you mean 'lstm'?" in problems[1]
    assert problems[2].startswith("cell=lstmm,hidden_size=-1: $.model.cell.type: ")
    assert str(e.value).startswith("s.json: invalid spec (3 problems):")


def test_fields_sharing_a_last_part_are_named_by_their_whole_path(session, tiny_spec):
    # both fields end in "x": the names (here in the errors) keep them apart
    tiny_spec["sweep"] = {"grid": {"model.cell.x": [1], "sampler.x": [2]}}
    with pytest.raises(seqgen.SpecError) as e:
        expand(session, tiny_spec)
    assert all(p.startswith("model.cell.x=1,sampler.x=2: ") for p in e.value.problems)


def test_sweep_section_is_checked_against_the_schema(session, tiny_spec):
    tiny_spec["sweep"] = {"grid": {"model.cell.type": []}, "repeat": 2}
    with pytest.raises(seqgen.SpecError) as e:
        expand(session, tiny_spec)
    assert e.value.problems[0].startswith("$.sweep: Additional properties are not allowed")
    assert e.value.problems[1] == "$.sweep.grid['model.cell.type']: [] should be non-empty"


def test_names_must_be_usable_directories_and_distinct(session, tiny_spec):
    tiny_spec["sweep"] = {"variants": [{"name": "../up", "set": {"seed": 1}},
                                       {"name": "a", "set": {"seed": 2}},
                                       {"name": "a", "set": {"seed": 3}}]}
    with pytest.raises(seqgen.SpecError) as e:
        expand(session, tiny_spec)
    assert e.value.problems == [
        "../up: not usable as a directory name; use letters, digits and . _ , = + - "
        "(and no leading '.')",
        "a: variants 2 and 3 have the same name; name them in sweep.variants"]


def test_generated_names_are_made_safe(session, tiny_spec):
    tiny_spec["sweep"] = {"grid": {"generate.prompts": [["a/b c"], [".x"]]}}
    assert names(expand(session, tiny_spec)) == ["prompts=a-b-c", "prompts=.x"]
