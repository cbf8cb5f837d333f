"""Checkpoints record the plugin behind every component, and loading one needs only the
plugins of its model (and of the strategy asked for)."""
import importlib
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import seqgen
from seqgen import hookimpl


class TinyGRU(seqgen.Cell):
    def __init__(self, input_size, hidden_size=8):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.rnn = torch.nn.GRU(input_size, hidden_size)

    def initial_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, self.hidden_size, device=device)

    def forward(self, x, state=None, lengths=None):
        return self.rnn(x, state)


class Extras:
    """A third-party plugin giving a cell, a strategy and a preset."""
    __name__ = "extras"

    @hookimpl
    def register_cells(self, register):
        register("tiny-gru", TinyGRU, {"properties": {"hidden_size": {"type": "integer",
                                                                      "default": 8}}}, "tiny")

    @hookimpl
    def register_strategies(self, register):
        register("first", lambda: First(), None, "always token 0")


class First(seqgen.Strategy):
    def choose(self, logits, generator=None):
        return torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)


SPEC = {"dataset": {"type": "synthetic", "num_chars": 2000},
        "model": {"cell": {"type": "tiny-gru"}},
        "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 8},
        "train": {"epochs": 1}, "generate": {"prompts": ["the "], "max_new_tokens": 4,
                                             "strategies": [{"type": "first"}]}}


@pytest.fixture
def run_dir():
    seqgen.Session([Extras()], entry_points=False).run(SPEC, out="run")
    return "run"


def metadata(path):
    with safe_open(path, framework="pt") as f:
        return f.metadata()


def test_the_checkpoint_records_every_components_plugin(run_dir):
    rows = json.loads(metadata(f"{run_dir}/last.safetensors")["components"])
    by_path = {r["path"]: r for r in rows}
    assert by_path["$.model.cell"] == {"path": "$.model.cell", "kind": "cell", "name": "tiny-gru",
                                       "plugin": "extras", "distribution": "direct",
                                       "version": ""}
    assert by_path["$.generate.strategies[0]"]["plugin"] == "extras"
    assert by_path["$.dataset"] == {"path": "$.dataset", "kind": "dataset", "name": "synthetic",
                                    "plugin": "seqgen_plugins.datasets",
                                    "distribution": "seqgen", "version": seqgen.__version__}


def test_loading_needs_only_the_cells_plugin(run_dir):
    class CellOnly:            # the cell, without the strategy the run generated with
        __name__ = "cell-only"
        register_cells = Extras.register_cells

    model = seqgen.Session([CellOnly()], entry_points=False).load(run_dir)
    assert len(model.generate("the ", "greedy", max_new_tokens=5)[0].text) > 0
    assert model.score("the cat sees a dog.").tokens == 18


def test_loading_needs_nothing_but_the_model_from_the_builtins_either(session, tiny_spec):
    session.run({**tiny_spec, "train": {"epochs": 1}}, out="r")
    cells_only = seqgen.Session([importlib.import_module("seqgen_plugins.cells")],
                                entry_points=False, builtins=False)
    assert cells_only.registry.names("dataset") == cells_only.registry.names("strategy") == []
    assert cells_only.load("r").score("the cat sees a dog.").tokens == 18


def test_a_missing_cell_plugin_names_what_to_install(run_dir):
    path = f"{run_dir}/best.safetensors"
    meta = metadata(path)
    rows = json.loads(meta["components"])
    for row in rows:
        if row["kind"] == "cell":
            row.update(distribution="seqgen-extras", version="0.3")
    with safe_open(path, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, path, metadata={**meta, "components": json.dumps(rows)})
    with pytest.raises(seqgen.CheckpointError) as info:
        seqgen.Session(entry_points=False).load(path)
    assert str(info.value) == (
        f"{path}: its cell 'tiny-gru' comes from plugin 'extras' of distribution "
        f"'seqgen-extras' 0.3, which is not installed here: pip install seqgen-extras==0.3")
    assert "Did you mean" not in str(info.value)


def test_a_checkpoint_written_before_components_were_recorded_still_loads(session, tiny_spec):
    session.run({**tiny_spec, "train": {"epochs": 1}}, out="old")
    path = "old/best.safetensors"
    meta = metadata(path)
    del meta["components"]
    with safe_open(path, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, path, metadata=meta)
    model = session.load(path)
    assert model.generate("the ", "greedy", max_new_tokens=3)[0].text
    # ... and without its cell's plugin, says so without guessing at a distribution
    spec = json.loads(meta["spec"])
    spec["model"]["cell"]["type"] = "tiny-gru"
    save_file(tensors, path, metadata={**meta, "spec": json.dumps(spec)})
    with pytest.raises(seqgen.CheckpointError, match="its cell 'tiny-gru' is not registered by "
                                                     "any installed plugin"):
        session.load(path)


def _rewrite_components(path, edit):
    meta = metadata(path)
    rows = edit(json.loads(meta["components"]))
    with safe_open(path, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, path, metadata={**meta, "components": json.dumps(rows)})


def test_a_strategy_the_checkpoint_used_names_its_distribution_when_missing(run_dir):
    def recorded(rows):
        for row in rows:
            row.update(distribution="seqgen-extras", version="0.3")
        return rows
    path = f"{run_dir}/best.safetensors"
    _rewrite_components(path, recorded)

    class CellOnly:
        __name__ = "cell-only"
        register_cells = Extras.register_cells
    model = seqgen.Session([CellOnly()], entry_points=False).load(path)
    with pytest.raises(seqgen.UnknownComponentError) as info:
        model.generate("the ", "first")
    assert str(info.value).endswith("its strategy 'first' comes from plugin 'extras' of "
                                    "distribution 'seqgen-extras' 0.3, which is not installed "
                                    "here: pip install seqgen-extras==0.3")


@pytest.mark.parametrize("rows, shown", [
    ([1, 2], "not registered by any installed plugin"),
    ([{"kind": "cell", "name": "tiny-gru", "plugin": "x", "distribution": "evil; rm -rf ~",
       "version": "1"}], "not registered by any installed plugin"),
    ([{"kind": "cell", "name": "tiny-gru", "plugin": "x", "distribution": "seqgen-x",
       "version": "1; rm"}], "which is not installed here: pip install seqgen-x"),
    ([{"kind": "cell", "name": "tiny-gru", "plugin": "x", "distribution": "seqgen",
       "version": "0"}], "which is installed but did not load here"),
])
def test_recorded_components_are_believed_only_when_well_formed(run_dir, rows, shown):
    path = f"{run_dir}/best.safetensors"
    _rewrite_components(path, lambda _: rows)
    with pytest.raises(seqgen.CheckpointError) as info:
        seqgen.Session(entry_points=False).load(path)
    assert shown in str(info.value) and "rm" not in str(info.value)
