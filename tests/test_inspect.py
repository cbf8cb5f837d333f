"""`LoadedModel.inspect` and `seqgen inspect`: per-token gates, states and predictions,
written as inspect.json, heatmap PNGs (read back here) and inspect.html (its browser test
is tests/test_inspect_page.py). Cell-level gates against torch: test_inspect_cells.py."""
from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import seqgen
from conftest import TINY_SPEC
from seqgen.cli import cli
from seqgen.inspection import Inspection, LayerTrace, trace, write_inspection
from seqgen.inspection.heatmap import colour_scale, figure_layer, top_units
from seqgen.inspection.page import render_page
from seqgen.plot import save
from seqgen.testing.cells import check_cell

TEXT = "the cat sees a dog."


def tiny(spec: dict, cell: dict, steps: int = 8) -> dict:
    spec = copy.deepcopy(spec)
    spec["model"]["cell"] = cell
    spec["train"]["max_steps"] = steps
    spec["generate"]["max_new_tokens"] = 2
    return spec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny 2-layer LSTM run for the module; tests copy it (they write into it)."""
    out = tmp_path_factory.mktemp("inspect") / "run"
    seqgen.Session(entry_points=False).run(
        tiny(TINY_SPEC, {"type": "lstm", "hidden_size": 8, "num_layers": 2}), out=out)
    return out


@pytest.fixture
def run_dir(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_probabilities_are_the_models_own(session, run_dir):
    model = session.load(run_dir)
    inspection = model.inspect(TEXT, top_k=4)
    score = model.score(TEXT, per_token=True)
    assert inspection.tokens == list(TEXT)
    assert inspection.ids == model.vocab.encode(TEXT).tolist()
    assert inspection.next_prob[-1] is None
    for p, logprob in zip(inspection.next_prob[:-1], score.token_logprobs):
        assert p == pytest.approx(math.exp(logprob), rel=1e-5)
    assert inspection.mean_surprise() == pytest.approx(score.loss, rel=1e-5)
    assert inspection.surprise()[0] is None
    for j, top in enumerate(inspection.top):
        probs = [p for _, p in top]
        assert len(top) == 4 and probs == sorted(probs, reverse=True)
        if j + 1 < len(TEXT):     # the actual next token is listed iff it is among the best
            actual = inspection.next_prob[j]
            assert (TEXT[j + 1] in [t for t, _ in top]) == (actual >= probs[-1] - 1e-7)


@pytest.mark.parametrize("cell, names", [
    ({"type": "lstm"}, ["i", "f", "g", "o", "c", "h"]),
    ({"type": "lstm-scratch", "layer_norm": True}, ["i", "f", "g", "o", "c", "h"]),
    ({"type": "gru"}, ["r", "z", "n", "h"]),
    ({"type": "gru-scratch"}, ["r", "z", "n", "h"]),
    ({"type": "rnn"}, ["h"]),
    ({"type": "rnn-scratch", "nonlinearity": "relu"}, ["h"]),
])
def test_every_built_in_cell_shows_every_layer(session, tiny_spec, cell, names):
    cell = {**cell, "hidden_size": 6, "num_layers": 2}
    model = session.run(tiny(tiny_spec, cell, 2), save=False).model
    inspection = model.inspect(TEXT)
    D = 1
    expected = [f"layer {k}" + (" reverse" if d else "") for k in range(2) for d in range(D)]
    assert [layer.name for layer in inspection.layers] == expected
    for layer in inspection.layers:
        assert layer.source == "cell" and list(layer.series) == names
        for values in layer.series.values():
            assert values.shape == (len(TEXT), 6) and values.device.type == "cpu"
    # the top layer's h is what the head reads: the model's logits follow from it
    top = torch.cat([layer.series["h"] for layer in inspection.layers[-D:]], 1)
    probs = model.model.head(top).softmax(-1).detach()
    ids = inspection.ids
    for j in range(len(ids) - 1):
        assert float(probs[j, ids[j + 1]]) == pytest.approx(inspection.next_prob[j], abs=1e-5)


class PlainGRU(seqgen.Cell):
    """A third-party cell with no `inspect`: inspection falls back to its states."""

    def __init__(self, input_size, hidden_size=5, num_layers=2, bidirectional=False):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bidirectional = num_layers, bidirectional
        self.rnn = torch.nn.GRU(input_size, hidden_size, num_layers, bidirectional=bidirectional)

    def initial_state(self, batch_size, device=None):
        return torch.zeros(self.num_layers * self.num_directions, batch_size,
                           self.hidden_size, device=device)

    def forward(self, x, state=None, lengths=None):
        if lengths is None:
            return self.rnn(x, state)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        output, state = self.rnn(packed, state)
        return pad_packed_sequence(output, total_length=len(x))[0], state


class Plugin:
    __name__ = "plain-gru"

    @seqgen.hookimpl
    def register_cells(self, register):
        register("plain-gru", PlainGRU, {"type": "object", "properties": {
            "hidden_size": {"type": "integer"}, "num_layers": {"type": "integer"},
            "bidirectional": {"type": "boolean"}}}, "a GRU without inspect")


def test_a_cell_without_inspect_still_shows_its_states(tiny_spec):
    session = seqgen.Session([Plugin()], entry_points=False)
    model = session.run(tiny(tiny_spec, {"type": "plain-gru"}, 2), save=False).model
    inspection = model.inspect(TEXT)
    assert [(layer.name, layer.source, list(layer.series)) for layer in inspection.layers] == [
        ("layer 0", "state", ["h"]), ("layer 1", "state", ["h"])]
    cell, x = model.model.cell, model.model.embedding(torch.tensor(inspection.ids).view(-1, 1))
    output, _ = cell(x)                          # [T, 1, H]: the top layer's h per step
    torch.testing.assert_close(inspection.layers[1].series["h"], output[:, 0].detach())
    _, state = cell(x[:3])                       # after 3 tokens, every layer's h
    for layer in inspection.layers:
        torch.testing.assert_close(layer.series["h"][2], state[layer.layer, 0].detach())


def test_a_bidirectional_cell_without_inspect_shows_its_output():
    """Language models are never bidirectional (the spec refuses it), but trace() takes
    any LanguageModel an embedding application builds."""
    torch.manual_seed(0)
    cell = PlainGRU(4, bidirectional=True)
    model = seqgen.LanguageModel(3, cell, torch.nn.Embedding(3, 4))
    vocab = seqgen.Vocab(list("abc"))
    ids = vocab.encode("abcab")
    layers = trace(model, vocab, ids).layers
    assert [(layer.name, layer.source, list(layer.series)) for layer in layers] == [
        ("layer 1", "output", ["output"]), ("layer 1 reverse", "output", ["output"])]
    output, _ = cell(model.embedding(ids.long().view(-1, 1)))     # [T, 1, 2H]
    torch.testing.assert_close(layers[1].series["output"], output[:, 0, 5:].detach())


def test_a_cell_may_expose_its_own_internals(tiny_spec):
    class Shown(PlainGRU):
        def inspect(self, x, state=None):
            output, _ = self.rnn(x, state)
            return [{"twice": 2 * output[..., :self.hidden_size]}] * self.num_layers

    class P(Plugin):
        @seqgen.hookimpl
        def register_cells(self, register):
            register("shown", Shown, None, "a GRU with inspect")

    check_cell(Shown, options={"hidden_size": 5, "num_layers": 1})
    session = seqgen.Session([P()], entry_points=False)
    model = session.run(tiny(tiny_spec, {"type": "shown"}, 2), save=False).model
    layers = model.inspect(TEXT).layers
    assert [(layer.source, list(layer.series)) for layer in layers] == [("cell", ["twice"])] * 2


def test_the_cell_contract_checks_inspect():
    class Wrong(PlainGRU):
        def inspect(self, x, state=None):
            return [{"h": torch.zeros(len(x), x.shape[1], self.hidden_size)}] * self.num_layers

    with pytest.raises(AssertionError, match="cell contract 'inspect' failed.*differs from the output"):
        check_cell(Wrong, options={"hidden_size": 5})


@pytest.mark.parametrize("text, options, message", [
    ("", {}, "at least one token"),
    ("the cat \u00e9", {}, "not in the vocabulary"),
    ("the cat", {"top_k": 0}, "top_k must be a positive integer"),
    ("the cat", {"on_unknown": "drop"}, "on_unknown"),
    ("a" * 5001, {}, "at most 5000"),
])
def test_bad_requests_are_clear(session, run_dir, text, options, message):
    with pytest.raises(seqgen.SeqgenError, match=message):
        session.load(run_dir).inspect(text, **options)


def test_unknown_characters_can_be_skipped(session, run_dir):
    inspection = session.load(run_dir).inspect("the \u00e9cat", on_unknown="skip")
    assert "".join(inspection.tokens) == "the cat"


def test_an_aligned_model_is_refused(session, tmp_path):
    out = tmp_path / "hello"
    session.run({"extends": "hello", "train": {"max_steps": 2}}, out=out)
    with pytest.raises(seqgen.GenerationError, match="maps inputs to outputs"):
        session.load(out).inspect("hello")


def test_cli_writes_json_heatmaps_and_page(run_dir):
    result = CliRunner().invoke(cli, ["inspect", str(run_dir), "--text", TEXT, "--top-k", "3",
                                      "--units", "4"])
    assert result.exit_code == 0, result.output
    out = run_dir / "inspect"
    names = ["inspect.json", "inspect.html", "inspect-layer0.png", "inspect-layer1.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert [line.split()[-1] for line in result.output.splitlines()[1:]] == [
        str(out / name) for name in names]
    assert result.output.startswith(f"read {len(TEXT)} tokens through lstm (2 layers): "
                                    "mean surprise ")
    data = json.loads((out / "inspect.json").read_text(encoding="utf-8"))
    assert [t["token"] for t in data["tokens"]] == list(TEXT)
    assert data["tokens"][0]["surprise"] is None and data["tokens"][-1]["next"] is None
    assert data["tokens"][0]["next"]["token"] == TEXT[1]
    assert all(len(t["top"]) == 3 for t in data["tokens"])
    layer = data["layers"][1]
    assert layer["name"] == "layer 1" and list(layer["series"]) == ["i", "f", "g", "o", "c", "h"]
    assert len(layer["series"]["c"]) == len(TEXT) and len(layer["series"]["c"][0]) == 8


def test_cli_options_and_errors(run_dir, tmp_path):
    (tmp_path / "text.txt").write_text("a cat\nsees a dog\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect", str(run_dir), "--file", str(tmp_path / "text.txt"),
                                 "--out", str(tmp_path / "here"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["tokens"] == len("a cat\nsees a dog\n")
    assert report["files"][0] == str(tmp_path / "here" / "inspect.json")
    neither = runner.invoke(cli, ["inspect", str(run_dir)])
    assert neither.exit_code == 2 and "--text TEXT or --file FILE" in neither.output
    bad = runner.invoke(cli, ["inspect", str(run_dir), "--text", "caf\u00e9", "--out",
                              str(tmp_path / "never")])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "'\u00e9' at 3" in bad.output and not (tmp_path / "never").exists()


def _known(level: str = "char", tokens=None) -> Inspection:
    """A hand-made inspection of 6 tokens: series "i" with unit 2 alternating 0, 1 (the
    most varying), unit 0 rising slowly, unit 1 constant; series "c" beyond [-1, 1]."""
    tokens = tokens or list("abcabc")
    T = len(tokens)
    i = torch.tensor([[0.2 + 0.05 * t, 0.5, float(t % 2)] for t in range(T)])
    c = torch.tensor([[3.0 * (-1) ** t, 0.0, 0.5] for t in range(T)])
    layer = LayerTrace("layer 0", 0, 0, {"i": i, "c": c}, "cell")
    top = [[(tokens[(j + 1) % T], 0.5), ("x", 0.25)] for j in range(T)]
    return Inspection(tokens, list(range(T)), [0.5] * (T - 1) + [None], top, [layer],
                      level, " ", "test-cell")


def test_top_units_and_colour_scales():
    layer = _known().layers[0]
    assert top_units(layer.series["i"], 2) == [2, 0]
    assert top_units(layer.series["i"], 9) == [2, 0, 1]
    assert colour_scale(layer.series["i"]) == ("viridis", 0.0, 1.0)
    assert colour_scale(layer.series["c"]) == ("RdBu_r", -3.0, 3.0)


def test_heatmap_png_shows_the_values(tmp_path):
    """Read the PNG back and sample the centre of every cell of the "i" panel: each
    shows the colour of its unit's value at that token."""
    import matplotlib
    import matplotlib.image
    inspection = _known()
    layer = inspection.layers[0]
    shown = {"i": top_units(layer.series["i"], 2), "c": top_units(layer.series["c"], 1)}
    fig = figure_layer(inspection, layer, shown)
    save(fig, tmp_path / "map.png")
    pixels = matplotlib.image.imread(tmp_path / "map.png")       # [rows, cols, RGBA]
    assert fig.dpi == 100                                         # save's dpi: same pixels
    box = fig.axes[0].get_window_extent()                         # the "i" panel, in pixels
    T, units = len(inspection.tokens), shown["i"]
    viridis = matplotlib.colormaps["viridis"]
    for r, unit in enumerate(units):
        for t in range(T):
            x = box.x0 + (t + 0.5) * box.width / T
            y = pixels.shape[0] - (box.y1 - (r + 0.5) * box.height / len(units))
            got = pixels[int(y), int(x), :3]
            want = viridis(float(layer.series["i"][t, unit]))[:3]
            assert max(abs(g - w) for g, w in zip(got, want)) < 0.02, (r, t, got, want)


def test_write_inspection_files_are_whole(tmp_path):
    written = write_inspection(_known(), tmp_path / "out", units=2)
    assert written["units"] == {"inspect-layer0.png": {"i": [2, 0], "c": [0, 1]}}
    for path in [written["json"], written["html"], *written["heatmaps"]]:
        assert path.stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "inspect-layer0.png", "inspect.html", "inspect.json"]     # no temporary files left


def test_page_embeds_hostile_text_as_data():
    evil = ["</script><script>window.pwned=1</script>", "<!--", "a\u2028b", "&amp;"]
    page = render_page(_known("word", evil + ["x", "y"]).to_dict())
    assert page.count("</script>") == 2              # the page's own two script elements
    assert "<!--" not in page.split('id="inspection">')[1]
    start = page.index('id="inspection">') + len('id="inspection">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert [t["token"] for t in data["tokens"]][:4] == evil


def test_non_finite_values_stay_valid_json():
    inspection = _known()
    inspection.layers[0].series["c"][0, 0] = math.inf
    inspection.next_prob[0] = 0.0                     # surprise at token 1: infinite
    data = json.loads(render_page(inspection.to_dict()).split('id="inspection">')[1]
                      .split("</script>")[0])
    assert data["tokens"][1]["surprise"] == "inf"
    assert data["layers"][0]["series"]["c"][0][0] == "inf"


def test_too_many_values_are_refused_with_the_length_that_fits(session, run_dir, monkeypatch):
    import seqgen.inspection
    monkeypatch.setattr(seqgen.inspection, "MAX_VALUES", 1000)
    per_token = 2 * 6 * 8                            # 2 layers x (i, f, g, o, c, h) x 8 units
    with pytest.raises(seqgen.GenerationError, match=f"{per_token} values per token.*"
                                                     f"at most {1000 // per_token} tokens"):
        session.load(run_dir).inspect(TEXT)
    assert len(session.load(run_dir).inspect(TEXT[:1000 // per_token]).tokens) == 1000 // per_token


@pytest.mark.parametrize("units", [0, -1, True, 2.5, "3"])
def test_write_inspection_checks_units_before_writing(tmp_path, units):
    with pytest.raises(seqgen.GenerationError, match="units must be a positive integer"):
        write_inspection(_known(), tmp_path / "out", units=units)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", [None, b"the cat", 5])
def test_inspect_wants_text(session, run_dir, text):
    with pytest.raises(seqgen.GenerationError, match="text must be a string"):
        session.load(run_dir).inspect(text)


def test_a_new_inspection_replaces_the_old_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "inspect-layer2.png").write_bytes(b"an older, deeper model's heatmap")
    (out / "notes.png").write_bytes(b"not ours")
    write_inspection(_known(), out, units=2)
    assert sorted(p.name for p in out.iterdir()) == [
        "inspect-layer0.png", "inspect.html", "inspect.json", "notes.png"]


def test_a_file_that_cannot_be_written_is_named(run_dir, tmp_path):
    (tmp_path / "out" / "inspect.json").mkdir(parents=True)     # a directory in the way
    result = CliRunner().invoke(cli, ["inspect", str(run_dir), "--text", TEXT, "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{tmp_path / 'out' / 'inspect.json'}: Is a directory" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["inspect.json"]
    empty = CliRunner().invoke(cli, ["inspect", str(run_dir), "--text", TEXT, "--out", ""])
    assert empty.exit_code == 2 and "--out is empty" in empty.output


def test_cli_json_stays_json_when_a_token_was_impossible(run_dir, monkeypatch):
    import seqgen.loaded
    monkeypatch.setattr(seqgen.loaded.LoadedModel, "inspect",
                        lambda self, text, on_unknown, top_k: _impossible())
    result = CliRunner().invoke(cli, ["inspect", str(run_dir), "--text", "x", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output, parse_constant=pytest.fail)["mean_surprise"] == "inf"


def _impossible() -> Inspection:
    """_known() where the model gave the second token probability 0."""
    inspection = _known()
    inspection.next_prob[0] = 0.0
    return inspection
