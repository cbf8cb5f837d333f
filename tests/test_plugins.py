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


def _session(*plugins, **kwargs):
    return seqgen.Session(list(plugins), entry_points=False, **kwargs)


def _plugin(name, **hooks):
    """A plugin object named `name` implementing `hooks` (name -> function of register)."""
    return type("P", (), {"__name__": name, **{
        k: hookimpl(lambda self, register, f=f: f(register)) for k, f in hooks.items()}})()


def test_duplicate_name_is_the_duplicates_failure_and_its_other_components_load():
    clash = _plugin("clash-plugin", register_strategies=lambda register: (
        register("greedy", Greeter, None, "another greedy"),
        register("least", Greeter, None, "least likely")))
    s = _session(clash)
    assert s.component("strategy", "greedy").plugin == "seqgen_plugins.strategies"
    assert s.component("strategy", "least").plugin == "clash-plugin"
    [failure] = s.load_failures
    assert failure.partial and failure.name == "clash-plugin"
    assert failure.error.startswith(
        "duplicate strategy name 'greedy': registered by plugin 'seqgen_plugins.strategies' "
        "(builtin) and by plugin 'clash-plugin' (direct); the first keeps it.")
    with pytest.raises(seqgen.PluginError, match="duplicate strategy name 'greedy'"):
        _session(clash, strict=True)


def test_replaces_is_the_way_to_override_on_purpose():
    mine = _plugin("mine", register_strategies=lambda register: register(
        "greedy", Greeter, None, "my greedy", replaces="greedy"))
    s = _session(mine)
    assert s.component("strategy", "greedy").plugin == "mine"
    assert s.component("strategy", "greedy").replaces == "seqgen_plugins.strategies (seqgen)"
    [entry] = [c for p in s.plugins()["plugins"] if p["name"] == "mine" for c in p["components"]]
    assert entry["replaces"] == "seqgen_plugins.strategies (seqgen)"
    assert s.load_failures == []


@pytest.mark.parametrize("kwargs, message", [
    ({"replaces": "nothing"}, "replaces='nothing' must equal the name it registers ('odd')"),
    ({"schema": {"type": "objekt"}}, "options schema is not a valid JSON Schema"),
    ({"schema": {"properties": {"k": {"type": "integer", "minimum": 1, "default": 0}}}},
     "the defaults of its options schema break it: $.k: 0 is less than the minimum of 1"),
])
def test_an_invalid_registration_is_refused_alone(kwargs, message):
    schema = kwargs.pop("schema", None)
    bad = _plugin("bad", register_strategies=lambda register: (
        register("odd", Greeter, schema, "odd", **kwargs),
        register("fine", Greeter, None, "fine")))
    s = _session(bad)
    assert "odd" not in s.registry.names("strategy") and "fine" in s.registry.names("strategy")
    [failure] = s.load_failures
    assert failure.error.startswith("strategy 'odd': " + message)


def test_replacing_a_name_nobody_registered_is_refused():
    s = _session(_plugin("p", register_strategies=lambda register: register(
        "ghost", Greeter, None, "", replaces="ghost")))
    assert [f.error for f in s.load_failures] == [
        "strategy 'ghost' replaces 'ghost', but no plugin registered a strategy of that name"]


def test_a_hook_that_raises_loses_that_call_only():
    def explode(register):
        register("early", Greeter, None, "registered before the crash")
        raise RuntimeError("boom")
    bad = _plugin("bad", register_strategies=explode,
                  register_cells=lambda register: None)
    s = _session(bad)
    assert "early" not in s.registry.names("strategy")
    [failure] = s.load_failures
    assert (failure.name, failure.error) == ("bad", "register_strategies raised RuntimeError: boom")
    assert "greedy" in s.registry.names("strategy")
    with pytest.raises(seqgen.PluginError, match="register_strategies raised RuntimeError: boom"):
        _session(bad, strict=True)


def test_a_hookimpl_with_no_hookspec_is_a_load_failure_with_a_suggestion():
    typo = _plugin("typo", register_cell=lambda register: None)
    s = _session(typo)
    [failure] = s.load_failures
    assert failure.error == ("implements 'register_cell', which is not a seqgen hook. "
                             "Did you mean 'register_cells'?")
    assert "typo" not in [p["name"] for p in s.plugins()["plugins"]]


def test_a_factory_returning_the_wrong_type_is_named_at_first_use():
    s = _session(_plugin("wrong", register_strategies=lambda register: register(
        "number", lambda: 42, None, "not a strategy")))
    with pytest.raises(seqgen.PluginError) as info:
        s.strategy("number")
    assert str(info.value) == ("strategy 'number' (plugin 'wrong', distribution direct): its "
                               "factory returned int 42, not a seqgen.Strategy")


def test_plugins_lists_versions_and_hooks(session):
    [cells] = [p for p in session.plugins()["plugins"] if p["name"] == "seqgen_plugins.cells"]
    assert (cells["distribution"], cells["version"]) == ("seqgen", seqgen.__version__)
    assert cells["hooks"] == ["register_cells"]


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
        if isinstance(self._target, BaseException):
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
                                        "error": "ImportError: No module named 'missing_dep'",
                                        "partial": False}]


def test_unknown_name_mentions_plugins_that_failed(fake_entry_points):
    s = seqgen.Session()
    with pytest.raises(seqgen.UnknownComponentError, match=r"load failures: broken"):
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


def _fake_points(monkeypatch, points):
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: points if group == "seqgen" else [])
    monkeypatch.delenv("SEQGEN_PLUGINS")


def test_two_distributions_with_one_entry_point_name_load_under_qualified_names(monkeypatch):
    one = _plugin("one", register_strategies=lambda register: register("least", Greeter, None, ""))
    two = _plugin("two", register_cells=lambda register: None)
    _fake_points(monkeypatch, [FakeEntryPoint("extras", one, "dist-a"),
                               FakeEntryPoint("extras", two, "dist-b")])
    s = seqgen.Session()
    names = [p["name"] for p in s.plugins()["plugins"] if p["origin"] != "builtin"]
    assert names == ["dist-a:extras", "dist-b:extras"]
    assert s.component("strategy", "least").plugin == "dist-a:extras"
    assert [f.error for f in s.load_failures] == [
        "entry-point name 'extras' is also declared by dist-b; this one loads as 'dist-a:extras'",
        "entry-point name 'extras' is also declared by dist-a; this one loads as 'dist-b:extras'"]
    monkeypatch.setenv("SEQGEN_PLUGINS", "dist-b:extras")
    assert [i.name for i in PluginLoader().infos if i.origin != "builtin"] == ["dist-b:extras"]


@pytest.mark.parametrize("allow, deny, loaded", [
    ("good-dist", None, {"good"}),                 # a distribution name
    ("good-dist:good,broken", None, {"good", "broken"}),
    (None, "broken-dist", {"good"}),               # the denylist, by distribution
    (None, "good,broken", set()),
    ("good,broken", "broken", {"good"}),
])
def test_allow_and_deny_lists_take_entry_point_and_distribution_names(
        fake_entry_points, monkeypatch, allow, deny, loaded):
    for var, value in (("SEQGEN_PLUGINS", allow), ("SEQGEN_DISABLE_PLUGINS", deny)):
        if value is not None:
            monkeypatch.setenv(var, value)
    loader = PluginLoader()
    seen = {i.name for i in loader.infos if i.origin != "builtin"} | {f.name for f in loader.failures}
    assert seen == loaded
    assert loader.warnings == []


def test_names_that_match_no_plugin_are_warned_about(fake_entry_points, monkeypatch):
    monkeypatch.setenv("SEQGEN_PLUGINS", "good,godo")
    monkeypatch.setenv("SEQGEN_DISABLE_PLUGINS", "nothing-here")
    assert PluginLoader().warnings == [
        "SEQGEN_PLUGINS names 'godo', which matches no installed plugin (entry point or distribution)",
        "SEQGEN_DISABLE_PLUGINS names 'nothing-here', which matches no installed plugin (entry "
        "point or distribution)"]


def test_a_hookimpl_with_the_wrong_arguments_is_one_readable_line():
    class Wrong:
        __name__ = "wrong-args"

        @hookimpl
        def register_cells(self, reg):
            pass
    [failure] = _session(Wrong()).load_failures
    assert failure.error == (
        "invalid plugin: Plugin 'wrong-args' for hook 'register_cells'; hookimpl definition: "
        "register_cells(reg); Argument(s) {'reg'} are declared in the hookimpl but can not be "
        "found in the hookspec")


def test_a_plugin_that_exits_while_importing_is_a_load_failure(monkeypatch):
    _fake_points(monkeypatch, [FakeEntryPoint("quitter", SystemExit(3), "quit-dist")])
    [failure] = seqgen.Session().load_failures
    assert (failure.name, failure.error) == ("quitter", "SystemExit: 3")


def test_names_are_short_plain_words_and_a_wrong_register_call_reads_plainly():
    s = _session(_plugin("odd", register_strategies=lambda register: (
        register("x" * 65, Greeter), register("has space", Greeter), register("ok", Greeter))),
        _plugin("wrong-call", register_presets=lambda register: register()))
    assert "ok" in s.registry.names("strategy")
    assert [f.error for f in s.load_failures] == [
        f"strategy {'x' * 65!r}: invalid name {'x' * 40!r}: up to 64 letters, digits and . _ - "
        "(starting with a letter or digit)",
        "strategy 'has space': invalid name 'has space': up to 64 letters, digits and . _ - "
        "(starting with a letter or digit)",
        "register_presets raised TypeError: register() missing 2 required positional "
        "arguments: 'name' and 'spec'"]


def test_an_entry_point_that_is_no_plugin_is_a_load_failure(monkeypatch):
    _fake_points(monkeypatch, [FakeEntryPoint("number", 42, "num-dist")])
    [failure] = seqgen.Session().load_failures
    assert failure.error == "int '42' implements no seqgen hook (is the entry point right?)"


def test_distribution_names_match_in_any_spelling(monkeypatch):
    _fake_points(monkeypatch, [FakeEntryPoint("good", WorstPlugin(), "Good_Dist")])
    for spelling in ("good-dist", "GOOD.dist", "good_dist:good"):
        monkeypatch.setenv("SEQGEN_PLUGINS", spelling)
        assert [i.name for i in PluginLoader().infos if i.origin != "builtin"] == ["good"]


def test_strict_loading_reports_every_problem_at_once():
    bad = _plugin("bad", register_strategies=lambda register: (
        register("greedy", Greeter), register("x y", Greeter)))
    with pytest.raises(seqgen.PluginError) as info:
        _session(bad, strict=True)
    assert str(info.value).splitlines() == [
        "2 plugin problems (strict plugin loading is on):",
        "  plugin 'bad' from distribution 'direct': strategy 'x y': invalid name 'x y': up to 64 "
        "letters, digits and . _ - (starting with a letter or digit)",
        "  plugin 'bad' from distribution 'direct': duplicate strategy name 'greedy': registered "
        "by plugin 'seqgen_plugins.strategies' (builtin) and by plugin 'bad' (direct); the "
        "first keeps it. To override it on purpose, register with replaces='greedy'."]
