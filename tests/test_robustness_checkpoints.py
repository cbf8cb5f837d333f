"""Damaged checkpoints are diagnosed, not crashed on (issue 12, part 5).

checkpoint.load validates every metadata field against its JSON Schema
(seqgen/checkpoint_schema.py) and refuses non-finite tensors, so `generate`, `eval`,
`run --resume` and `seqgen.load` each give one CheckpointError naming the file and the
field, never a traceback or "this is a bug". Each case damages a real checkpoint the way
a stranger's file, a bad disk or a hand edit might."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

import seqgen
from seqgen import checkpoint as ckpt
from seqgen.checkpoint_schema import parse_metadata
from seqgen.cli import cli
from seqgen.train import Progress
from seqgen.trainstate import PROGRESS_SCHEMA
from seqgen.vocab import VOCAB_SCHEMA

SPEC = {"dataset": {"type": "synthetic", "num_chars": 3000},
        "model": {"cell": {"type": "lstm", "hidden_size": 8}},
        "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 8},
        "train": {"epochs": 1, "max_steps": 2}, "generate": {"max_new_tokens": 5}}
RUN = "r"
FILES = {"best": f"{RUN}/best.safetensors", "last": f"{RUN}/last.safetensors"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run, trained once; each test damages its own copy."""
    out = tmp_path_factory.mktemp("pristine") / "run"
    seqgen.Session(entry_points=False).run(SPEC, out=str(out))
    return out


@pytest.fixture
def run(trained):
    shutil.copytree(trained, RUN)
    open("text.txt", "w").write("the cat sees a dog. the dog sees a cat.")
    return RUN


def read(path):
    with safe_open(path, framework="pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}


def damage(edit, files=FILES.values()):
    """Rewrite each checkpoint with edit(metadata, tensors) applied."""
    for path in files:
        meta, tensors = read(path)
        edit(meta, tensors)
        save_file(tensors, path, metadata=meta)


# -- the four ways to use a checkpoint: (exit code, what the user reads) -----------------------
def generate(run):
    result = CliRunner().invoke(cli, ["generate", run, "--prompt", "the "])
    return result.exit_code, result.stderr


def evaluate(run):
    result = CliRunner().invoke(cli, ["eval", run, "--text", "text.txt"])
    return result.exit_code, result.stderr


def resume(run):
    result = CliRunner().invoke(cli, ["run", "--resume", run, "--set", "train.epochs=3",
                                      "--set", "train.max_steps=4"])
    return result.exit_code, result.stderr


def load(run):
    try:
        seqgen.load(run)
    except seqgen.CheckpointError as e:      # nothing else: that would be a crash
        return 1, f"Error: {e}\n"
    return 0, ""


CONSUMERS = {"generate": (generate, "best"), "eval": (evaluate, "best"),
             "resume": (resume, "last"), "load": (load, "best")}


def assert_diagnosed(result, path, *expected):
    code, message = result
    assert code == 1, message
    assert message.startswith(f"Error: {path}: "), message
    for part in expected:
        assert part in message
    assert "this is a bug" not in message and "Traceback" not in message


def test_an_undamaged_checkpoint_works_everywhere(run):
    for consumer, _ in CONSUMERS.values():
        code, message = consumer(run)
        assert code == 0, message


# -- metadata: each field missing, not JSON, the wrong JSON type, the wrong inner type ------------
def put(field, value):
    return lambda meta, tensors: meta.__setitem__(field, value)


def drop(field):
    return lambda meta, tensors: meta.pop(field)


def edit_json(field, change):
    def edit(meta, tensors):
        value = json.loads(meta[field])
        change(value)
        meta[field] = json.dumps(value)
    return edit


def nan_weights(meta, tensors):
    tensors["model.head.weight"] = torch.full_like(tensors["model.head.weight"], float("nan"))


def one_infinity(meta, tensors):
    tensors["model.cell.rnn.weight_hh_l0"][0, 0] = float("inf")


METADATA_DAMAGE = {
    "spec missing": (drop("spec"), "metadata 'spec' is missing"),
    "spec not JSON": (put("spec", "{oops"), "metadata 'spec' is not valid JSON"),
    "spec a list": (put("spec", "[1, 2]"), "metadata 'spec': [1, 2] is not of type 'object'"),
    "spec without model": (edit_json("spec", lambda s: s.pop("model")),
                           "metadata 'spec': 'model' is a required property"),
    "spec model a string": (edit_json("spec", lambda s: s.__setitem__("model", "lstm")),
                            "metadata 'spec': $.model: 'lstm' is not of type 'object'"),
    "spec nested too deeply": (put("spec", "[" * 100_000 + "]" * 100_000),
                               "metadata 'spec' is nested too deeply"),
    "vocab missing": (drop("vocab"), "metadata 'vocab' is missing"),
    "vocab not JSON": (put("vocab", "tokens: a b c"), "metadata 'vocab' is not valid JSON"),
    "vocab a string": (put("vocab", '"abc"'), "metadata 'vocab': 'abc' is not of type 'object'"),
    "vocab token a number": (edit_json("vocab", lambda v: v["tokens"].__setitem__(3, 5)),
                             "metadata 'vocab': $.tokens[3]: 5 is not of type 'string'"),
    "vocab tokens a string": (edit_json("vocab", lambda v: v.__setitem__("tokens", "abc")),
                              "metadata 'vocab': $.tokens: 'abc' is not of type 'array'"),
    "vocab invalid regex": (edit_json("vocab", lambda v: v.update(level="word", pattern="([a-z")),
                            "metadata 'vocab': invalid regex in $.pattern: "),
    "vocab unknown level": (edit_json("vocab", lambda v: v.update(level="byte")),
                            "metadata 'vocab': $.level: 'byte' is not one of ['char', 'word']"),
    "vocab lowercase a string": (edit_json("vocab", lambda v: v.update(lowercase="yes")),
                                 "metadata 'vocab': $.lowercase: 'yes' is not of type 'boolean'"),
    "vocab unknown key": (edit_json("vocab", lambda v: v.update(normalise="NFC")),
                          "metadata 'vocab': Additional properties are not allowed ('normalise'"),
    "vocab without level": (edit_json("vocab", lambda v: v.pop("level")),
                            "metadata 'vocab': 'level' is a required property"),
    "vocab token twice": (edit_json("vocab", lambda v: v["tokens"].insert(4, v["tokens"][4])),
                          "metadata 'vocab': $.tokens: 'b' appears twice"),
    "vocab out of order": (edit_json("vocab", lambda v: v["tokens"].reverse()),
                           "metadata 'vocab': $.tokens: not in canonical order"),
    "task missing": (drop("task"), "metadata 'task' is missing"),
    "task unknown": (put("task", "poetry"),
                     "metadata 'task': 'poetry' is not one of ['lm', 'lines', 'aligned', 'seq2seq']"),
    "state not JSON": (put("state", "{step: 2}"), "metadata 'state' is not valid JSON"),
    "state a list": (put("state", "[]"), "metadata 'state': [] is not of type 'object'"),
    "state step a string": (edit_json("state", lambda s: s.update(step="2")),
                            "metadata 'state': $.step: '2' is not of type 'integer'"),
    "versions a list": (put("versions", '["0.1"]'),
                        "metadata 'versions': ['0.1'] is not of type 'object'"),
    "versions inner number": (edit_json("versions", lambda v: v.update(torch=2)),
                              "metadata 'versions': $.torch: 2 is not of type 'string'"),
    "components an object": (put("components", "{}"),
                             "metadata 'components': {} is not of type 'array'"),
    "format version unknown": (put("format_version", "99"),
                               "metadata 'format_version': '99' is not one of ['1'] (this "
                               "seqgen reads checkpoint format 1"),
    "weights all NaN": (nan_weights, "tensor 'model.head.weight' holds 208 NaN or infinite "
                                     "value(s) of 208"),
    "one weight infinite": (one_infinity, "tensor 'model.cell.rnn.weight_hh_l0' holds 1 NaN"),
}


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("case", METADATA_DAMAGE)
def test_damaged_metadata_is_one_error_naming_the_file_and_field(run, case, consumer):
    edit, expected = METADATA_DAMAGE[case]
    damage(edit)
    use, which = CONSUMERS[consumer]
    assert_diagnosed(use(run), FILES[which], expected)


def test_every_damaged_field_is_named_at_once(run):
    damage(lambda meta, tensors: (meta.pop("spec"), meta.update(task="poetry")))
    with pytest.raises(seqgen.CheckpointError) as info:
        seqgen.load(FILES["best"])
    assert str(info.value) == (f"{FILES['best']}: metadata 'spec' is missing; metadata "
                               f"'task': 'poetry' is not one of ['lm', 'lines', 'aligned', 'seq2seq']")


def test_a_vocabulary_of_many_bad_tokens_shows_a_few(run):
    damage(edit_json("vocab", lambda v: v.update(tokens=list(range(100_000)))))
    message = load(run)[1]
    assert "$.tokens[0]: 0 is not of type 'string'" in message
    assert "$.tokens[3]" not in message and "more problems after these" in message
    assert len(message) < 500


# -- the file itself --------------------------------------------------------------------------
def truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])


def empty(path):
    open(path, "wb").close()


def text(path):
    open(path, "w").write("this is not a checkpoint\n" * 10)


def foreign(path):
    save_file({"w": torch.zeros(2)}, path, metadata={"spec": "{}"})


FILE_DAMAGE = {"truncated": (truncate, "not a readable safetensors checkpoint"),
               "zero bytes": (empty, "not a readable safetensors checkpoint"),
               "not safetensors": (text, "not a readable safetensors checkpoint"),
               "another program's safetensors": (foreign, "not a seqgen checkpoint (metadata "
                                                          "'format' is None")}


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("case", FILE_DAMAGE)
def test_a_damaged_file_is_one_error_naming_it(run, case, consumer):
    spoil, expected = FILE_DAMAGE[case]
    for path in FILES.values():
        spoil(path)
    use, which = CONSUMERS[consumer]
    assert_diagnosed(use(run), FILES[which], expected)


# -- training state, read only when resuming -------------------------------------------------------
def edit_trainer(change):
    return edit_json("state", lambda s: change(s["trainer"]))


def drop_tensors(prefix):
    def edit(meta, tensors):
        for name in [n for n in tensors if n.startswith(prefix)]:
            del tensors[name]
    return edit


def retype(name, dtype):
    return lambda meta, tensors: tensors.__setitem__(name, tensors[name].to(dtype))


TRAINING_STATE_DAMAGE = {
    "no training state": (edit_json("state", lambda s: s.pop("trainer")),
                          "holds no training state to resume"),
    "trainer a list": (edit_json("state", lambda s: s.update(trainer=[])),
                       "metadata 'state': $.trainer: [] is not of type 'object'"),
    "progress missing": (edit_trainer(lambda t: t.pop("progress")),
                         "metadata 'state': $.trainer: 'progress' is a required property"),
    "progress step missing": (edit_trainer(lambda t: t["progress"].pop("step")),
                              "metadata 'state': $.trainer.progress: 'step' is a required "
                              "property"),
    "progress step a string": (edit_trainer(lambda t: t["progress"].update(step="2")),
                               "metadata 'state': $.trainer.progress.step: '2' is not of type "
                               "'integer'"),
    "progress step a float": (edit_trainer(lambda t: t["progress"].update(step=2.0)),
                              "metadata 'state': $.trainer.progress.step: 2.0 is not of type "
                              "'integer'"),
    "progress unknown field": (edit_trainer(lambda t: t["progress"].update(speed=1)),
                               "metadata 'state': $.trainer.progress: Additional properties"),
    "history not a list": (edit_trainer(lambda t: t["progress"].update(history={})),
                           "metadata 'state': $.trainer.progress.history: {} is not of type "
                           "'array'"),
    "optimizer missing": (edit_trainer(lambda t: t.pop("optimizer")),
                          "metadata 'state': $.trainer: 'optimizer' is a required property"),
    "param groups a dict": (edit_trainer(lambda t: t["optimizer"].update(param_groups={})),
                            "metadata 'state': $.trainer.optimizer.param_groups: {} is not "
                            "of type 'array'"),
    "param groups do not fit": (edit_trainer(lambda t: t["optimizer"]["param_groups"][0]
                                             .update(params=[0])),
                                "the training state cannot be restored: metadata 'state': "
                                "$.trainer.optimizer: loaded state dict contains a parameter "
                                "group that doesn't match"),
    "carry not a structure": (edit_trainer(lambda t: t.update(carry=[1, 2])),
                              "metadata 'state': $.trainer.carry: "),
    "one optimizer tensor missing": (drop_tensors("optim.2.exp_avg_sq"),
                                     "tensor(s) of the optimizer state are missing: "
                                     "'optim.2.exp_avg_sq' (named in metadata 'state': "
                                     "$.trainer.optimizer.tensors)"),
    "every optimizer tensor missing": (drop_tensors("optim."),
                                       "tensor(s) of the optimizer state are missing: "
                                       "'optim.0.exp_avg', 'optim.0.exp_avg_sq', "
                                       "'optim.0.step' and 15 more"),
    "carried state missing": (drop_tensors("carry.1"),
                              "tensor 'carry.1' of the carried state (metadata 'state': "
                              "$.trainer.carry) is missing"),
    "random state missing": (drop_tensors("rng.trainer"),
                             "the training state cannot be restored: tensor 'rng.trainer' is "
                             "missing"),
    "random state not bytes": (retype("rng.trainer", torch.float32),
                               "tensor 'rng.trainer' (a random generator's state) is "
                               "torch.float32, not torch.uint8"),
}


@pytest.mark.parametrize("case", TRAINING_STATE_DAMAGE)
def test_damaged_training_state_is_one_error_naming_the_field(run, case):
    edit, expected = TRAINING_STATE_DAMAGE[case]
    damage(edit, [FILES["last"]])
    before = open(f"{run}/metrics.jsonl").read()
    assert_diagnosed(resume(run), FILES["last"], expected)
    assert open(f"{run}/metrics.jsonl").read() == before


def test_an_optimizer_tensor_missing_from_an_older_checkpoint_is_still_found(run):
    damage(edit_trainer(lambda t: t["optimizer"].pop("tensors")), [FILES["last"]])
    damage(drop_tensors("optim.3.exp_avg"), [FILES["last"]])
    assert_diagnosed(resume(run), FILES["last"], "the optimizer state of parameter 3 lacks "
                                                 "exp_avg")


# -- metrics.jsonl, read when resuming -------------------------------------------------------
@pytest.mark.parametrize("line", ['{"event": "epoch", "epoch": 1}', '{"step": "2"}', "[2]",
                                  '{"step": true}'])
def test_a_metrics_line_without_a_step_is_refused_with_its_line_number(run, line):
    lines = open(f"{run}/metrics.jsonl").read().splitlines()
    lines.insert(1, line)
    text = "\n".join(lines) + "\n"
    open(f"{run}/metrics.jsonl", "w").write(text)
    code, message = resume(run)
    assert code == 1
    assert message.startswith(f"Error: {run}/metrics.jsonl: line 2 has no integer 'step'")
    assert "this is a bug" not in message
    assert open(f"{run}/metrics.jsonl").read() == text          # refused: nothing rewritten


# -- what must still load ------------------------------------------------------------------
def test_a_checkpoint_of_the_previous_version_still_loads_and_resumes(run):
    """Before this version: no 'components', no tokenisation in the vocabulary, no list of
    optimizer tensors."""
    def older(meta, tensors):
        del meta["components"]
        vocab = json.loads(meta["vocab"])
        del vocab["pattern"], vocab["lowercase"]
        meta["vocab"] = json.dumps(vocab)
        state = json.loads(meta["state"])
        state.get("trainer", {}).get("optimizer", {}).pop("tensors", None)
        meta["state"] = json.dumps(state)
    damage(older)
    for consumer, _ in CONSUMERS.values():
        code, message = consumer(run)
        assert code == 0, message


def test_the_schemas_describe_what_is_written(run):
    """Each schema beside the code that writes its field stays in step with it."""
    assert set(PROGRESS_SCHEMA["properties"]) == {f.name for f in dataclasses.fields(Progress)}
    word = seqgen.Vocab(["a", "b"], level="word", specials=["<unk>"], pattern=r"\w+|[^\w\s]",
                        lowercase=True, newlines="space")     # every key written
    assert set(VOCAB_SCHEMA["properties"]) == set(word.to_dict())
    for path in FILES.values():
        assert parse_metadata(read(path)[0])[1] == []
    c = ckpt.load(FILES["best"])
    ckpt.save("word.safetensors", ckpt.Checkpoint(c.spec, word, "lm", c.tensors))
    assert ckpt.load("word.safetensors").vocab == word


def test_a_fifo_named_as_a_checkpoint_is_refused_without_blocking(tmp_path):
    import os
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(seqgen.CheckpointError, match=r"is a FIFO \(named pipe\), not a checkpoint"):
        seqgen.load(fifo, entry_points=False)
