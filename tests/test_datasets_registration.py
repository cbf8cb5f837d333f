"""The dataset plugin registers text, lines and pairs with schemas that match the code."""
import inspect

import jsonschema
import pytest

import seqgen_plugins.datasets as plugin

OURS = {"text": "lm", "lines": "lines", "pairs": "aligned"}


def registrations() -> dict:
    found = {}
    plugin.register_datasets(lambda name, factory, schema, description, **extra:
                             found.__setitem__(name, (factory, schema, description, extra)))
    return found


@pytest.mark.parametrize("name", sorted(OURS))
def test_schema_is_valid_documented_and_defaults_match_the_factory(name):
    factory, schema, description, extra = registrations()[name]
    assert description and extra == {"task": OURS[name]}
    jsonschema.Draft202012Validator.check_schema(schema)
    params = inspect.signature(factory).parameters
    assert set(schema["properties"]) == set(params)  # every option documented, no stray ones
    for option, prop in schema["properties"].items():
        assert prop.get("description"), f"{name}.{option} has no description"
        default = params[option].default
        if "default" in prop:
            assert prop["default"] == default, f"{name}.{option}: schema and code disagree"
            jsonschema.validate(default, prop)
        else:
            assert default is None  # path/paths/pairs: one of them must be given


def test_text_schema_rejects_bad_options():
    schema = registrations()["text"][1]
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors({"path": "a.txt", "level": "word", "min_freq": 2}))
    for bad in ({"level": "byte"}, {"valid_fraction": 1}, {"max_chars": 0}, {"newlines": "x"}):
        assert list(validator.iter_errors(bad)), bad
