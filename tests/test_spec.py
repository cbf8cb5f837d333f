"""Spec validation: every problem at once, each led by its JSON path; defaults; overrides."""
import json

import pytest
from jsonschema import Draft202012Validator

import seqgen
from seqgen.spec import apply_overrides, load_spec_file, parse_override


def problems(session, spec):
    with pytest.raises(seqgen.SpecError) as info:
        session.resolve(spec)
    return info.value.problems


def test_component_option_error_has_exact_path_and_message(session, tiny_spec):
    tiny_spec["model"]["cell"]["hidden_size"] = -3
    assert problems(session, tiny_spec) == [
        "$.model.cell.hidden_size: -3 is less than the minimum of 1"]


def test_all_errors_are_reported_together(session, tiny_spec):
    tiny_spec["seed"] = "zero"
    tiny_spec["train"]["epochs"] = -1
    tiny_spec["model"]["cell"]["hidden_size"] = 0
    tiny_spec["sampler"]["batch_size"] = "big"
    found = problems(session, tiny_spec)
    assert len(found) == 4
    assert {p.split(":")[0] for p in found} == {
        "$.seed", "$.train.epochs", "$.model.cell.hidden_size", "$.sampler.batch_size"}


def test_unknown_keys_are_named_with_what_is_allowed(session, tiny_spec):
    tiny_spec["train"]["epoch"] = 3
    tiny_spec["model"]["cell"]["hiden_size"] = 3
    found = problems(session, tiny_spec)
    assert any(p.startswith("$.train: Additional properties are not allowed ('epoch' was "
                            "unexpected). Allowed: ") and "epochs" in p for p in found)
    assert any(p.startswith("$.model.cell: Additional properties are not allowed "
                            "('hiden_size' was unexpected)") for p in found)


def test_wrong_type_is_reported(session, tiny_spec):
    tiny_spec["generate"]["prompts"] = "the"
    assert problems(session, tiny_spec) == ["$.generate.prompts: 'the' is not of type 'array'"]


def test_unknown_component_lists_names_and_suggests(session, tiny_spec):
    tiny_spec["model"]["cell"]["type"] = "lstmm"
    [problem] = problems(session, tiny_spec)
    assert problem.startswith("$.model.cell.type: Can't find 'lstmm' among cells. Available: ")
    assert "gru" in problem and problem.endswith("Did you mean 'lstm'?")


def test_unknown_strategy_inside_a_list_has_its_index(session, tiny_spec):
    tiny_spec["generate"]["strategies"] = [{"type": "greedy"}, {"type": "topk"}]
    [problem] = problems(session, tiny_spec)
    assert problem.startswith("$.generate.strategies[1].type: Can't find 'topk' among strategies")
    assert "Did you mean 'top-k'?" in problem


def test_missing_dataset_is_required(session):
    assert problems(session, {}) == ["$: 'dataset' is a required property"]


def test_defaults_are_filled_and_resolution_is_idempotent(session):
    resolved = session.resolve({"dataset": {"type": "synthetic"}})
    assert resolved["model"]["cell"]["type"] == "lstm"
    assert resolved["model"]["cell"]["hidden_size"] == 128
    assert resolved["sampler"]["type"] == "sequential"
    assert resolved["train"]["optimizer"] == {"type": "adam", "lr": 0.002, "weight_decay": 0}
    assert resolved["generate"]["strategies"][1] == {"type": "temperature", "temperature": 0.8,
                                                     "top_k": None, "top_p": None,
                                                     "repetition_penalty": 1.0}
    assert session.resolve(resolved) == resolved


def test_bidirectional_language_model_is_rejected_with_a_reason(session, tiny_spec):
    tiny_spec["model"]["cell"]["bidirectional"] = True
    [problem] = problems(session, tiny_spec)
    assert problem.startswith("$.model.cell.bidirectional: a bidirectional cell reads each "
                              "sequence from both ends")
    assert "cannot be trained as a language model or generate left to right" in problem


@pytest.mark.parametrize("text, expected", [
    ("train.epochs=3", (["train", "epochs"], 3)),
    ("model.cell.type=gru", (["model", "cell", "type"], "gru")),
    ("generate.prompts=[\"a\", \"b\"]", (["generate", "prompts"], ["a", "b"])),
    ("train.clip_norm=null", (["train", "clip_norm"], None)),
    ("name=01x", (["name"], "01x")),
])
def test_override_values_parse_as_json_else_string(text, expected):
    assert parse_override(text) == expected


def test_overrides_create_objects_and_index_lists():
    spec = {"generate": {"prompts": ["a", "b"]}}
    out = apply_overrides(spec, ["generate.prompts.1=z", "train.optimizer.lr=0.1"])
    assert out == {"generate": {"prompts": ["a", "z"]}, "train": {"optimizer": {"lr": 0.1}}}
    assert spec == {"generate": {"prompts": ["a", "b"]}}  # the input is not changed


def test_override_without_equals_is_a_spec_error():
    with pytest.raises(seqgen.SpecError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.epochs"])


def test_malformed_json_reports_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "seed": 1,\n  "dataset" {}\n}\n')
    with pytest.raises(seqgen.SpecError) as info:
        load_spec_file(path)
    assert str(info.value) == (f"{path}: invalid spec: malformed JSON at line 3, column 13: "
                               "Expecting ':' delimiter")


def test_composed_schema_is_valid_and_accepts_resolved_specs(session, tiny_spec):
    schema = session.schema()
    Draft202012Validator.check_schema(schema)
    model = schema["properties"]["model"]           # a language model, else seq2seq
    cell_slot = model["else"]["properties"]["cell"]
    assert {"lstm", "gru-scratch"} <= set(cell_slot["properties"]["type"]["enum"])
    seq2seq = model["then"]["properties"]
    assert {"none", "bahdanau", "luong"} <= set(seq2seq["attention"]["properties"]["type"]["enum"])
    assert "gru" in seq2seq["encoder"]["properties"]["cell"]["properties"]["type"]["enum"]
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(session.resolve(tiny_spec))) == []
    tiny_spec["model"]["cell"]["hidden_size"] = -3
    assert [e.message for e in validator.iter_errors(tiny_spec)] == [
        "-3 is less than the minimum of 1"]


def test_example_specs_and_their_sweeps_are_valid(session):
    """Every example resolves (corpus paths are given as overrides, so any path will do
    for validation), and every sweep expands into valid variants."""
    from pathlib import Path

    from seqgen.compose import compose
    from seqgen.sweep import expand
    examples = Path(__file__).resolve().parent.parent / "examples"
    specs = sorted(examples.glob("*.json"))
    assert len(specs) >= 7
    for path in specs:   # composed with stand-ins for what presets need
        spec = compose(json.loads(path.read_text()), session.registry, base_dir=path.parent,
                       placeholders=True).spec
        if "path" in spec["dataset"]:
            spec["dataset"]["path"] = "corpus.txt"
        session.resolve(path, ["dataset.path=corpus.txt"] if "path" in spec["dataset"] else [])
        if "sweep" in spec:
            assert len(expand(session, spec).variants) >= 1
