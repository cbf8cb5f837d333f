"""Seeing inside training: the gradient norm before clipping, whether clipping acted, the
learning rate and the teacher-forcing ratio of every step (step events, log events,
metrics.jsonl, the CLI's log lines, plot.png), and a run that overflows."""
import json
import math

import pytest
import torch
from click.testing import CliRunner

import seqgen
from seqgen.cli import cli
from seqgen.plot import figure_runs

STEP_KEYS = {"event", "step", "loss", "grad_norm", "clipped", "lr", "teacher_ratio"}


def step_rows(run_dir):
    return [r for r in map(json.loads, open(f"{run_dir}/metrics.jsonl")) if r["event"] == "step"]


def test_recorded_norm_is_the_norm_before_clipping_and_clipping_acts_above_it(
        session, tiny_spec, monkeypatch):
    tiny_spec["train"].update(clip_norm=0.3, epochs=1, optimizer={"type": "sgd", "lr": 0.5})
    real_clip = torch.nn.utils.clip_grad_norm_
    by_hand, after = [], []

    def spy(params, max_norm):
        params = list(params)
        by_hand.append(float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params
                                            if p.grad is not None))))
        total = real_clip(params, max_norm)
        after.append(float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params
                                          if p.grad is not None))))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    events = []
    result = session.run(tiny_spec, out="r", emit=events.append)
    steps = [e.data for e in events if e.kind == "step"]
    assert len(steps) == result.train.step == len(by_hand)
    assert [s["grad_norm"] for s in steps] == pytest.approx(by_hand, rel=1e-5)
    assert [s["clipped"] for s in steps] == [n > 0.3 for n in by_hand]
    assert any(s["clipped"] for s in steps) and not all(s["clipped"] for s in steps)
    assert max(after) <= 0.3 * (1 + 1e-4)                     # clipped to clip_norm
    rows = step_rows("r")
    assert all(set(r) == STEP_KEYS for r in rows)
    assert [r["step"] for r in rows] == list(range(1, result.train.step + 1))
    assert [r["grad_norm"] for r in rows] == [s["grad_norm"] for s in steps]
    assert [r["clipped"] for r in rows] == [s["clipped"] for s in steps]
    assert [r["loss"] for r in rows] == [s["loss"] for s in steps]
    logs = [e.data for e in events if e.kind == "log"]
    first = [s["grad_norm"] for s in steps[:10]]
    assert logs[0]["grad_norm_mean"] == pytest.approx(sum(first) / 10)
    assert logs[0]["grad_norm_max"] == max(first)
    assert logs[0]["clipped_fraction"] == sum(s["clipped"] for s in steps[:10]) / 10
    assert logs[0]["lr"] == 0.5 and logs[0]["teacher_ratio"] == 1.0


def test_without_clip_norm_the_norm_is_measured_and_nothing_is_clipped(session, tiny_spec):
    tiny_spec["train"].update(clip_norm=None, epochs=1)
    session.run(tiny_spec, out="r")
    rows = step_rows("r")
    assert rows and all(r["grad_norm"] > 0 and math.isfinite(r["grad_norm"]) for r in rows)
    assert not any(r["clipped"] for r in rows)


def test_lr_follows_the_schedule_and_the_teacher_ratio_is_recorded(session, tiny_spec):
    tiny_spec["train"].update(epochs=2, optimizer={"type": "adam", "lr": 0.01},
                              schedule={"type": "step", "gamma": 0.5, "step_size": 1},
                              strategy={"type": "teacher-forcing", "ratio": 0.5})
    result = session.run(tiny_spec, out="r")
    rows = step_rows("r")
    per_epoch = result.train.step // 2
    assert [r["lr"] for r in rows] == pytest.approx([0.01] * per_epoch + [0.005] * per_epoch)
    assert {r["teacher_ratio"] for r in rows} == {0.5}


def test_cli_log_lines_show_grad_norm_clipping_and_lr(tiny_spec, tmp_path):
    tiny_spec["train"].update(epochs=1, clip_norm=0.3)
    (tmp_path / "spec.json").write_text(json.dumps(tiny_spec))
    result = CliRunner().invoke(cli, ["run", "spec.json", "--out", "r"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert lines and all("| grad norm " in line and "clipped " in line and "| lr " in line
                         for line in lines)
    assert lines[0].startswith("step     10 | epoch   1 | loss ")


def test_the_plot_has_grad_norm_lr_and_teacher_ratio_panels(session, tiny_spec):
    tiny_spec["train"].update(epochs=1, clip_norm=0.3)
    session.run(tiny_spec, out="r")
    fig = figure_runs(["r"])
    titles = [ax.get_title() for ax in fig.axes]
    assert "gradient norm before clipping" in titles and "learning rate" in titles
    norm = fig.axes[titles.index("gradient norm before clipping")]
    assert norm.get_yscale() == "log"
    assert any(list(line.get_ydata()) == [0.3, 0.3] for line in norm.get_lines())  # clip line
    assert any(ax.get_ylabel() == "teacher-forcing ratio" for ax in fig.axes)
    from matplotlib.image import imread
    height, width = imread("r/plot.png").shape[:2]
    assert (width, height) == (1100, 800)                   # four panels (was 1100 x 400)


OVERFLOW = {"clip_norm": None, "divergence_factor": None, "epochs": 1,
            "optimizer": {"type": "sgd", "lr": 1000, "weight_decay": 1000}}


def test_an_overflowing_run_fails_cleanly_with_its_plot(tiny_spec, tmp_path):
    tiny_spec["train"].update(OVERFLOW)
    (tmp_path / "spec.json").write_text(json.dumps(tiny_spec))
    result = CliRunner().invoke(cli, ["run", "spec.json", "--out", "r"])
    assert result.exit_code == 1
    assert "training diverged" in result.stderr
    assert "bug" not in result.output and "Traceback" not in result.output
    assert (tmp_path / "r" / "plot.png").is_file()
    text = (tmp_path / "r" / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text       # valid JSON, every line
    rows = step_rows("r")
    assert rows[-1]["loss"] in ("nan", "inf")                  # the step that overflowed
    assert all(isinstance(r["loss"], float) for r in rows[:-1])
    fig = figure_runs(["r"])
    marked = [line for ax in fig.axes for line in ax.get_lines()
              if list(line.get_xdata()) == [rows[-1]["step"]] * 2]
    assert marked                                             # the overflow's vertical line


def test_huge_losses_show_a_capped_perplexity_and_plot(tiny_spec, tmp_path):
    tiny_spec["train"].update(clip_norm=None, divergence_factor=None, epochs=1,
                              optimizer={"type": "sgd", "lr": 1000})
    (tmp_path / "spec.json").write_text(json.dumps(tiny_spec))
    result = CliRunner().invoke(cli, ["run", "spec.json", "--out", "r"])
    assert result.exit_code == 0, result.output
    assert "ppl > 1e6" in result.stdout                       # not a 300-digit number
    assert max(len(word) for word in result.stdout.split()) < 60
    assert (tmp_path / "r" / "plot.png").is_file()


def test_resume_keeps_one_step_record_per_step(tiny_spec):
    class StopAt:
        __name__ = "stop-at"

        @seqgen.hookimpl
        def on_event(self, event, session):
            if event.kind == "step" and event.data["step"] == 50:
                import os
                import signal
                os.kill(os.getpid(), signal.SIGINT)

    whole = seqgen.Session(entry_points=False).run(tiny_spec, out="whole")
    cut = seqgen.Session([StopAt()], entry_points=False).run(tiny_spec, out="cut",
                                                            handle_signals=True)
    assert cut.interrupted
    seqgen.Session(entry_points=False).resume("cut")
    assert step_rows("cut") == step_rows("whole")
    assert len(step_rows("whole")) == whole.train.step
