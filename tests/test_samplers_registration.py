"""The sampler plugin registers its samplers with schemas that match the code."""
import inspect

import jsonschema
import pytest

import seqgen_plugins.samplers as plugin

ACCEPTS = {"sequential": "stream", "random": "stream", "bucket": ("sequences", "pairs")}
RULES = {"sequential": "carry", "random": "reset", "bucket": "reset"}


def registrations() -> dict:
    found = {}
    plugin.register_samplers(lambda name, factory, schema, description, **extra:
                             found.__setitem__(name, (factory, schema, description, extra)))
    return found


def test_names_accepts_and_state_rules():
    found = registrations()
    assert {n: extra["accepts"] for n, (_, _, _, extra) in found.items()} == ACCEPTS
    assert {n: factory.state_rule for n, (factory, _, _, _) in found.items()} == RULES


@pytest.mark.parametrize("name", sorted(ACCEPTS))
def test_schema_is_valid_documented_and_defaults_match_the_factory(name):
    factory, schema, description, _ = registrations()[name]
    assert description
    jsonschema.Draft202012Validator.check_schema(schema)
    params = inspect.signature(factory).parameters
    options = {p for p, v in params.items() if v.kind == v.KEYWORD_ONLY} - {
        "seed", "rank", "world_size"}  # the trainer passes these, not the spec
    assert set(schema["properties"]) == options
    for option, prop in schema["properties"].items():
        assert prop["description"] and prop["default"] == params[option].default
        jsonschema.validate(prop["default"], prop)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors({"batch_size": 0}))
