"""Optimizers, learning-rate schedules and event loggers as registry kinds: the built-ins
train exactly as before, a plugin's own are chosen by the spec, and loggers write safely."""
import json
import os
import signal

import pytest
import torch

import seqgen
from seqgen import Logger

# 8 batches per epoch, 2 epochs: the epoch-2 losses show a schedule's epoch boundary.
SMALL = {"dataset": {"type": "synthetic", "num_chars": 600},
         "generate": {"prompts": ["the "], "max_new_tokens": 4}}

# Per-step losses pinned when optimizers and schedules became plugins (re-pinned when
# weights began to be drawn from the run's own "init" generator, seqgen/seeding.py).
PINNED = {
    "adam+cosine": (
        {"optimizer": {"type": "adam", "lr": 0.01},
         "schedule": {"type": "cosine", "warmup_steps": 2, "min_factor": 0.1}},
        [3.254496, 3.235898, 3.253758, 3.173630, 3.151352, 3.101963, 3.038702, 3.044969,
         2.957216, 2.918432, 2.976855, 2.858220, 2.867136, 2.837386, 2.780315, 2.857197],
        [0.007452476826029011, 0.0011128243951817936]),
    "sgd-momentum+exponential": (
        {"optimizer": {"type": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 0.001},
         "schedule": {"type": "exponential", "gamma": 0.5, "start_epoch": 1}},
        [3.254496, 3.216894, 3.197382, 3.065542, 2.984908, 2.867187, 2.792065, 2.890503,
         2.743139, 2.777614, 2.834374, 2.737103, 2.687711, 2.657411, 2.555484, 2.795124],
        [0.5, 0.25]),
    "rmsprop-momentum+step": (
        {"optimizer": {"type": "rmsprop", "lr": 0.005, "momentum": 0.5, "weight_decay": 0.01},
         "schedule": {"type": "step", "gamma": 0.1, "step_size": 1}},
        [3.254496, 3.118554, 2.985942, 2.710828, 2.874165, 2.644423, 2.519818, 2.773819,
         2.503084, 2.525682, 2.649643, 2.567357, 2.532835, 2.539275, 2.385643, 2.633245],
        [0.005, 0.0005]),
    "adamw+constant": (
        {"optimizer": {"type": "adamw", "lr": 0.02, "weight_decay": 0.1}},
        [3.254496, 3.188461, 3.178366, 3.033607, 2.965778, 2.856742, 2.704830, 2.779735,
         2.643633, 2.586868, 2.742388, 2.589896, 2.544565, 2.556283, 2.348985, 2.611388],
        [0.02, 0.02]),
}


def small_spec(tiny_spec, **train) -> dict:
    tiny_spec.update(SMALL)
    tiny_spec["train"].update(train)
    return tiny_spec


@pytest.mark.parametrize("case", PINNED)
def test_builtin_optimizers_and_schedules_train_exactly_as_before(session, tiny_spec, case):
    train, losses, epoch_lrs = PINNED[case]
    steps = []
    result = session.run(small_spec(tiny_spec, **train), out="r",
                         emit=lambda e: steps.append(e.data["loss"]) if e.kind == "step" else None)
    assert steps == pytest.approx(losses, rel=1e-5)
    assert [h["lr"] for h in result.train.history if h["event"] == "epoch"] == pytest.approx(
        epoch_lrs, rel=1e-12)


def test_each_builtin_takes_only_its_own_options_with_the_old_defaults(session, tiny_spec):
    train = session.resolve(tiny_spec)["train"]
    assert train["optimizer"] == {"type": "adam", "lr": 0.002, "weight_decay": 0}
    assert train["schedule"] == {"type": "constant"}
    assert train["loggers"] == []
    tiny_spec["train"].update(optimizer={"type": "sgd"}, schedule={"type": "exponential"},
                              loggers=[{"type": "jsonl"}, {"type": "csv"}])
    train = session.resolve(tiny_spec)["train"]
    assert train["optimizer"] == {"type": "sgd", "lr": 0.002, "weight_decay": 0, "momentum": 0}
    assert train["schedule"] == {"type": "exponential", "gamma": 0.97, "start_epoch": 10}
    assert train["loggers"] == [
        {"type": "jsonl", "path": "events.jsonl",
         "events": ["start", "log", "epoch", "eval", "early_stop", "interrupted", "end"]},
        {"type": "csv", "path": "metrics.csv", "events": ["epoch", "eval"]}]
    tiny_spec["train"].update(optimizer={"type": "adam", "momentum": 0.9},
                              schedule={"type": "cosine", "gamma": 0.5})
    with pytest.raises(seqgen.SpecError) as info:
        session.resolve(tiny_spec)
    assert info.value.problems == [
        "$.train.optimizer: Additional properties are not allowed ('momentum' was unexpected). "
        "Allowed: lr, type, weight_decay",
        "$.train.schedule: Additional properties are not allowed ('gamma' was unexpected). "
        "Allowed: min_factor, type, warmup_steps"]


def test_unknown_names_are_reported_with_their_paths_and_a_suggestion(session, tiny_spec):
    tiny_spec["train"].update(optimizer={"type": "adamm"}, schedule={"type": "cosin"},
                              loggers=[{"type": "csv"}, {"type": "jsonll"}])
    with pytest.raises(seqgen.SpecError) as info:
        session.resolve(tiny_spec)
    assert info.value.problems == [
        "$.train.optimizer.type: Can't find 'adamm' among optimizers. Available: adam, adamw, "
        "rmsprop, sgd. Did you mean 'adam'?",
        "$.train.schedule.type: Can't find 'cosin' among learning-rate schedules. Available: "
        "constant, cosine, exponential, step. Did you mean 'cosine'?",
        "$.train.loggers[1].type: Can't find 'jsonll' among event loggers. Available: csv, "
        "jsonl. Did you mean 'jsonl'?"]


# -- a third-party plugin -------------------------------------------------------------------
class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023): a step of lr * sign(interpolated momentum). Its state holds a
    tensor and a plain int, the two shapes a checkpoint must carry."""

    def __init__(self, params, lr, beta1, beta2):
        super().__init__(params, {"lr": lr, "betas": (beta1, beta2)})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(exp_avg=torch.zeros_like(p), updates=0)
                update = state["exp_avg"] * beta1 + p.grad * (1 - beta1)
                p.add_(torch.sign(update), alpha=-group["lr"])
                state["exp_avg"].mul_(beta2).add_(p.grad, alpha=1 - beta2)
                state["updates"] += 1


class Memory(Logger):
    def __init__(self, run_dir, fail_on):
        self.run_dir, self.fail_on, self.events, self.closed = run_dir, fail_on, [], 0

    def log(self, event):
        if event.kind == self.fail_on:
            raise RuntimeError("disk full")
        self.events.append(event)

    def close(self):
        self.closed += 1


class Extras:
    """Registers a Lion optimizer, an in-memory logger, and factories of the wrong type."""
    __name__ = "extras"

    def __init__(self):
        self.optimizers, self.loggers = [], []

    def lion(self, params, **options):
        self.optimizers.append(Lion(params, **options))
        return self.optimizers[-1]

    def memory(self, run_dir, **options):
        self.loggers.append(Memory(run_dir, **options))
        return self.loggers[-1]

    @seqgen.hookimpl
    def register_optimizers(self, register):
        number = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
        register("lion", self.lion, {"type": "object", "properties": {
            "lr": {**number, "default": 0.001}, "beta1": {**number, "default": 0.9},
            "beta2": {**number, "default": 0.99}}}, "Lion: sign of interpolated momentum.")
        register("listed", lambda params: [], None, "Returns a list.")

    @seqgen.hookimpl
    def register_schedules(self, register):
        register("linear", lambda *, steps_per_epoch, total_steps:
                 lambda step: (step + 1) / total_steps, None, "Warm up over the whole run.")
        register("half", lambda *, steps_per_epoch, total_steps: 0.5, None, "Not callable.")

    @seqgen.hookimpl
    def register_loggers(self, register):
        register("memory", self.memory, {"type": "object", "properties": {
            "fail_on": {"type": ["string", "null"], "default": None}}}, "Keeps events.")


def run_with(tiny_spec, **train):
    """(result, events the caller saw, the Extras plugin) of a run with `train` options."""
    extras, emitted = Extras(), []
    tiny_spec["train"].update(train)
    result = seqgen.Session([extras], entry_points=False).run(tiny_spec, out="r",
                                                              emit=emitted.append)
    return result, emitted, extras


def epoch_lrs(result) -> list[float]:
    return [h["lr"] for h in result.train.history if h["event"] == "epoch"]


def test_hook_register_optimizers(tiny_spec):
    result, _, extras = run_with(tiny_spec, optimizer={"type": "lion", "lr": 0.003})
    [optimizer] = extras.optimizers
    steps = result.train.step
    assert steps > 0 and all(s["updates"] == steps for s in optimizer.state.values())
    assert len(optimizer.state) == len(optimizer.param_groups[0]["params"])
    assert epoch_lrs(result) == [0.003] * 2


def test_hook_register_schedules(tiny_spec):
    result, _, _ = run_with(tiny_spec, schedule={"type": "linear"})
    assert result.train.step == 82                   # 41 steps an epoch
    assert epoch_lrs(result) == pytest.approx([0.002 * 41 / 82, 0.002])


def test_hook_register_loggers(tiny_spec):
    _, emitted, extras = run_with(tiny_spec, loggers=[{"type": "memory"}])
    [logger] = extras.loggers
    assert str(logger.run_dir) == "r" and logger.closed == 1
    assert logger.events == emitted                  # every event, in order
    assert (logger.events[0].kind, logger.events[-1].kind) == ("start", "end")


def test_plugins_and_schema_show_the_new_kinds():
    session = seqgen.Session([Extras()], entry_points=False)
    listed = {p["name"]: [(c["kind"], c["name"]) for c in p["components"]]
              for p in session.plugins()["plugins"]}
    assert listed["seqgen_plugins.optimizers"] == [("optimizer", n)
                                                   for n in ("adam", "adamw", "rmsprop", "sgd")]
    assert listed["seqgen_plugins.schedules"] == [("schedule", n) for n in
                                                  ("constant", "cosine", "exponential", "step")]
    assert listed["seqgen_plugins.loggers"] == [("logger", "csv"), ("logger", "jsonl")]
    assert ("optimizer", "lion") in listed["extras"] and ("logger", "memory") in listed["extras"]
    train = session.schema()["properties"]["train"]["properties"]
    lion = next(c["then"] for c in train["optimizer"]["allOf"]
                if c["if"]["properties"]["type"]["const"] == "lion")
    assert {k: v.get("default") for k, v in lion["properties"].items()
            if k in ("lr", "beta1", "beta2")} == {"lr": 0.001, "beta1": 0.9, "beta2": 0.99}
    assert train["loggers"]["items"]["properties"]["type"]["enum"] == ["csv", "jsonl", "memory"]


@pytest.mark.parametrize("slot, name, returned", [
    ("optimizer", "listed", "list [], not a torch.Optimizer"),
    ("schedule", "half", "float 0.5, not a callable")])
def test_a_factory_returning_the_wrong_type_is_an_error_naming_the_plugin(
        tiny_spec, slot, name, returned):
    tiny_spec["train"][slot] = {"type": name}
    with pytest.raises(seqgen.PluginError) as info:
        seqgen.Session([Extras()], entry_points=False).run(tiny_spec, out="r")
    assert f"{slot} {name!r} (plugin 'extras'" in str(info.value)
    assert str(info.value).endswith(f"its factory returned {returned}")
    assert not os.path.exists("r")                   # nothing ran, nothing left behind


def test_a_failing_logger_stops_the_run_naming_its_plugin_and_every_logger_is_closed(tiny_spec):
    extras = Extras()
    tiny_spec["train"]["loggers"] = [{"type": "memory"}, {"type": "memory", "fail_on": "eval"}]
    with pytest.raises(seqgen.PluginError) as info:
        seqgen.Session([extras], entry_points=False).run(tiny_spec, out="r")
    assert str(info.value) == ("logger 'memory' (plugin 'extras') failed on event 'eval': "
                               "RuntimeError: disk full")
    assert [logger.closed for logger in extras.loggers] == [1, 1]


class SignalAt:
    __name__ = "signal-at"

    def __init__(self, step):
        self.step = step

    @seqgen.hookimpl
    def on_event(self, event, session):
        if event.kind == "step" and event.data["step"] == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def losses(records):
    return [(r["event"], r["step"], r.get("train_loss"), r.get("valid_loss")) for r in records]


def test_a_plugin_optimizer_and_the_jsonl_log_resume_exactly(tiny_spec):
    tiny_spec["train"].update(epochs=3, optimizer={"type": "lion"}, loggers=[
        {"type": "jsonl", "events": ["epoch", "eval"]}, {"type": "memory"}])
    whole = seqgen.Session([Extras()], entry_points=False).run(tiny_spec, out="whole")
    cut = Extras()
    first = seqgen.Session([cut, SignalAt(13)], entry_points=False).run(
        tiny_spec, out="cut", handle_signals=True)
    assert first.interrupted and first.train.step == 13
    [logger] = cut.loggers
    assert logger.events[-1].kind == "interrupted" and logger.closed == 1
    resumed = seqgen.Session([Extras()], entry_points=False).resume("cut")
    assert losses(resumed.train.history) == losses(whole.train.history)
    rows = [json.loads(line) for line in open("cut/events.jsonl")]
    assert losses(rows) == losses(whole.train.history)     # appended across the resume


def test_jsonl_and_csv_logs_of_a_run_hold_its_records(session, tiny_spec):
    tiny_spec["train"]["loggers"] = [{"type": "jsonl"}, {"type": "csv"}]
    result = session.run(tiny_spec, out="r")
    rows = [json.loads(line) for line in open("r/events.jsonl")]
    epoch = ["log"] * 4 + ["epoch", "eval"]                  # 41 steps, logged every 10
    assert [r["event"] for r in rows] == ["start"] + epoch * 2 + ["end"]
    assert [r for r in rows if r["event"] in ("epoch", "eval")] == result.train.history
    lines = open("r/metrics.csv").read().splitlines()
    assert lines[0] == ("event,epoch,step,train_loss,train_perplexity,lr,seconds,valid_loss,"
                        "valid_perplexity,best")
    assert [line.split(",")[0] for line in lines[1:]] == ["epoch", "eval"] * 2
    assert len([line for line in open("r/metrics.jsonl")
                if '"step", "step"' not in line]) == 4          # still written


# -- the built-in loggers, row by row -------------------------------------------------------
EVENTS = [seqgen.Event("start", {"run_dir": "r"}),
          seqgen.Event("epoch", {"event": "epoch", "epoch": 1, "step": 8, "train_loss": 2.5,
                                 "lr": 0.002}),
          seqgen.Event("eval", {"event": "eval", "epoch": 1, "step": 8, "valid_loss": 2.25,
                                "best": True}),
          seqgen.Event("sample", {"epoch": 1, "prompt": "a", "text": "é, \"b\""}),
          seqgen.Event("epoch", {"event": "epoch", "epoch": 2, "step": 16, "train_loss": 2.0,
                                 "lr": None})]


def logger(session, kind, **options):
    return session.build("logger", {"type": kind, **options}, "run")


def test_the_jsonl_logger_writes_one_flushed_line_per_chosen_event(session):
    log = logger(session, "jsonl", path="logs/e.jsonl", events=["eval", "sample"])
    for event in EVENTS:
        log.log(event)
    expected = ('{"event": "eval", "epoch": 1, "step": 8, "valid_loss": 2.25, "best": true}\n'
                '{"event": "sample", "epoch": 1, "prompt": "a", "text": "é, \\"b\\""}\n')
    assert open("run/logs/e.jsonl", encoding="utf-8").read() == expected   # before close
    log.close()
    again = logger(session, "jsonl", path="logs/e.jsonl", events=["start"])
    again.log(EVENTS[0])
    again.close()
    assert open("run/logs/e.jsonl", encoding="utf-8").read() == (
        expected + '{"event": "start", "run_dir": "r"}\n')


def test_the_csv_logger_widens_its_header_and_keeps_it_across_a_resume(session):
    log = logger(session, "csv", path="m.csv", events=["epoch", "eval", "sample"])
    for event in EVENTS:
        log.log(event)
    expected = ('event,epoch,step,train_loss,lr,valid_loss,best,prompt,text\r\n'
                'epoch,1,8,2.5,0.002,,,,\r\n'
                'eval,1,8,,,2.25,true,,\r\n'
                'sample,1,,,,,,a,"é, ""b"""\r\n'
                'epoch,2,16,2.0,,,,,\r\n')
    assert open("run/m.csv", newline="", encoding="utf-8").read() == expected  # before close
    log.close()
    again = logger(session, "csv", path="m.csv", events=["eval"])
    again.log(seqgen.Event("eval", {"event": "eval", "step": 24, "valid_loss": 1.5,
                                    "seconds": 3}))
    again.close()
    assert open("run/m.csv", newline="", encoding="utf-8").read() == (
        'event,epoch,step,train_loss,lr,valid_loss,best,prompt,text,seconds\r\n'
        'epoch,1,8,2.5,0.002,,,,,\r\n'
        'eval,1,8,,,2.25,true,,,\r\n'
        'sample,1,,,,,,a,"é, ""b""",\r\n'
        'epoch,2,16,2.0,,,,,,\r\n'
        'eval,,24,,,1.5,,,,3\r\n')
    assert sorted(os.listdir("run")) == ["m.csv"]                        # no temp files left
