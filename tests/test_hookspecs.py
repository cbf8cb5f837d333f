"""Every hook is documented and has a test of its own (test_hook_<name>)."""
import inspect
from pathlib import Path

import pytest
import torch

import seqgen
from seqgen import hookimpl, hookspecs

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "seqgen_spec")]


def test_every_hook_is_documented_and_tested():
    assert set(HOOKS) == {"register_cells", "register_datasets", "register_samplers",
                          "register_strategies", "register_processors", "register_optimizers",
                          "register_schedules", "register_loggers", "register_attentions", "register_presets",
                          "on_event"}
    assert {k.hook for k in seqgen.components.KIND_TABLE} | {"register_presets", "on_event"} \
        == set(HOOKS)
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc or "called" in doc, f"{name}: docstring must say when it is called"
        assert f"def test_hook_{name}(" in tests, f"{name} has no test_hook_{name}"


class Collector:
    __name__ = "collector"

    def __init__(self):
        self.calls = []


def _session_with(**hooks):
    plugin = type("P", (), {"__name__": "p", **{k: hookimpl(v) for k, v in hooks.items()}})()
    return seqgen.Session([plugin], entry_points=False)


class TinyCell(seqgen.Cell):
    def __init__(self, input_size, hidden_size=3):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.rnn = torch.nn.RNN(input_size, hidden_size)

    def initial_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, self.hidden_size, device=device)

    def forward(self, x, state=None, lengths=None):
        return self.rnn(x, state)


def test_hook_register_cells():
    s = _session_with(register_cells=lambda self, register: register(
        "tiny", TinyCell, {"type": "object", "properties": {"hidden_size": {"type": "integer"}}},
        "a tiny cell"))
    c = s.component("cell", "tiny")
    assert (c.plugin, c.description) == ("p", "a tiny cell")
    cell = s.build("cell", {"type": "tiny", "hidden_size": 5}, 4)
    assert cell(torch.zeros(2, 1, 4))[0].shape == (2, 1, 5)


def test_hook_register_datasets():
    def build():
        v = seqgen.Vocab.from_text("ab")
        return seqgen.Dataset(v, "lm", seqgen.TokenStream(v.encode("abab" * 40)))
    s = _session_with(register_datasets=lambda self, register: register(
        "ab", build, None, "ababab", task="lm"))
    assert s.component("dataset", "ab").extra == {"task": "lm"}
    assert len(s.build("dataset", {"type": "ab"}).train) == 160


def test_hook_register_samplers():
    class Whole(seqgen.Sampler):
        def __init__(self, split, *, seed, rank, world_size):
            self.ids = split.ids.long()

        def __len__(self):
            return 1

        def epoch(self, epoch):
            yield seqgen.Batch(self.ids[:-1, None], self.ids[1:, None])

    s = _session_with(register_samplers=lambda self, register: register(
        "whole", Whole, None, "one batch", accepts="stream"))
    sampler = s.build("sampler", {"type": "whole"}, seqgen.TokenStream(torch.arange(5)),
                      seed=0, rank=0, world_size=1)
    [batch] = list(sampler.epoch(0))
    assert batch.targets[:, 0].tolist() == [1, 2, 3, 4]


def test_hook_register_strategies():
    class Last(seqgen.Strategy):
        def choose(self, logits, generator=None):
            return torch.full(logits.shape[:1], logits.shape[-1] - 1)

    s = _session_with(register_strategies=lambda self, register: register(
        "last", Last, None, "always the last id"))
    assert s.strategy("last").choose(torch.zeros(2, 7)).tolist() == [6, 6]


def test_hook_on_event(tiny_spec):
    seen = []
    s = _session_with(on_event=lambda self, event, session: seen.append((event.kind, session)))
    tiny_spec["train"]["epochs"] = 1
    s.run(tiny_spec, out="run")
    kinds = [k for k, _ in seen]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert "epoch" in kinds and "checkpoint" in kinds
    assert all(sess is s for _, sess in seen)


def test_an_on_event_hook_that_raises_stops_the_run_naming_its_plugin(tiny_spec):
    def explode(self, event, session):
        if event.kind == "epoch":
            raise RuntimeError("dashboard down")
    s = _session_with(on_event=explode)
    tiny_spec["train"]["epochs"] = 1
    with pytest.raises(seqgen.PluginError) as info:
        s.run(tiny_spec, out="run")
    assert str(info.value) == ("plugin 'p' (distribution direct) failed in on_event('epoch'): "
                               "RuntimeError: dashboard down")
