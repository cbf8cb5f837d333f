"""Damaged or mismatched inputs get one clear error, and nothing already written is lost."""
import json
import os
import stat

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from seqgen import checkpoint as ckpt
from seqgen.cli import cli


@pytest.fixture
def finished(session, tiny_spec):
    tiny_spec["train"]["epochs"] = 1
    session.run(tiny_spec, out="r")
    return "r"


def test_resume_refuses_a_changed_model_or_dataset(finished):
    result = CliRunner().invoke(cli, ["run", "--resume", finished, "--set",
                                      "model.cell.hidden_size=32", "--set",
                                      "dataset.num_chars=5000", "--set", "train.epochs=3"])
    assert result.exit_code == 2
    assert "$.dataset.num_chars: cannot change when resuming" in result.stderr
    assert "$.model.cell.hidden_size: cannot change when resuming" in result.stderr
    assert "Traceback" not in result.output


def test_refused_resume_touches_no_file(finished):
    def stamps():   # but .lock, which records the PID of the last process to take it
        return {p: os.stat(os.path.join(finished, p)).st_mtime_ns
                for p in os.listdir(finished) if p != ".lock"}
    before = stamps()
    result = CliRunner().invoke(cli, ["run", "--resume", finished])
    assert result.exit_code == 1 and "already finished" in result.stderr
    assert stamps() == before


def test_a_torn_last_metrics_line_is_dropped(finished):
    with open(f"{finished}/metrics.jsonl", "a") as f:
        f.write('{"event": "epoch", "ste')                   # a crash mid-append
    assert CliRunner().invoke(cli, ["plot", finished]).exit_code == 0
    result = CliRunner().invoke(cli, ["run", "--resume", finished, "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in open(f"{finished}/metrics.jsonl")]
    assert [r["event"] for r in rows if r["event"] != "step"] == ["epoch", "eval", "epoch",
                                                                  "eval"]


def test_damage_inside_metrics_is_an_error_naming_the_line(finished):
    lines = open(f"{finished}/metrics.jsonl").read().splitlines()
    open(f"{finished}/metrics.jsonl", "w").write("{oops\n" + "\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["plot", finished])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {finished}/metrics.jsonl: line 1 is not valid JSON")


def test_written_files_follow_the_umask(finished):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("spec.json", "last.safetensors", "samples.json", "plot.png"):
        assert stat.S_IMODE(os.stat(f"{finished}/{name}").st_mode) == 0o666 & ~mask


def test_prompt_with_undecodable_bytes_is_a_clear_error(finished):
    result = CliRunner().invoke(cli, ["generate", finished, "--prompt", "the \udcff"])
    assert result.exit_code == 1
    assert "not in the vocabulary: '\\udcff' at 4" in result.stderr


def test_a_checkpoint_whose_stored_spec_is_invalid_names_the_file(finished, tmp_path):
    c = ckpt.load(f"{finished}/last.safetensors")
    c.spec["model"]["cell"]["hidden_size"] = "16"
    ckpt.save(tmp_path / "bad.safetensors", c)
    result = CliRunner().invoke(cli, ["generate", str(tmp_path / "bad.safetensors")])
    assert result.exit_code == 1
    assert ("bad.safetensors: the spec stored in the checkpoint cannot be used: invalid spec: "
            "$.model.cell.hidden_size: '16' is not of type 'integer'") in result.stderr


def test_weights_that_do_not_fit_show_torchs_detail(finished, tmp_path):
    c = ckpt.load(f"{finished}/last.safetensors")
    c.spec["model"]["cell"]["hidden_size"] = 32
    ckpt.save(tmp_path / "odd.safetensors", c)
    result = CliRunner().invoke(cli, ["generate", str(tmp_path / "odd.safetensors")])
    assert result.exit_code == 1
    assert "weights do not fit the model its spec describes (size mismatch for" in result.stderr


def test_a_safetensors_file_that_is_not_seqgens(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    result = CliRunner().invoke(cli, ["generate", str(tmp_path / "other.safetensors")])
    assert result.exit_code == 1
    assert "not a seqgen checkpoint (metadata 'format' is None" in result.stderr


def test_spec_with_a_byte_order_mark_loads(tmp_path, tiny_spec):
    (tmp_path / "s.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(tiny_spec).encode())
    assert CliRunner().invoke(cli, ["validate", str(tmp_path / "s.json")]).exit_code == 0
