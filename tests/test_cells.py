"""Built-in cells: registration, option schemas, imports, and interchangeable weights."""
from __future__ import annotations

import ast
from pathlib import Path

import jsonschema
import pytest
import torch
from safetensors.torch import load_file, save_file

import seqgen
from seqgen_plugins.cells import register_cells

NAMES = ["rnn", "gru", "lstm", "rnn-scratch", "gru-scratch", "lstm-scratch"]
PAIRS = [("rnn", "rnn-scratch"), ("gru", "gru-scratch"), ("lstm", "lstm-scratch")]
PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "cells"


def registered() -> dict:
    """name -> (factory, schema, description), as the hook hands them to `register`."""
    found = {}

    def register(name, factory, schema=None, description="", **extra):
        assert name not in found, f"{name} registered twice"
        found[name] = (factory, schema, description)

    register_cells(register)
    return found


CELLS = registered()


def full_schema(name: str) -> dict:
    """The component schema the way the core completes it: "type" added, extras forbidden."""
    schema = CELLS[name][1]
    return {**schema, "type": "object", "additionalProperties": False,
            "properties": {"type": {"const": name}, **schema["properties"]}}


def test_the_six_cells_are_registered_with_descriptions():
    assert sorted(CELLS) == sorted(NAMES)
    for name, (factory, schema, description) in CELLS.items():
        assert isinstance(description, str) and description, name
        assert isinstance(factory(5, hidden_size=4), seqgen.Cell), name


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_and_documents_every_option(name):
    schema = CELLS[name][1]
    jsonschema.Draft202012Validator.check_schema(full_schema(name))
    assert "type" not in schema and "type" not in schema["properties"]
    expected = {"hidden_size", "num_layers", "dropout", "bidirectional", "bias", "initial_state",
                "init", "output_dropout"}
    if name.startswith("rnn"):
        expected.add("nonlinearity")
    else:
        expected.add("layer_norm")  # scratch: the option; fused: false only, naming the scratch cell
    assert set(schema["properties"]) == expected
    for option, prop in schema["properties"].items():
        assert "default" in prop and prop.get("description"), f"{name}.{option}"


@pytest.mark.parametrize("name", NAMES)
def test_schema_defaults_are_the_factory_defaults(name):
    factory, schema, _ = CELLS[name]
    defaults = {k: p["default"] for k, p in schema["properties"].items()}
    jsonschema.validate({"type": name, **defaults}, full_schema(name))
    implicit, explicit = factory(5), factory(5, **defaults)
    attributes = ["hidden_size", "num_layers", "dropout", "bidirectional", "bias",
                  "learned_initial_state", "nonlinearity", "init", "output_dropout", "layer_norm"]
    assert ([getattr(implicit, a, None) for a in attributes]
            == [getattr(explicit, a, None) for a in attributes])
    assert implicit.hidden_size == 128 and implicit.num_layers == 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [
    {"hidden_size": 0}, {"num_layers": 0}, {"dropout": 1.0}, {"dropout": -0.1},
    {"bidirectional": "yes"}, {"initial_state": "random"}, {"hidden_size": 2.5},
])
def test_schema_rejects_out_of_bounds_options(name, bad):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": name, **bad}, full_schema(name))


def test_only_rnn_cells_take_a_nonlinearity():
    validator = jsonschema.Draft202012Validator(full_schema("rnn-scratch"))
    assert not list(validator.iter_errors({"type": "rnn-scratch", "nonlinearity": "relu"}))
    assert list(validator.iter_errors({"type": "rnn-scratch", "nonlinearity": "sigmoid"}))
    with pytest.raises(jsonschema.ValidationError, match="nonlinearity"):
        jsonschema.validate({"type": "lstm", "nonlinearity": "relu"}, full_schema("lstm"))


@pytest.mark.parametrize("name", ["rnn", "rnn-scratch"])
def test_unknown_nonlinearity_is_refused_by_both_rnn_forms(name):
    with pytest.raises(ValueError, match="nonlinearity"):
        CELLS[name][0](5, nonlinearity="sigmoid")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_initial_state_is_refused(name):
    with pytest.raises(ValueError, match="initial_state must be 'zeros' or 'learned'"):
        CELLS[name][0](5, initial_state="random")


def test_cell_plugins_import_only_seqgen_public_names_and_torch():
    allowed_roots = {"torch", "math", "__future__"}
    for path in sorted(PLUGIN_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
                assert roots <= allowed_roots, f"{path.name} imports {roots}"
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                if node.module == "seqgen":
                    private = {a.name for a in node.names} - set(seqgen.__all__)
                    assert not private, f"{path.name} imports {private} not in seqgen.__all__"
                else:
                    assert node.module.split(".")[0] in allowed_roots, f"{path.name}: {node.module}"


FORM_OPTIONS = [
    {"hidden_size": 8},
    {"hidden_size": 8, "num_layers": 3, "bidirectional": True},
    {"hidden_size": 8, "num_layers": 2, "bias": False, "initial_state": "learned"},
]
TORCH_MODULES = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


@pytest.mark.parametrize("fused, scratch", PAIRS)
@pytest.mark.parametrize("options", FORM_OPTIONS)
def test_both_forms_have_torchs_state_dict_keys_and_shapes(fused, scratch, options):
    shapes = [{k: tuple(v.shape) for k, v in CELLS[name][0](5, **options).state_dict().items()}
              for name in (fused, scratch)]
    assert shapes[0] == shapes[1]
    torch_options = {k: v for k, v in options.items() if k != "initial_state"}
    reference = TORCH_MODULES[fused](5, torch_options.pop("hidden_size"), **torch_options)
    weights = {k for k in shapes[0] if k.startswith("rnn.")}
    assert weights == {f"rnn.{k}" for k in reference.state_dict()}
    learned = {"h0", "c0"} if fused == "lstm" else {"h0"}
    assert set(shapes[0]) - weights == (learned if options.get("initial_state") else set())


@pytest.mark.parametrize("fused, scratch", PAIRS)
def test_same_seed_draws_the_same_weights_in_both_forms(fused, scratch):
    options = {"hidden_size": 8, "num_layers": 2, "bidirectional": True}
    states = []
    for name in (fused, scratch):
        torch.manual_seed(3)
        states.append(CELLS[name][0](5, **options).state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


@pytest.mark.parametrize("trained, loaded", PAIRS + [(s, f) for f, s in PAIRS])
def test_weights_trained_in_one_form_load_into_the_other(trained, loaded, tmp_path):
    options = {"hidden_size": 8, "num_layers": 2, "initial_state": "learned"}
    torch.manual_seed(0)
    source = CELLS[trained][0](5, **options)
    optimizer = torch.optim.Adam(source.parameters(), lr=0.05)
    x = torch.randn(6, 3, 5)
    for _ in range(3):  # move the weights and the learned state away from their init
        optimizer.zero_grad()
        output, _ = source(x)
        output.pow(2).mean().backward()
        optimizer.step()
    save_file(source.state_dict(), tmp_path / "cell.safetensors")  # the checkpoint format
    torch.manual_seed(1)
    target = CELLS[loaded][0](5, **options)
    target.load_state_dict(load_file(tmp_path / "cell.safetensors"))
    with torch.no_grad():
        want, want_state = source.eval()(x)
        got, got_state = target.eval()(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_state, want_state, atol=1e-5, rtol=0)
    assert (want - CELLS[loaded][0](5, **options).eval()(x)[0]).abs().max() > 1e-3
