"""The trainer: clipping, schedules, what is fed, evaluation, early stopping, divergence."""
import math

import pytest
import torch

import seqgen
from seqgen.train import Trainer


def build(session, spec):
    spec = session.resolve(spec)
    data = session.build("dataset", spec["dataset"])
    model = session.build_model(spec, len(data.vocab))
    sampler = session.build("sampler", spec["sampler"], data.train, seed=0, rank=0, world_size=1)
    strategy = session.build("strategy", spec["train"]["strategy"])
    return spec, data, model, sampler, strategy


def test_clipping_really_clips(session, tiny_spec, monkeypatch):
    tiny_spec["train"].update(clip_norm=0.05, epochs=1, optimizer={"type": "sgd", "lr": 0.5})
    spec, data, model, sampler, strategy = build(session, tiny_spec)
    trainer = Trainer.from_spec(session, model, sampler, strategy, spec["train"],
                                torch.device("cpu"), 0)
    before, after = [], []
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy_clip(params, max_norm):
        total = real_clip(params, max_norm)
        before.append(float(total))
        after.append(float(torch.linalg.vector_norm(torch.stack(
            [p.grad.norm() for p in model.parameters() if p.grad is not None]))))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy_clip)
    trainer.fit()
    assert len(before) == len(sampler) and min(before) > 0.05   # clipping was needed ...
    assert max(after) <= 0.05 * (1 + 1e-4)                      # ... and it happened


def test_schedules(session):
    def schedule(options, steps_per_epoch, total_steps):
        return session.build("schedule", options, steps_per_epoch=steps_per_epoch,
                             total_steps=total_steps)

    exp = schedule({"type": "exponential", "gamma": 0.97, "start_epoch": 10}, 5, 100)
    assert [exp(s) for s in (0, 49, 50, 55)] == [1.0, 1.0, 0.97, 0.97 ** 2]
    step = schedule({"type": "step", "gamma": 0.5, "step_size": 2}, 10, 100)
    assert [step(s) for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]
    cos = schedule({"type": "cosine", "warmup_steps": 4, "min_factor": 0.1}, 10, 104)
    assert [cos(s) for s in (0, 3)] == [0.25, 1.0]
    assert cos(54) == pytest.approx(0.55) and cos(104) == pytest.approx(0.1)


def test_trainer_applies_the_schedule(session, tiny_spec):
    tiny_spec["train"].update(epochs=3, schedule={"type": "step", "gamma": 0.5, "step_size": 1},
                              optimizer={"type": "adam", "lr": 0.01})
    result = session.run(tiny_spec, out="r")
    lrs = [h["lr"] for h in result.train.history if h["event"] == "epoch"]
    assert lrs == pytest.approx([0.01, 0.005, 0.0025])


def forward_lengths(session, tiny_spec, strategy):
    tiny_spec["train"].update(epochs=1, max_steps=2, strategy=strategy)
    spec, data, model, sampler, strat = build(session, tiny_spec)
    seen, real = [], model.forward

    def spy(ids, state=None, lengths=None):
        seen.append(ids.clone())
        return real(ids, state, lengths)

    model.forward = spy
    Trainer.from_spec(session, model, sampler, strat, spec["train"], torch.device("cpu"),
                      0).fit()
    return seen, sampler


def test_full_teacher_forcing_uses_one_whole_sequence_call(session, tiny_spec):
    seen, _ = forward_lengths(session, tiny_spec, {"type": "teacher-forcing"})
    assert [ids.shape[0] for ids in seen] == [16, 16]


def test_mixed_ratio_steps_one_token_at_a_time(session, tiny_spec):
    seen, _ = forward_lengths(session, tiny_spec, {"type": "teacher-forcing", "ratio": 0.5})
    assert [ids.shape[0] for ids in seen] == [1] * 32


def test_free_running_feeds_the_models_own_choice(session, tiny_spec):
    tiny_spec["train"].update(epochs=1, max_steps=1, strategy={"type": "greedy"})
    spec, data, model, sampler, strat = build(session, tiny_spec)
    fed, real = [], model.forward

    def spy(ids, state=None, lengths=None):
        logits, state = real(ids, state, lengths)
        fed.append((ids[0].clone(), logits[0].argmax(-1).clone()))
        return logits, state

    model.forward = spy
    Trainer.from_spec(session, model, sampler, strat, spec["train"], torch.device("cpu"),
                      0).fit()
    first_batch = next(iter(sampler.epoch(0)))
    assert torch.equal(fed[0][0], first_batch.inputs[0])         # step 0: the reference
    for (_, chosen), (next_input, _) in zip(fed, fed[1:]):
        assert torch.equal(next_input, chosen)                   # then its own argmax


def test_scheduled_sampling_decays_the_ratio(session):
    s = session.strategy({"type": "teacher-forcing", "ratio": 1.0, "decay": 0.5, "min_ratio": 0.2})
    assert [s.teacher_ratio(e) for e in range(4)] == [1.0, 0.5, 0.25, 0.2]


def test_early_stopping_keeps_the_best(session, tiny_spec, monkeypatch):
    losses = iter([2.0, 1.5, 1.7, 1.8, 1.9, 2.0])
    monkeypatch.setattr("seqgen.train.mean_nll", lambda *a, **k: next(losses))
    tiny_spec["train"].update(epochs=6, patience=2)
    result = session.run(tiny_spec, out="r")
    evals = [h for h in result.train.history if h["event"] == "eval"]
    assert [e["valid_loss"] for e in evals] == [2.0, 1.5, 1.7, 1.8]
    assert result.train.stopped == "early-stopping"
    best = seqgen.checkpoint.load("r/best.safetensors")
    assert best.state["step"] == evals[1]["step"]
    assert result.checkpoint.name == "best.safetensors"


def test_early_stopping_between_epochs_with_eval_every(session, tiny_spec, monkeypatch):
    """eval_every: the evaluation inside the epoch stops training at once (the stop
    decision after the step must not overwrite it)."""
    losses = iter([2.0, 1.5, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2])
    monkeypatch.setattr("seqgen.train.mean_nll", lambda *a, **k: next(losses))
    tiny_spec["train"].update(epochs=6, patience=2, eval_every=3)
    result = session.run(tiny_spec, save=False)
    evals = [h for h in result.train.history if h["event"] == "eval"]
    assert [e["step"] for e in evals] == [3, 6, 9, 12]
    assert result.train.stopped == "early-stopping" and result.train.step == 12


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
        session, tiny_spec):
    tiny_spec["train"].update(epochs=3)

    class Poison:
        __name__ = "poison"

        @seqgen.hookimpl
        def on_event(self, event, session):
            if event.kind == "checkpoint" and event.data["kind"] == "last":
                self.model_params[0].data.fill_(float("nan"))

    poison = Poison()
    s = seqgen.Session([poison], entry_points=False)
    real_build = s.build_model

    def build_model(spec, vocab_size):
        model = real_build(spec, vocab_size)
        poison.model_params = list(model.parameters())
        return model

    s.build_model = build_model
    with pytest.raises(seqgen.TrainingError) as info:
        s.run(tiny_spec, out="r")
    assert "training diverged at step" in str(info.value) and "(epoch 2)" in str(info.value)
    assert "loss became nan" in str(info.value)
    assert "The last good checkpoint is kept (epoch 1" in str(info.value)
    good = seqgen.checkpoint.load("r/last.safetensors")
    assert good.state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in good.group("model").values())


def test_metrics_are_json_lines(session, tiny_spec):
    import json
    session.run(tiny_spec, out="r")
    rows = [json.loads(line) for line in open("r/metrics.jsonl")]
    rows = [r for r in rows if r["event"] != "step"]          # one per step: test_see_clipping
    assert [r["event"] for r in rows] == ["epoch", "eval", "epoch", "eval"]
    assert all(math.isfinite(r.get("train_loss", r.get("valid_loss"))) for r in rows)


def test_eval_every_n_steps(session, tiny_spec):
    tiny_spec["train"].update(epochs=1, eval_every=3)
    result = session.run(tiny_spec, out="r")
    steps = [h["step"] for h in result.train.history if h["event"] == "eval"]
    last = result.train.step
    assert last % 3 != 0                                      # so the final eval is extra
    assert steps == list(range(3, last + 1, 3)) + [last]      # the final weights are scored
