"""`seqgen generate`: streaming, stop strings, warnings, beam and teacher forcing."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import seqgen
from seqgen.cli import cli
from test_generate_models import random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from conftest import TINY_SPEC
    return random_checkpoint(tmp_path_factory.mktemp("c") / "model.safetensors", TINY_SPEC)


def generate(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["generate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_stream_prints_what_generate_prints(checkpoint):
    args = [checkpoint, "--prompt", "the ", "--strategy", "random", "--seed", "4",
            "--max-new-tokens", "60"]
    code, streamed, _ = generate(*args, "--stream")
    assert code == 0
    _, printed, _ = generate(*args)
    assert streamed == printed.removesuffix("\n")         # one sample, no blank line after
    assert len(streamed) > len("the ") + 30


def test_stream_takes_one_prompt_and_one_sample(checkpoint):
    code, _, err = generate(checkpoint, "--prompt", "a", "--prompt", "b", "--stream")
    assert code == 2 and "--stream prints one sample as it is generated" in err


def test_stop_strings_cut_like_the_api(checkpoint):
    args = ["--strategy", "random", "--seed", "1", "--max-new-tokens", "80"]
    code, out, _ = generate(checkpoint, "--prompt", "a", *args, "--stop", "e", "--stop", "o",
                            "--json")
    sample = json.loads(out)[0]
    api = seqgen.load(checkpoint, entry_points=False).generate(
        "a", "random", max_new_tokens=80, seed=1, stop=["e", "o"])[0]
    assert code == 0 and sample["text"] == api.text
    assert "e" not in sample["text"] and "o" not in sample["text"]
    assert len(sample["logprobs"]) == len(sample["text"])


def test_knobs_without_effect_warn_on_stderr(checkpoint):
    code, out, err = generate(checkpoint, "--prompt", "a", "--strategy", "top-k",
                              "--set", "temperature=0", "--num-samples", "2",
                              "--max-new-tokens", "5")
    assert code == 0
    assert err == ("warning: temperature 0 is greedy decoding: k has no effect\n"
                   "warning: top-k(k=10, temperature=0) is deterministic: the 2 samples of "
                   "each prompt are identical (num_samples has no effect)\n")


def test_json_has_scores_and_perplexity(checkpoint):
    code, out, _ = generate(checkpoint, "--prompt", "a", "--max-new-tokens", "5", "--json")
    sample = json.loads(out)[0]
    assert code == 0
    assert set(sample) == {"prompt", "text", "strategy", "logprobs", "score", "perplexity",
                           "distinct_1", "distinct_2"}
    assert sample["score"] == pytest.approx(sum(sample["logprobs"]), abs=1e-5)


def test_beam_prints_the_best_sequences_with_scores(checkpoint):
    code, out, _ = generate(checkpoint, "--prompt", "th", "--strategy", "beam", "--set",
                            "width=3", "--num-samples", "2", "--max-new-tokens", "8", "--json")
    samples = json.loads(out)
    assert code == 0 and len(samples) == 2
    assert samples[0]["score"] >= samples[1]["score"]
    assert samples[0]["text"] != samples[1]["text"]
    code, text, _ = generate(checkpoint, "--prompt", "th", "--strategy", "beam", "--set",
                             "width=3", "--max-new-tokens", "8")
    assert text.splitlines()[1] == (f"[score {samples[0]['score']:.4f}, "
                                    f"perplexity {samples[0]['perplexity']:.3f}]")


def test_teacher_forcing_scores_a_reference(checkpoint):
    code, out, _ = generate(checkpoint, "--prompt", "the ", "--strategy", "teacher-forcing",
                            "--set", "reference=cat sees", "--json")
    sample = json.loads(out)[0]
    assert code == 0 and sample["text"] == "cat sees" and len(sample["logprobs"]) == 8
    assert sample["perplexity"] > 1


def test_teacher_forcing_without_reference_is_a_clear_error(checkpoint):
    code, _, err = generate(checkpoint, "--strategy", "teacher-forcing")
    assert code == 1 and err.startswith("Error: teacher-forcing in generation follows a "
                                        "reference text and scores it")
