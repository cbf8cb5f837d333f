"""The embedded API: runs, loading, generation, and no global state."""
import copy
import json

import pytest
import torch

import seqgen
from seqgen import checkpoint as ckpt
from seqgen.atomic import atomic_path


@pytest.fixture(scope="module")
def run_result(tmp_path_factory):
    from conftest import TINY_SPEC
    spec = copy.deepcopy(TINY_SPEC)
    spec["train"]["epochs"] = 4
    torch.set_num_threads(1)
    return seqgen.Session(entry_points=False).run(spec, out=tmp_path_factory.mktemp("r") / "run")


def test_run_learns(run_result):
    epochs = [h for h in run_result.train.history if h["event"] == "epoch"]
    evals = [h for h in run_result.train.history if h["event"] == "eval"]
    assert len(epochs) == len(evals) == 4
    assert evals[-1]["valid_perplexity"] < evals[0]["valid_perplexity"] * 0.7
    assert epochs[-1]["train_perplexity"] < epochs[0]["train_perplexity"]


def test_run_reports_parameter_count(run_result):
    # learned embedding 9x8... the count must equal the model's real parameters
    model = seqgen.load(run_result.checkpoint, entry_points=False).model
    assert run_result.num_parameters == sum(p.numel() for p in model.parameters())


def test_checkpoint_holds_spec_vocab_and_no_pickle(run_result):
    raw = run_result.checkpoint.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])           # safetensors: JSON header, raw tensors
    meta = header["__metadata__"]
    assert json.loads(meta["spec"]) == run_result.spec
    assert seqgen.Vocab.from_json(meta["vocab"]).tokens[0] == "\n"
    assert b"\x80\x04" not in raw[:8 + header_len]        # no pickle protocol marker


def test_loaded_model_generates_what_the_run_generated(run_result):
    model = seqgen.load(run_result.run_dir, entry_points=False)
    greedy = [s for s in run_result.samples if s.strategy == "greedy"][0]
    again = model.generate("the ", "greedy", max_new_tokens=12)[0]
    assert again.text == greedy.text


def test_batched_prompts_of_different_lengths_match_one_at_a_time(run_result):
    model = seqgen.load(run_result.run_dir, entry_points=False)
    prompts = ["the old cat ", "a", "the dog sees "]
    batched = [s.text for s in model.generate(prompts, "greedy", max_new_tokens=15)]
    single = [model.generate(p, "greedy", max_new_tokens=15)[0].text for p in prompts]
    assert batched == single


def test_score_counts_every_predicted_token(run_result):
    model = seqgen.load(run_result.run_dir, entry_points=False)
    sample = model.generate("the ", "greedy", max_new_tokens=10)[0]
    scored = model.score("the " + sample.text)
    # score covers the prompt's own tokens too, so compare only through the last 10
    assert scored.tokens == 13 and scored.perplexity > 1.0


def test_same_seed_same_losses(tiny_spec, tmp_path):
    a = seqgen.Session(entry_points=False).run(tiny_spec, out=tmp_path / "a")
    b = seqgen.Session(entry_points=False).run(tiny_spec, out=tmp_path / "b")
    assert a.train.history[0]["train_loss"] > 0
    assert [h.get("train_loss") for h in a.train.history] == [h.get("train_loss") for h in b.train.history]
    assert [h.get("valid_loss") for h in a.train.history] == [h.get("valid_loss") for h in b.train.history]


def test_checkpoint_trained_fused_loads_into_scratch(run_result):
    c = ckpt.load(run_result.checkpoint)
    spec = copy.deepcopy(c.spec)
    spec["model"]["cell"]["type"] = "lstm-scratch"
    session = seqgen.Session(entry_points=False)
    scratch = session.build_model(session.resolve(spec), len(c.vocab))
    scratch.load_state_dict(c.group("model"))
    fused = seqgen.load(run_result.checkpoint, entry_points=False).model
    ids = c.vocab.encode("the cat sees a dog.").long().unsqueeze(1)
    torch.testing.assert_close(scratch(ids)[0], fused(ids)[0], atol=1e-5, rtol=0)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_two_sessions_with_different_plugins_coexist(tiny_spec, tmp_path):
    class Doubler(seqgen.Strategy):
        def choose(self, logits, generator=None):
            return logits.argmin(-1)

    class P:
        __name__ = "p"

        @seqgen.hookimpl
        def register_strategies(self, register):
            register("least", Doubler, None, "least likely")

    a, b = seqgen.Session([P()], entry_points=False), seqgen.Session(entry_points=False)
    tiny_spec["generate"]["strategies"] = [{"type": "least"}]
    assert a.resolve(tiny_spec)["generate"]["strategies"] == [{"type": "least"}]
    with pytest.raises(seqgen.SpecError, match="Can't find 'least'"):
        b.resolve(tiny_spec)


class SpyCell(seqgen.Cell):
    """Records the state each batch starts from."""

    def __init__(self, input_size, hidden_size=4):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.rnn = torch.nn.GRU(input_size, hidden_size)
        self.seen = []

    def initial_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, self.hidden_size, device=device)

    def forward(self, x, state=None, lengths=None):
        self.seen.append(state)
        return self.rnn(x, state)


@pytest.mark.parametrize("sampler, carried", [("sequential", True), ("random", False)])
def test_trainer_follows_the_samplers_state_rule(tiny_spec, sampler, carried):
    spy = {}

    def build(input_size, hidden_size=4):
        spy["cell"] = SpyCell(input_size, hidden_size)
        return spy["cell"]

    class P:
        __name__ = "spy"

        @seqgen.hookimpl
        def register_cells(self, register):
            register("spy", build, None, "spy")

    from seqgen.train import Trainer
    session = seqgen.Session([P()], entry_points=False)
    tiny_spec["model"]["cell"] = {"type": "spy"}
    tiny_spec["sampler"]["type"] = sampler
    spec = session.resolve(tiny_spec)
    data = session.build("dataset", spec["dataset"])
    model = session.build_model(spec, len(data.vocab))
    s = session.build("sampler", spec["sampler"], data.train, seed=0, rank=0, world_size=1)
    spec["train"]["epochs"] = 1
    finals = []
    original = model.forward

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        finals.append(out[1])
        return out

    model.forward = forward
    Trainer.from_spec(session, model, s, session.strategy("teacher-forcing"), spec["train"],
                      torch.device("cpu"), 0).fit()
    starts = spy["cell"].seen
    assert len(starts) == len(s) >= 3
    for k in range(1, len(starts)):
        if carried:
            torch.testing.assert_close(starts[k], finals[k - 1], rtol=0, atol=0)
            assert not starts[k].requires_grad          # detached: truncated BPTT
        else:
            assert torch.count_nonzero(starts[k]) == 0  # a fresh zero state each batch
