"""Plugin loading: direct objects, entry points one by one, failures, strictness, env."""
from importlib import metadata

import pytest

import seqgen
from seqgen import hookimpl
from seqgen.plugins import DEFAULT_PLUGINS, PluginLoader


class Greeter(seqgen.Strategy):
    def choose(self, logits, generator=None):
        return logits.argmin(dim=-1)


class WorstPlugin:
    """A plugin object registering one strategy, passed in directly."""
    __name__ = "worst-plugin"

    @hookimpl
    def register_strategies(self, register):
        register("worst", Greeter, {"type": "object", "properties": {}}, "Least likely token.")


def test_plugin_objects_join_only_their_own_session():
    with_plugin = seqgen.Session([WorstPlugin()], entry_points=False)
    without = seqgen.Session(entry_points=False)
    assert with_plugin.component("strategy", "worst").plugin == "worst-plugin"
    assert "worst" not in without.registry.names("strategy")


def test_duplicate_name_names_both_sources():
    class Clash:
        __name__ = "clash-plugin"

        @hookimpl
        def register_strategies(self, register):
            register("greedy", Greeter, None, "another greedy")

    with pytest.raises(seqgen.PluginError) as info:
        seqgen.Session([Clash()], entry_points=False)
    assert str(info.value).startswith(
        "duplicate strategy name 'greedy': registered by plugin 'seqgen_plugins.strategies' "
        "(builtin) and by plugin 'clash-plugin' (direct)")


def test_invalid_options_schema_is_a_plugin_error():
    class BadSchema:
        __name__ = "bad-schema"

        @hookimpl
        def register_strategies(self, register):
            register("odd", Greeter, {"type": "objekt"}, "bad schema")

    with pytest.raises(seqgen.PluginError, match="options schema for strategy 'odd' is not a "
                                                 "valid JSON Schema"):
        seqgen.Session([BadSchema()], entry_points=False)


def test_unknown_component_suggests_the_nearest(session):
    with pytest.raises(seqgen.UnknownComponentError) as info:
        session.component("cell", "gruu")
    assert str(info.value).startswith("Can't find 'gruu' among cells. Available: gru, ")
    assert str(info.value).endswith("Did you mean 'gru'?")


# -- entry points, simulated in-process (the real install is in test_packaging) -------------
class FakeDist:
    def __init__(self, name):
        self.name = name


class FakeEntryPoint:
    def __init__(self, name, target, dist="fake-dist"):
        self.name, self._target, self.dist = name, target, FakeDist(dist)

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def fake_entry_points(monkeypatch):
    points = [FakeEntryPoint("good", WorstPlugin(), "good-dist"),
              FakeEntryPoint("broken", ImportError("No module named 'missing_dep'"), "broken-dist")]
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: points if group == "seqgen" else [])
    monkeypatch.delenv("SEQGEN_PLUGINS")
    return points


def test_a_failing_entry_point_is_recorded_and_the_rest_still_load(fake_entry_points):
    s = seqgen.Session()
    assert "worst" in s.registry.names("strategy")
    [failure] = s.load_failures
    assert (failure.name, failure.distribution) == ("broken", "broken-dist")
    assert failure.error == "ImportError: No module named 'missing_dep'"
    assert s.plugins()["failures"] == [{"name": "broken", "distribution": "broken-dist",
                                        "error": "ImportError: No module named 'missing_dep'"}]


def test_unknown_name_mentions_plugins_that_failed(fake_entry_points):
    s = seqgen.Session()
    with pytest.raises(seqgen.UnknownComponentError, match=r"failed to load: broken"):
        s.component("cell", "fancy")


def test_strict_loading_makes_a_failure_fatal(fake_entry_points):
    with pytest.raises(seqgen.PluginError) as info:
        seqgen.Session(strict=True)
    assert str(info.value) == ("plugin 'broken' from distribution 'broken-dist' failed to load: "
                               "ImportError: No module named 'missing_dep' (strict plugin "
                               "loading is on)")
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.parametrize("env, loaded", [("", set()), ("good", {"good"}),
                                         ("good,broken", {"good", "broken"})])
def test_env_var_limits_third_party_loading(fake_entry_points, monkeypatch, env, loaded):
    monkeypatch.setenv("SEQGEN_PLUGINS", env)
    loader = PluginLoader()
    seen = {i.name for i in loader.infos if i.origin != "builtin"} | {f.name for f in loader.failures}
    assert seen == loaded


def test_builtins_register_like_any_plugin(session):
    info = session.plugins()
    builtin = [p for p in info["plugins"] if p["origin"] == "builtin"]
    assert [p["name"] for p in builtin] == list(DEFAULT_PLUGINS)
    kinds = {c["kind"] for p in builtin for c in p["components"]}
    assert kinds == set(seqgen.KINDS)
