"""A run notices when its speed swings (another process took a core), and train.threads
sets torch's CPU threads for the run only."""
import torch

from seqgen.step_timing import SwingDetector


def feed(detector, per_token_seconds, tokens=100, threads=2):
    return [detector.observe(t * tokens, tokens, threads) for t in per_token_seconds]


def test_a_steady_run_and_a_lone_slow_step_say_nothing():
    notes = feed(SwingDetector(), [1e-5] * 30 + [1e-3] + [1e-5] * 30)
    assert notes == [None] * 61


def test_batches_of_other_lengths_compare_per_token():
    detector = SwingDetector()
    notes = [detector.observe(1e-5 * n, n, 2) for n in [10, 1000] * 30]
    assert notes == [None] * 60


def test_a_sustained_slowdown_is_reported_once_with_advice():
    notes = feed(SwingDetector(), [1e-5] * 10 + [8e-5] * 20)
    said = [n for n in notes if n is not None]
    assert len(said) == 1 and "swung 8x" in said[0] and "train.threads=1" in said[0]
    assert notes.index(said[0]) == 10 + 2          # once the 5-step median has moved


def test_a_run_slow_from_the_start_is_reported_when_it_speeds_up():
    [note] = [n for n in feed(SwingDetector(), [6e-5] * 10 + [1e-5] * 10) if n]
    assert "swung 6x" in note


def test_with_one_thread_there_is_no_thread_advice():
    [note] = [n for n in feed(SwingDetector(), [1e-5] * 10 + [9e-5] * 10, threads=1) if n]
    assert "train.threads" not in note


def test_train_threads_holds_while_training_and_is_restored(session, tiny_spec):
    torch.set_num_threads(2)
    seen = []
    tiny_spec["train"]["threads"] = 1
    session.run(tiny_spec, save=False,
                emit=lambda e: seen.append(torch.get_num_threads()) if e.kind == "step" else None)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2
