"""Embedding seqgen in an application: no process-global side effects, cancellation from
any thread, runs held in memory, and results that carry their model."""
import copy
import random
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import seqgen
from conftest import TINY_SPEC


def spec_with(**changes) -> dict:
    """TINY_SPEC with dotted-path changes, e.g. spec_with(**{"train.max_steps": 6})."""
    spec = copy.deepcopy(TINY_SPEC)
    spec["train"].update({"epochs": 3, "max_steps": 8, "eval_every": 4})
    for path, value in changes.items():
        node, *keys, last = [spec, *path.split(".")]
        for key in keys:
            node = node.setdefault(key, {})
        node[last] = value
    return spec


# Both ways a cell's training draws dropout: through seqgen.dropout (gru-scratch) and through
# torch's fused kernels (the global generator, seeded and restored by seqgen/seeding.py).
DROPOUT_CELLS = {
    "gru-scratch": {"type": "gru-scratch", "hidden_size": 16, "num_layers": 2, "dropout": 0.3},
    "fused-lstm": {"type": "lstm", "hidden_size": 16, "num_layers": 2, "dropout": 0.3},
}


def step_losses(session, spec, **kwargs) -> list[float]:
    losses = []
    session.run(spec, save=False, emit=lambda e: e.kind == "step" and losses.append(
        e.data["loss"]), **kwargs)
    return losses


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def global_states():
    return (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())


def assert_same_states(before, after):
    assert torch.equal(before[0], after[0]), "torch's global generator changed"
    assert before[1] == after[1], "Python's random changed"
    assert (before[2] == after[2]).all(), "numpy's global generator changed"


# -- no process-global side effects --------------------------------------------------------

@pytest.mark.parametrize("cell", sorted(DROPOUT_CELLS))
def test_runs_on_two_threads_equal_the_same_runs_one_after_the_other(session, cell):
    specs = [spec_with(seed=seed, **{"model.cell": DROPOUT_CELLS[cell]}) for seed in (1, 2)]
    serial = [step_losses(session, spec) for spec in specs]
    assert serial[0] != serial[1]                     # the seeds matter
    threaded = [None, None]
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()                                # start together, really overlap
        threaded[i] = step_losses(session, specs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert threaded == serial                         # bit for bit


def test_the_same_seed_gives_the_same_run_whatever_the_global_generator_holds(session):
    spec = spec_with(**{"model.cell": DROPOUT_CELLS["fused-lstm"]})
    torch.manual_seed(1)
    first = step_losses(session, spec)
    torch.manual_seed(999)
    random.seed(5)
    assert step_losses(session, spec) == first


def test_run_load_generate_and_compare_leave_the_global_generators_alone(session, tmp_path):
    torch.manual_seed(7)
    random.seed(7)
    np.random.seed(7)
    before = global_states()
    spec = spec_with(**{"model.cell": DROPOUT_CELLS["fused-lstm"], "train.sample_every": 1,
                        "generate.strategies": [{"type": "random"}]})
    result = session.run(spec, out=tmp_path / "run")
    assert_same_states(before, global_states())
    loaded = session.load(result.run_dir)
    assert_same_states(before, global_states())
    loaded.generate(["the ", "a"], {"type": "top-k", "k": 3}, max_new_tokens=8, num_samples=2)
    list(loaded.stream("the ", "random", max_new_tokens=8, seed=3))
    assert_same_states(before, global_states())
    sweep = dict(spec_with(), sweep={"grid": {"model.cell.hidden_size": [8, 12]}})
    session.compare(sweep, out=tmp_path / "cmp")
    assert_same_states(before, global_states())


def test_a_library_run_installs_no_signal_handler(session):
    seen = []
    original = signal.getsignal(signal.SIGINT)
    session.run(spec_with(), save=False,
                emit=lambda e: seen.append(signal.getsignal(signal.SIGINT)))
    assert seen and all(h is original for h in seen)


def test_handle_signals_installs_one_for_the_run_only(session):
    seen = []
    original = signal.getsignal(signal.SIGINT)
    session.run(spec_with(), save=False, handle_signals=True,
                emit=lambda e: seen.append(signal.getsignal(signal.SIGINT)))
    assert seen and all(h is not original for h in seen)
    assert signal.getsignal(signal.SIGINT) is original


# -- cancellation --------------------------------------------------------------------------

def test_cancel_from_another_thread_stops_at_a_step_and_resumes_exactly(session, tmp_path):
    spec = spec_with(**{"train.max_steps": 30, "train.eval_every": None})
    whole = session.run(spec, out=tmp_path / "whole")
    cancel, reached, box = threading.Event(), threading.Event(), {}

    def emit(event):
        if event.kind == "step" and event.data["step"] == 3:
            reached.set()

    def work():
        box["result"] = session.run(spec, out=tmp_path / "cut", emit=emit, cancel=cancel)

    worker = threading.Thread(target=work)
    worker.start()
    assert reached.wait(60)
    cancel.set()                                   # from the main thread, while it trains
    worker.join(60)
    result = box["result"]
    assert result.interrupted and result.train.stopped == "interrupted:cancel"
    assert 3 <= result.train.step < 30
    assert (result.run_dir / "last.safetensors").is_file()
    assert not (result.run_dir / "samples.json").exists()
    resumed = session.resume(result.run_dir)
    assert without_seconds(resumed.train.history) == without_seconds(whole.train.history)
    assert [s.text for s in resumed.samples] == [s.text for s in whole.samples]


def test_should_stop_is_asked_before_training_and_after_every_step(session):
    asked = []

    def should_stop():
        asked.append(True)
        return len(asked) == 4

    result = session.run(spec_with(), save=False, should_stop=should_stop)
    assert result.interrupted and result.train.step == 3 and len(asked) == 4


def test_an_exception_in_a_callback_saves_a_checkpoint_then_propagates(session, tmp_path):
    spec = spec_with(**{"train.max_steps": 12, "train.eval_every": None})
    whole = session.run(spec, out=tmp_path / "whole")
    calls = []

    def emit(event):
        calls.append(event.kind)
        if event.kind == "step" and event.data["step"] == 5:
            raise RuntimeError("the app's callback broke")

    with pytest.raises(RuntimeError, match="callback broke"):
        session.run(spec, out=tmp_path / "broken", emit=emit)
    assert calls[-1] == "step"                     # nothing is sent after the failure
    assert (tmp_path / "broken" / "last.safetensors").is_file()
    resumed = session.resume(tmp_path / "broken")
    assert without_seconds(resumed.train.history) == without_seconds(whole.train.history)
    assert resumed.train.step == whole.train.step == 12


# -- in memory -----------------------------------------------------------------------------

def test_save_false_writes_nothing_and_returns_the_model(session, tmp_path):
    result = session.run(spec_with(), save=False)
    assert list(Path.cwd().iterdir()) == []        # the test's own empty directory
    assert result.run_dir is None and result.checkpoint is None
    assert isinstance(result.model, seqgen.LoadedModel)
    greedy = [s for s in result.samples if s.strategy == "greedy"][0]
    assert result.model.generate("the ", "greedy", max_new_tokens=12)[0].text == greedy.text


def test_saved_result_model_equals_the_model_loaded_from_disk(session, tmp_path):
    result = session.run(spec_with(), out=tmp_path / "run")
    assert result.model.path == result.checkpoint
    from_disk = session.load(result.run_dir)
    for (k, a), (_, b) in zip(result.model.model.state_dict().items(),
                              from_disk.model.state_dict().items()):
        assert torch.equal(a, b), k
    args = dict(prompts=["the ", "a"], strategy="random", max_new_tokens=10, seed=4)
    assert ([s.text for s in result.model.generate(**args)]
            == [s.text for s in from_disk.generate(**args)])


def test_an_unsaved_run_equals_a_saved_one(session, tmp_path):
    spec = spec_with()
    unsaved = session.run(spec, save=False)
    saved = session.run(spec, out=tmp_path / "run")
    assert unsaved.train.history[-1]["step"] == saved.train.history[-1]["step"]
    assert [s.text for s in unsaved.samples] == [s.text for s in saved.samples]


def test_runs_dir_sets_where_runs_go_by_default(tmp_path):
    session = seqgen.Session(entry_points=False, runs_dir=tmp_path / "mine")
    result = session.run(spec_with())
    assert result.run_dir.parent == tmp_path / "mine"
    assert not (Path.cwd() / "runs").exists()
    assert seqgen.Session(**session.config).runs_dir == tmp_path / "mine"
