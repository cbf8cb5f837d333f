"""Mixed precision (`train.amp`, seqgen/precision.py): false is float32, "bf16" (or true)
is bfloat16 autocast on CPU and CUDA, "fp16" is float16 autocast with a gradient scaler on
CUDA only. There is no GPU here: the fp16 scaler path is exercised on CPU by adding "cpu"
to seqgen.precision.DEVICES["fp16"] and using a scratch cell (torch's fused CPU LSTM has
no float16 kernel)."""
import copy
import json
import math
import os
import shutil

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

import seqgen
import seqgen.precision
import seqgen.train
from conftest import TINY_SPEC
from seqgen.cli import cli

REFUSAL = '$.train.amp: "fp16" needs a CUDA device'
TORCH_INIT_SCALE = 65536.0            # torch.amp.GradScaler's default init_scale
OVERFLOW_SCALE = 2.0 ** 28            # far too large for float16 gradients: they overflow


def amp_spec(amp, cell="gru-scratch", steps=4) -> dict:
    """A tiny run of `steps` optimizer steps (all in the first epoch) with train.amp=amp."""
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["cell"] = {"type": cell, "hidden_size": 16}
    spec["train"].update(amp=amp, epochs=1, max_steps=steps)
    spec["generate"] = {"prompts": ["the "], "max_new_tokens": 4}
    return spec


def steps_of(events) -> list[dict]:
    return [e.data for e in events if e.kind == "step"]


def run_steps(session, spec, **kwargs) -> list[dict]:
    """The step events of a run."""
    events = []
    session.run(spec, emit=events.append, **kwargs)
    return steps_of(events)


def amp_warnings(events) -> list[str]:
    return [e.data["message"] for e in events
            if e.kind == "warning" and "amp" in e.data["message"]]


def key(step: dict) -> tuple:
    """What must match between an interrupted-and-resumed run and an uninterrupted one
    (grad_norm as text: a skipped step's norm is nan)."""
    return (step["step"], step["loss"], repr(step["grad_norm"]), step["loss_scale"],
            step["amp_skipped"])


@pytest.fixture
def fp16_on_cpu(monkeypatch):
    """Let "fp16" run on CPU, as on CUDA (the scaler path, not torch's CUDA kernels)."""
    monkeypatch.setitem(seqgen.precision.DEVICES, "fp16", ("cuda", "cpu"))


@pytest.fixture
def scaler_start(monkeypatch):
    """scaler_start(init_scale, growth_interval): every GradScaler made from now on
    starts at init_scale and grows after growth_interval good steps."""
    real = torch.amp.GradScaler

    def patch(init_scale, growth_interval=2000):
        def make(device="cuda", *args, **kwargs):
            return real(device, init_scale=init_scale, growth_interval=growth_interval)
        monkeypatch.setattr(seqgen.precision.torch.amp, "GradScaler", make)
    return patch


# -- 1. fp16 off CUDA is refused before anything happens ---------------------------------------

def test_fp16_on_cpu_is_refused_before_any_work(session, monkeypatch, tmp_path):
    built = []
    real_build = session.build
    monkeypatch.setattr(session, "build", lambda kind, *a, **k: (built.append(kind),
                                                                 real_build(kind, *a, **k))[1])
    for out in ("r", None):                       # an explicit directory, and runs/<name>-...
        with pytest.raises(seqgen.SpecError) as info:   # device "auto": found to be the CPU
            session.run(amp_spec("fp16"), out=out)
        assert str(info.value).startswith("invalid spec: " + REFUSAL + ", and this run is on cpu")
        assert '"bf16"' in str(info.value)      # says what to use instead
    assert built == []                           # not even the dataset was built
    assert os.listdir(tmp_path) == []            # no run directory, no files


def test_fp16_on_cpu_is_refused_when_resuming_and_the_run_is_untouched(session, tmp_path):
    seen = []
    first = session.run(amp_spec(False, steps=6), out="r", emit=seen.append,
                        should_stop=lambda: len(steps_of(seen)) >= 2)
    assert first.interrupted and first.train.step == 2
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "r").iterdir()
              if p.is_file() and p.name != ".lock"}          # the lock is rewritten
    with pytest.raises(seqgen.SpecError) as info:
        session.resume("r", ["train.amp=fp16"])
    assert REFUSAL in str(info.value)
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "r").iterdir()
             if p.is_file() and p.name != ".lock"}
    assert after == before and "last.safetensors" in after
    assert session.resume("r").train.stopped == "max-steps"  # still resumable as it was


def test_cli_refuses_fp16_on_cpu_with_one_readable_line(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(amp_spec("fp16")))
    result = CliRunner().invoke(cli, ["run", "spec.json"])
    assert result.exit_code == 2                                # a spec error
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and REFUSAL in lines[0] and lines[0].startswith("Error: ")
    assert "Traceback" not in result.output and "bug" not in result.output
    assert result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["spec.json"]    # no runs/ directory


def test_validate_refuses_fp16_for_an_explicit_cpu_device(tmp_path):
    spec = {**amp_spec("fp16"), "device": "cpu"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = CliRunner().invoke(cli, ["validate", "spec.json"])
    assert result.exit_code == 2 and REFUSAL in result.stderr
    ok = CliRunner().invoke(cli, ["validate", "spec.json", "--set", "device=auto"])
    assert ok.exit_code == 0, ok.output          # "auto" may find CUDA: decided at run time


# -- 2. the schema -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["fp32", 1, 0, "BF16"])
def test_other_amp_values_are_spec_errors_naming_the_field(session, value, tmp_path):
    with pytest.raises(seqgen.SpecError) as info:
        session.run(amp_spec(value), out="r")
    assert "$.train.amp" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_amp_true_is_bf16(session):
    assert session.resolve(TINY_SPEC)["train"]["amp"] is False     # the default: float32
    assert session.resolve(amp_spec(True))["train"]["amp"] is True
    as_true = [s["loss"] for s in run_steps(session, amp_spec(True), save=False)]
    as_bf16 = [s["loss"] for s in run_steps(session, amp_spec("bf16"), save=False)]
    as_fp32 = [s["loss"] for s in run_steps(session, amp_spec(False), save=False)]
    assert len(as_true) == 4
    assert as_true == as_bf16
    assert as_true != as_fp32                    # ... and not float32


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_is_bf16_where_the_cpu_has_it_else_float32(session, native, monkeypatch):
    """"auto" follows the hardware (seqgen.precision.native_bf16): bf16 exactly where it
    is native, float32 exactly elsewhere, and no warning either way."""
    monkeypatch.setattr(seqgen.precision, "native_bf16", lambda device_type: native)
    events = []
    session.run(amp_spec("auto"), save=False, emit=events.append)
    auto = [s["loss"] for s in steps_of(events)]
    same = [s["loss"] for s in run_steps(session, amp_spec("bf16" if native else False),
                                         save=False)]
    assert len(auto) == 4 and auto == same
    assert amp_warnings(events) == []


def test_native_bf16_reads_the_cpu():
    flags = (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert seqgen.precision.native_bf16("cpu") == bool(flags)
    assert seqgen.precision.native_bf16("mps") is False


# -- 3. bf16 on CPU ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru-scratch"])
def test_bf16_applies_autocast_on_cpu(session, cell, monkeypatch):
    fp32_events, bf16_events = [], []
    session.run(amp_spec(False, cell), save=False, emit=fp32_events.append)
    session.run(amp_spec("bf16", cell), save=False, emit=bf16_events.append)
    fp32 = [s["loss"] for s in steps_of(fp32_events)]
    bf16 = [s["loss"] for s in steps_of(bf16_events)]
    assert len(fp32) == len(bf16) == 4
    assert max(abs(a - b) for a, b in zip(fp32, bf16)) > 1e-6      # bfloat16 arithmetic...
    assert max(abs(a - b) for a, b in zip(fp32, bf16)) < 0.05      # ... of the same model
    assert amp_warnings(fp32_events) == [] and amp_warnings(bf16_events) == []
    assert all("loss_scale" not in s and "amp_skipped" not in s       # no scaler without fp16
               for s in steps_of(fp32_events) + steps_of(bf16_events))

    # where bf16 is not applied, the run says so and is float32 exactly: so the difference
    # above is autocast's, and the absence of a warning above means something
    monkeypatch.setitem(seqgen.precision.DEVICES, "bf16", ("cuda",))
    ignored_events = []
    session.run(amp_spec("bf16", cell), save=False, emit=ignored_events.append)
    assert [s["loss"] for s in steps_of(ignored_events)] == fp32
    assert amp_warnings(ignored_events) == [
        "$.train.amp: bf16 autocast is used on cuda only; it has no effect on cpu"]


# -- 4. the fp16 scaler ------------------------------------------------------------------------

def test_fp16_records_the_scale_and_the_true_gradient_norm(session, fp16_on_cpu):
    fp32 = run_steps(session, amp_spec(False), save=False)
    fp16 = run_steps(session, amp_spec("fp16"), out="r")
    assert len(fp16) == 4
    assert [s["loss_scale"] for s in fp16] == [TORCH_INIT_SCALE] * 4
    assert [s["amp_skipped"] for s in fp16] == [False] * 4
    # the same seed, the same first batch: the unscaled norm is float32's, give or take
    # float16 rounding, and nowhere near 65536 times it
    assert fp16[0]["grad_norm"] == pytest.approx(fp32[0]["grad_norm"], rel=0.1)
    assert fp16[0]["grad_norm"] < 100 * fp32[0]["grad_norm"]
    assert all(math.isfinite(s["grad_norm"]) and s["grad_norm"] < 100 for s in fp16)
    assert [s["loss"] for s in fp16] == pytest.approx([s["loss"] for s in fp32], abs=0.05)
    assert [s["loss"] for s in fp16] != [s["loss"] for s in fp32]   # float16 did run
    state = seqgen.checkpoint.load("r/last.safetensors").state["trainer"]
    assert state["scaler"]["scale"] == TORCH_INIT_SCALE
    assert state["scaler"]["_growth_tracker"] == 4


def test_metrics_carry_the_loss_scale_only_for_fp16(session, fp16_on_cpu):
    session.run(amp_spec(False), out="f32")
    rows = [r for r in seqgen.atomic.read_json_lines("f32/metrics.jsonl")
            if r["event"] == "step"]
    assert rows and all(r.get("loss_scale") is None for r in rows)
    assert all(not r.get("amp_skipped") for r in rows)


def test_fp16_metrics_and_plot_show_the_scale_and_skipped_steps(session, fp16_on_cpu,
                                                                scaler_start):
    scaler_start(OVERFLOW_SCALE)
    steps = run_steps(session, amp_spec("fp16", steps=16), out="r")
    rows = [r for r in seqgen.atomic.read_json_lines("r/metrics.jsonl")
            if r["event"] == "step"]
    skipped = [s["step"] for s in steps if s["amp_skipped"]]
    assert skipped
    assert [r.get("loss_scale") for r in rows] == [s["loss_scale"] for s in steps]
    assert [r.get("amp_skipped") for r in rows] == [s["amp_skipped"] for s in steps]
    from seqgen.plot import figure_runs
    labels = [line.get_label() for ax in figure_runs(["r"]).axes for line in ax.get_lines()]
    assert any(f"fp16 overflow, step skipped ({len(skipped)})" in label for label in labels)
    assert not any("overflow at step" in label for label in labels)  # not a divergence


# -- 5. overflow: skipped steps, a halving scale, no divergence -------------------------------

def test_fp16_overflow_skips_steps_halves_the_scale_and_keeps_training(
        session, fp16_on_cpu, scaler_start, monkeypatch, tmp_path):
    scaler_start(OVERFLOW_SCALE)
    real_step = seqgen.train.Trainer.step
    seen = []           # per step: skipped?, weights unchanged?, parameters with Adam state

    def spy(self, batch, state, ratio):
        before = [p.detach().clone() for p in self.model.parameters()]
        out = real_step(self, batch, state, ratio)
        unchanged = all(torch.equal(b, p) for b, p in zip(before, self.model.parameters()))
        seen.append((self.stats["amp_skipped"], unchanged, len(self.optimizer.state)))
        return out

    monkeypatch.setattr(seqgen.train.Trainer, "step", spy)
    events = []
    result = session.run(amp_spec("fp16", steps=16), out="r", emit=events.append)
    steps = steps_of(events)
    assert result.train.stopped == "max-steps" and result.train.step == 16
    assert len(steps) == len(seen) == 16
    skips = next(i for i, s in enumerate(steps) if not s["amp_skipped"])
    assert 3 <= skips < 14                       # a few overflows, then it trains
    assert all(s["amp_skipped"] for s in steps[:skips])
    assert [s["loss_scale"] for s in steps[:skips + 1]] == [OVERFLOW_SCALE / 2 ** i
                                                            for i in range(skips + 1)]
    assert all(not math.isfinite(s["grad_norm"]) for s in steps[:skips])
    assert all(math.isfinite(s["grad_norm"]) and s["grad_norm"] < 100 for s in steps[skips:])
    assert all(math.isfinite(s["loss"]) for s in steps)
    # a skipped step leaves the weights (and Adam's state) as they were; a good one moves them
    assert [(skipped, unchanged) for skipped, unchanged, _ in seen] == [
        (s["amp_skipped"], s["amp_skipped"]) for s in steps]
    assert [n for *_, n in seen[:skips]] == [0] * skips
    assert seen[skips][2] > 0
    assert [s["amp_skipped"] for s in steps] == [s for s, *_ in seen]
    assert not [e for e in events if e.kind == "warning"]
    assert any(e.kind == "end" for e in events)
    assert (tmp_path / "r" / "plot.png").is_file()
    assert result.samples                        # it went on to generate


def test_a_run_of_only_skipped_steps_ends_with_its_initial_weights(
        session, fp16_on_cpu, scaler_start, monkeypatch):
    scaler_start(OVERFLOW_SCALE)
    initial = {}
    real_fit = seqgen.train.Trainer.fit

    def fit(self):
        initial.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return real_fit(self)

    monkeypatch.setattr(seqgen.train.Trainer, "fit", fit)
    steps = run_steps(session, amp_spec("fp16", steps=3), out="r")
    assert [s["amp_skipped"] for s in steps] == [True] * 3
    last = seqgen.checkpoint.load("r/last.safetensors")
    weights = last.group("model")
    assert initial and weights.keys() == initial.keys()
    assert all(torch.equal(weights[k], initial[k]) for k in initial)
    assert not [k for k in last.tensors if k.startswith("optim.")]     # Adam never stepped
    assert last.state["trainer"]["scaler"]["scale"] == OVERFLOW_SCALE / 8


# -- 6. exact resume with fp16 -----------------------------------------------------------------

def read_checkpoint(path):
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}


def damage_scaler(path, change):
    meta, tensors = read_checkpoint(path)
    state = json.loads(meta["state"])
    change(state["trainer"]["scaler"])
    meta["state"] = json.dumps(state)
    save_file(tensors, str(path), metadata=meta)


def test_fp16_resumes_exactly_with_its_scaler_state(session, fp16_on_cpu, scaler_start):
    # overflows first, then a scale that doubles after 3 good steps and overflows again:
    # the scale and the scaler's good-step counter both matter across the cut
    scaler_start(OVERFLOW_SCALE, growth_interval=3)
    probe = run_steps(session, amp_spec("fp16", steps=16), save=False)
    skips = next(i for i, s in enumerate(probe) if not s["amp_skipped"])
    total = skips + 8
    whole = run_steps(session, amp_spec("fp16", steps=total), out="whole")
    assert len(whole) == total
    assert any(b["loss_scale"] == 2 * a["loss_scale"] for a, b in zip(whole, whole[1:]))  # grew
    for cut in (3, skips + 2):
        out = f"cut{cut}"
        seen = []
        session.run(amp_spec("fp16", steps=total), out=out, emit=seen.append,
                    should_stop=lambda: len(steps_of(seen)) >= cut)
        first = steps_of(seen)
        assert len(first) == cut
        scaler = seqgen.checkpoint.load(f"{out}/last.safetensors").state["trainer"]["scaler"]
        trailing_good = next((i for i, s in enumerate(reversed(whole[:cut]))
                              if s["amp_skipped"]), cut)
        assert scaler["scale"] == whole[cut]["loss_scale"]          # the next step's scale
        assert scaler["_growth_tracker"] == trailing_good % 3
        shutil.copytree(out, f"{out}-copy")
        events = []
        resumed = session.resume(out, emit=events.append)
        assert resumed.train.stopped == "max-steps"
        assert [key(s) for s in first + steps_of(events)] == [key(s) for s in whole]
        assert ([r for r in seqgen.atomic.read_json_lines(f"{out}/metrics.jsonl")
                 if r["event"] == "step"] ==
                [r for r in seqgen.atomic.read_json_lines("whole/metrics.jsonl")
                 if r["event"] == "step"])

    # a damaged scaler state is refused, naming the file and the field
    for name, change in {"negative": lambda s: s.update(scale=-1.0),
                         "zero": lambda s: s.update(scale=0),
                         "string": lambda s: s.update(scale="big"),
                         "tracker": lambda s: s.update(_growth_tracker=-1),
                         "missing": lambda s: s.pop("scale")}.items():
        out = f"bad-{name}"
        shutil.copytree("cut3-copy", out)
        damage_scaler(f"{out}/last.safetensors", change)
        with pytest.raises(seqgen.CheckpointError) as info:
            session.resume(out)
        assert "last.safetensors" in str(info.value) and "scaler" in str(info.value), name
    assert session.resume("cut3-copy").train.stopped == "max-steps"   # the undamaged one


def test_a_bf16_run_resumes_without_amp(session):
    """Under autocast the fused LSTM returns a bfloat16 state; the trainer carries and
    saves it as float32, so the run resumes with any train.amp."""
    seen = []
    first = session.run(amp_spec("bf16", cell="lstm", steps=6), out="r", emit=seen.append,
                        should_stop=lambda: len(steps_of(seen)) >= 2)
    assert first.interrupted
    with safe_open("r/last.safetensors", "pt") as f:
        carried = [f.get_tensor(k) for k in f.keys() if k.startswith("carry.")]
    assert carried and all(t.dtype == torch.float32 for t in carried)
    resumed = session.resume("r", ["train.amp=false"])
    assert resumed.train.stopped == "max-steps" and resumed.train.step == 6
