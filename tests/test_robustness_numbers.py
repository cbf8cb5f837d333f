"""Numbers the schema accepts work, or the schema refuses them; sizes that cannot fit
are refused before anything runs (issue 12, parts 1 and 2).

Mechanisms under test: integer coercion after validation (seqgen.spec.coerce_integers),
bounds in the built-in schemas, the memory estimate (seqgen/budget.py, override
SEQGEN_MEMORY_CHECK=off), and the nesting limit applied right after a spec is read.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import seqgen
from seqgen import budget
from seqgen.budget import MemoryLimitError
from seqgen.cli import cli
from seqgen.spec import MAX_NESTING, check_arguments, coerce_integers

SPEC = {"dataset": {"type": "synthetic", "num_chars": 3000},
        "model": {"cell": {"type": "lstm", "hidden_size": 8}},
        "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 8},
        "train": {"epochs": 1, "max_steps": 2},
        "generate": {"max_new_tokens": 5}}
GB = 10**9
LIMIT = 20.1 * GB           # what the tests pretend is available, for exact messages
OVERRIDE = "(to try anyway, set SEQGEN_MEMORY_CHECK=off)"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def spec_file():
    Path("spec.json").write_text(json.dumps(SPEC))
    return "spec.json"


@pytest.fixture
def memory(monkeypatch):
    """Pretend LIMIT bytes are available, with the check on whatever the environment says."""
    monkeypatch.setattr(budget, "host_available", lambda: int(LIMIT))
    monkeypatch.delenv(budget.ENV, raising=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("numbers") / "run"
    seqgen.Session(entry_points=False).run(SPEC, out=out)
    return str(out)


def run(runner, spec_file, *sets, out="out"):
    args = ["run", spec_file, "--out", out]
    for s in sets:
        args += ["--set", s]
    return runner.invoke(cli, args)


def error(result) -> str:
    return result.stderr.removeprefix("Error: ").rstrip("\n")


# -- 1. integer-valued floats are integers -------------------------------------------------------
@pytest.mark.parametrize("field", ["sampler.batch_size=8.0", "sampler.num_steps=16.0",
                                   "generate.num_samples=2.0", "model.cell.num_layers=2.0"])
def test_integer_valued_floats_run_as_integers(runner, spec_file, field):
    result = run(runner, spec_file, field)
    assert result.exit_code == 0, result.output
    saved = json.loads(Path("out/spec.json").read_text())
    keys, value = field.split("=")[0].split("."), saved
    for key in keys:
        value = value[key]
    assert value == int(float(field.split("=")[1])) and type(value) is int


def test_resolved_spec_holds_ints_in_every_kind_of_integer_field(session):
    spec = json.loads(json.dumps(SPEC))
    spec["train"].update(max_steps=2.0, eval_every=1.0)          # ["integer", "null"]
    spec["generate"]["strategies"] = [                             # components in an array
        {"type": "temperature", "temperature": 0.7, "top_k": 3.0},
        {"type": "sample", "processors": [{"type": "top-k", "k": 3.0}]},   # nested slot
        {"type": "beam", "width": 2.0}]
    spec["seed"] = 7.0
    resolved = session.resolve(spec)
    strategies = resolved["generate"]["strategies"]
    values = [resolved["seed"], resolved["train"]["max_steps"], resolved["train"]["eval_every"],
              strategies[0]["top_k"], strategies[1]["processors"][0]["k"], strategies[2]["width"]]
    assert values == [7, 2, 1, 3, 3, 2]
    assert all(type(v) is int for v in values)
    assert type(strategies[0]["temperature"]) is float      # numbers stay as they are


def test_coerce_integers_follows_the_schema():
    schema = {"type": "object", "$defs": {"n": {"type": "integer"}},
              "properties": {"a": {"$ref": "#/$defs/n"},
                             "b": {"type": "array", "prefixItems": [{"type": "number"}],
                                   "items": {"type": ["integer", "null"]}},
                             "c": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                             "d": {"type": ["integer", "number"]},
                             "e": {"type": "integer"}},
              "additionalProperties": {"type": "integer"}}
    out = coerce_integers({"a": 1.0, "b": [2.0, 3.0, None], "c": 4.0, "d": 5.0, "e": 6.5,
                           "f": 7.0}, schema)
    assert out == {"a": 1, "b": [2.0, 3, None], "c": 4, "d": 5.0, "e": 6.5, "f": 7}
    assert [type(out[k]) for k in "acdef"] == [int, int, float, float, int]
    assert [type(x) for x in out["b"][:2]] == [float, int]


def test_strategy_options_from_the_cli_are_integers(runner, checkpoint):
    result = runner.invoke(cli, ["generate", checkpoint, "--prompt", "the ", "--strategy",
                                 "top-k", "--set", "k=3.0", "--max-new-tokens", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["strategy"] == "top-k(k=3, temperature=1)"


def test_api_generation_arguments_are_coerced_or_refused(checkpoint):
    model = seqgen.load(checkpoint, entry_points=False)
    samples = model.generate("the ", "random", max_new_tokens=4.0, num_samples=2.0, seed=1.0)
    assert len(samples) == 2 and all(len(s.logprobs) <= 4 for s in samples)
    assert "".join(model.stream("the ", max_new_tokens=3.0)) == \
        model.generate("the ", max_new_tokens=3)[0].text
    with pytest.raises(seqgen.SpecError) as e:
        model.generate("the ", num_samples=2.5, max_new_tokens=float("inf"), seed=2**64)
    assert e.value.problems == [
        "max_new_tokens: inf is not a finite number",
        "num_samples: 2.5 is not of type 'integer'",
        "seed: 18446744073709551616 is greater than the maximum of 9223372036854775807"]


def test_api_strategy_options_are_coerced(session):
    assert session.strategy({"type": "top-k", "k": 3.0}).describe() == "top-k(k=3, temperature=1)"


# -- 1. ranges torch accepts ---------------------------------------------------------------------
def test_seed_has_the_range_torch_accepts(runner, spec_file, checkpoint):
    result = run(runner, spec_file, "seed=18446744073709551616")
    assert result.exit_code == 2
    assert error(result) == ("spec.json: invalid spec: $.seed: 18446744073709551616 is greater "
                             "than the maximum of 9223372036854775807")
    assert run(runner, spec_file, "seed=9223372036854775807").exit_code == 0
    result = runner.invoke(cli, ["generate", checkpoint, "--seed", str(2**64)])
    assert result.exit_code == 2
    assert error(result) == ("invalid spec: seed: 18446744073709551616 is greater than the "
                             "maximum of 9223372036854775807")


def test_zero_epochs_is_refused_before_anything_is_written(runner, spec_file):
    result = run(runner, spec_file, "train.epochs=0")
    assert result.exit_code == 2
    assert error(result) == ("spec.json: invalid spec: $.train.epochs: 0 is less than the "
                             "minimum of 1")
    assert not Path("out").exists()


def test_beam_asked_for_more_samples_than_its_width_is_refused_before_training(
        runner, spec_file, checkpoint):
    result = run(runner, spec_file, "generate.num_samples=5",
                 'generate.strategies=[{"type": "greedy"}, {"type": "beam", "width": 2}]')
    assert result.exit_code == 2
    assert error(result) == (
        "spec.json: invalid spec: $.generate.num_samples: 5 samples per prompt, but "
        "$.generate.strategies[1] (beam) finds at most width=2; raise "
        "$.generate.strategies[1].width or lower num_samples")
    assert not Path("out").exists()
    result = runner.invoke(cli, ["generate", checkpoint, "--strategy", "beam", "--set", "width=2",
                                 "--num-samples", "5"])
    assert result.exit_code == 1
    assert error(result) == ("beam search of width 2 finds 2 sequences per prompt; "
                             "num_samples=5 asks for more (raise width)")


@pytest.mark.parametrize("strategy, option, message", [
    ("beam", "length_penalty=-1e308",
     "$.strategy.length_penalty: -1e+308 is less than the minimum of -10"),
    ("beam", "length_penalty=1e308",
     "$.strategy.length_penalty: 1e+308 is greater than the maximum of 10"),
    ("temperature", "temperature=1e-300",
     "$.strategy.temperature: 1e-300 is not allowed: Divide logits by this before sampling; "
     "0 means greedy. Otherwise at least 0.0001 (below that, logits overflow float32)."),
    ("top-p", "p=1e-300", "$.strategy.p: 1e-300 is less than the minimum of 1e-06"),
    ("random", "repetition_penalty=1e-300",
     "$.strategy.repetition_penalty: 1e-300 is less than the minimum of 0.0001"),
    ("random", "repetition_penalty=1e300",
     "$.strategy.repetition_penalty: 1e+300 is greater than the maximum of 10000"),
    ("sample", 'processors=[{"type": "temperature", "temperature": 1e-9}]',
     "$.strategy.processors[0].temperature: 1e-09 is not allowed: Divide logits by this: < 1 "
     "sharpens, > 1 flattens, 0 keeps only the most likely token; otherwise at least 0.0001 "
     "(below that, logits overflow float32)."),
    ("sample", 'processors=[{"type": "typical-p", "p": 1e-300}]',
     "$.strategy.processors[0].p: 1e-300 is less than the minimum of 1e-06"),
])
def test_decoding_numbers_that_overflow_are_refused(runner, checkpoint, strategy, option, message):
    result = runner.invoke(cli, ["generate", checkpoint, "--prompt", "the ", "--strategy",
                                 strategy, "--set", option, "--max-new-tokens", "3"])
    assert result.exit_code == 2, result.output
    assert error(result) == f"invalid spec: {message}"


@pytest.mark.filterwarnings("ignore::seqgen.GenerationWarning")   # penalties without a stop
@pytest.mark.parametrize("strategy", [
    {"type": "beam", "width": 2, "length_penalty": -10},
    {"type": "beam", "width": 2, "length_penalty": 10},
    {"type": "temperature", "temperature": 1e-4},
    {"type": "temperature", "temperature": 1e300},
    {"type": "top-p", "p": 1e-6},
    {"type": "random", "repetition_penalty": 1e-4},
    {"type": "random", "repetition_penalty": 1e4}])
def test_decoding_numbers_at_their_bounds_generate(checkpoint, strategy):
    model = seqgen.load(checkpoint, entry_points=False)
    for stop in ((), ("e",)):        # a stop string lets beams end early (length penalty)
        for sample in model.generate(["the ", "a"], strategy, max_new_tokens=6, stop=stop):
            assert all(lp <= 0 for lp in sample.logprobs)


@pytest.mark.parametrize("field, message", [
    ("train.optimizer.lr=1e39", "$.train.optimizer.lr: 1e+39 is greater than the maximum of 1000"),
    ('train.optimizer={"type": "sgd", "momentum": 1.0}',
     "$.train.optimizer.momentum: 1.0 is greater than or equal to the maximum of 1"),
    ("train.optimizer.weight_decay=1e39",
     "$.train.optimizer.weight_decay: 1e+39 is greater than the maximum of 1000"),
])
def test_training_numbers_that_cannot_work_are_refused(runner, spec_file, field, message):
    result = run(runner, spec_file, field)
    assert result.exit_code == 2, result.output
    assert error(result) == f"spec.json: invalid spec: {message}"


# -- 2. sizes that cannot fit ------------------------------------------------------------------
def test_a_corpus_too_large_is_refused_before_it_is_made(runner, spec_file, memory):
    result = run(runner, spec_file, "dataset.num_chars=1000000000000")
    assert result.exit_code == 2
    assert error(result) == (
        "too large for the memory available: $.dataset.num_chars: 1000000000000 characters "
        f"would need about 8.0 TB of memory, more than the 20.1 GB available {OVERRIDE}")
    assert not Path("out").exists()


def test_generate_num_samples_too_large_is_refused_before_training(runner, spec_file, memory):
    result = run(runner, spec_file, "generate.num_samples=100000000")
    assert result.exit_code == 2
    assert error(result).startswith(
        "too large for the memory available: $.generate.num_samples: generating 1 prompt x "
        "100000000 rows x 5 new tokens (vocabulary 64) would need about ")
    assert error(result).endswith(f"more than the 20.1 GB available {OVERRIDE}")
    assert not Path("out").exists()


@pytest.mark.parametrize("field, path", [
    ("model.cell.hidden_size=1000000", "$.model.cell.hidden_size: a model of "),
    ("sampler.batch_size=100000000", "$.sampler.batch_size: a training batch of 100000000 x 8"),
    ('generate.strategies=[{"type": "beam", "width": 100000000}]',
     "$.generate.strategies[0].width: generating 1 prompt x 200000000 rows"),
])
def test_each_part_of_a_run_is_estimated(runner, spec_file, memory, field, path):
    result = run(runner, spec_file, field)
    assert result.exit_code == 2
    assert error(result).startswith(f"too large for the memory available: {path}")
    assert not Path("out").exists()


def test_a_corpus_file_is_estimated_from_its_size(session, memory, monkeypatch):
    Path("corpus.txt").write_text("the cat sees a dog. " * 50_000)
    spec = {**SPEC, "dataset": {"type": "text", "path": "corpus.txt"}}
    budget.check_run(session.resolve(spec))       # 1 MB: fine
    monkeypatch.setattr(budget, "host_available", lambda: 5 * 10**6)
    with pytest.raises(MemoryLimitError) as e:
        budget.check_run(session.resolve(spec))
    assert str(e.value).startswith("too large for the memory available: $.dataset.path: "
                                   "1 file of 1.0 MB would need about 11.0 MB of memory")


def test_generation_too_large_is_refused_from_the_cli(runner, checkpoint, memory):
    result = runner.invoke(cli, ["generate", checkpoint, "--num-samples", "100000000"])
    assert result.exit_code == 2
    assert error(result).startswith(
        "too large for the memory available: num_samples=100000000: generating 1 prompt x "
        "100000000 rows x 100 new tokens (vocabulary ")
    assert error(result).endswith(f"more than the 20.1 GB available {OVERRIDE}")


def test_generation_too_large_is_refused_from_the_api(checkpoint, memory):
    model = seqgen.load(checkpoint, entry_points=False)
    with pytest.raises(MemoryLimitError, match=r"^too large for the memory available: "
                                               r"max_new_tokens=1000000000000: "):
        model.stream("the ", max_new_tokens=10**12)
    with pytest.raises(MemoryLimitError, match="num_samples=100000000: "):
        model.generate(["the ", "a"], "random", num_samples=10**8)
    with pytest.raises(MemoryLimitError, match="width=100000000: "):
        model.generate("the ", {"type": "beam", "width": 10**8})


def test_api_run_and_resume_are_checked(session, memory, tmp_path):
    with pytest.raises(MemoryLimitError) as e:
        session.run({**SPEC, "dataset": {"type": "synthetic", "num_chars": 10**13}}, out="big")
    assert isinstance(e.value, seqgen.SpecError) and e.value.exit_code == 2
    assert e.value.problems[0].startswith("$.dataset.num_chars: 10000000000000 characters")
    assert not Path("big").exists()
    spec = json.loads(json.dumps(SPEC))
    spec["train"].update(epochs=2, max_steps=None)
    session.run(spec, out="small", overrides=["train.epochs=1"])
    with pytest.raises(MemoryLimitError, match=r"\$.generate.num_samples: "):
        session.resume("small", ["train.epochs=2", "generate.num_samples=100000000"])


def test_the_override_turns_the_check_off(runner, spec_file, monkeypatch):
    monkeypatch.setattr(budget, "host_available", lambda: 1000)     # nothing fits in 1 KB
    result = run(runner, spec_file)
    assert result.exit_code == 2 and "more than the 1.0 KB available" in result.stderr
    monkeypatch.setenv("SEQGEN_MEMORY_CHECK", "off")
    result = run(runner, spec_file)
    assert result.exit_code == 0, result.output


def test_unknown_available_memory_refuses_nothing(session, monkeypatch):
    monkeypatch.setattr(budget, "host_available", lambda: None)
    budget.check_run(session.resolve({**SPEC, "dataset": {"type": "synthetic",
                                                          "num_chars": 10**15}}))


def test_available_memory_is_read():
    available = budget.host_available()
    assert available is None or available > 10**6


def every_example_and_preset(session) -> list[tuple[str, dict]]:
    Path("corpus.txt").write_text("First Citizen:\nBefore we proceed any further.\n" * 24_000)
    stand_in = ["dataset.path=corpus.txt"]   # ~1.1 MB, like Tiny Shakespeare
    examples = sorted((Path(__file__).parent.parent / "examples").glob("*.json"))
    specs = []
    for source in [str(p) for p in examples] + [p["name"] for p in session.presets()]:
        try:
            spec = session.resolve(source)
        except seqgen.SpecError:             # a preset that needs a corpus
            spec = session.resolve(source, stand_in)
        if "path" in spec["dataset"] and not Path(spec["dataset"]["path"]).is_file():
            spec = session.resolve(source, stand_in)
        specs.append((source, spec))
    return specs


def test_every_example_and_preset_fits_a_small_machine(session, monkeypatch):
    monkeypatch.setattr(budget, "host_available", lambda: 2 * GB)
    specs = every_example_and_preset(session)
    assert len(specs) >= 10
    for source, spec in specs:
        assert sum(n.bytes for n in budget.run_needs(spec)) < GB, source
        budget.check_run(spec)


# -- 2. nesting ----------------------------------------------------------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth, where", [(5000, "$"), (MAX_NESTING, "$.vars")])
def test_deeply_nested_json_is_a_spec_error(runner, depth, where):
    Path("deep.json").write_text('{"dataset": {"type": "synthetic"}, "vars": {"x": '
                                 + nested(depth) + "}}")
    result = runner.invoke(cli, ["validate", "deep.json"])
    assert result.exit_code == 2
    assert error(result) == (f"deep.json: invalid spec: {where}: objects and arrays nested more "
                             f"than 100 levels deep (no spec needs more than a few)")


def test_nesting_up_to_the_limit_is_fine(runner):
    Path("deep.json").write_text('{"dataset": {"type": "synthetic"}, "vars": {"x": '
                                 + nested(MAX_NESTING - 2) + "}}")
    assert runner.invoke(cli, ["validate", "deep.json"]).exit_code == 0


def test_deeply_nested_set_value_is_a_spec_error(runner, spec_file):
    result = runner.invoke(cli, ["validate", spec_file, "--set", "vars.x=" + nested(5000)])
    assert result.exit_code == 2
    assert error(result) == ("spec.json: invalid spec: --set vars.x: objects and arrays nested "
                             "more than 100 levels deep (no spec needs more than a few)")


def test_deeply_nested_python_and_environment_values_are_spec_errors(session, monkeypatch):
    deep: object = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(seqgen.SpecError, match=r"\$.vars: objects and arrays nested more"):
        session.resolve({**SPEC, "vars": {"x": deep}})
    monkeypatch.setenv("DEEP", nested(5000))
    with pytest.raises(seqgen.SpecError, match=r"^invalid spec: \$: with its variables "
                                               r"interpolated, the spec nests"):
        session.resolve({**SPEC, "name": "${env:DEEP}"})
    chain = {f"v{i}": [[[[[[[[f"${{vars.v{i + 1}}}"]]]]]]]] for i in range(300)}
    with pytest.raises(seqgen.SpecError, match="nest"):
        session.resolve({**SPEC, "vars": {**chain, "v300": 1}, "name": "${vars.v0}"})


def test_check_arguments_names_the_argument():
    assert check_arguments(num_samples=3.0, seed=0) == {"num_samples": 3, "seed": 0}
    with pytest.raises(seqgen.SpecError, match=r"prompts\[0\]: 1 is not of type 'string'"):
        check_arguments(prompts=[1])
