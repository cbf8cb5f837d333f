"""Property-based fuzzing of specs (issue 12, part 7).

Specs are generated from the composed JSON Schema (`Session.schema()`, every registered
component's options included): a walker turns each schema node into a Hypothesis
strategy, with sizes clamped so that valid specs train in about a second. Then up
to a few perturbations are applied: keys dropped or renamed, wrong types, integer-valued
floats, huge and negative numbers, NaN/Infinity, empty/long/unicode strings, deep
nesting, unknown component names, extra keys, `extends`, `vars` and `${...}`
references, `--set` overrides, and damaged JSON text.

Property 1: `seqgen validate -` exits 0 or 2, never 1, and never says "this is a bug" or
shows a traceback.
Property 2: a spec that validates runs with `--set train.max_steps=1` and ends with exit
0, 1 or 2 and a message, never "this is a bug", never a traceback, never a hang. Each
run is a forked child of this process (imports already warm, about 1 s a run), under a
timeout and a memory limit, so that a giant spec the memory budget fails to refuse ends
the child, not the machine.
"""
from __future__ import annotations

import copy
import json
import multiprocessing
import os
import resource
import time
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, assume, given, note, settings, strategies as st
from hypothesis.errors import InvalidArgument

import seqgen
from seqgen.cli import cli

SESSION = seqgen.Session(entry_points=False)
SCHEMA = SESSION.schema()
PRESETS = sorted(p["name"] for p in SESSION.presets())
SELF_CONTAINED = sorted(p["name"] for p in SESSION.presets() if not p["needs"])

BUG_MARKERS = ("this is a bug", "Traceback")
RUN_TIMEOUT_S = 30                      # a valid tiny run takes about 1 s
RUN_MEMORY_LIMIT = 6 * 2**30            # address space a run may add (bytes)
VALIDATE_TIMEOUT_S, VALIDATE_MEMORY_LIMIT = 10, 2**30
SHRINK_BUDGET_S = 45                    # time spent on one property after it first fails

# -- sizes in the valid branch ---------------------------------------------------------
# (low, high) per option name: small enough that a run with max_steps=1 is quick.
INT_CLAMP = {
    "hidden_size": (1, 16), "num_layers": (1, 2), "num_chars": (100, 3000),
    "batch_size": (1, 8), "num_steps": (1, 16), "epochs": (0, 1), "max_new_tokens": (0, 5),
    "size": (1, 16), "num_samples": (1, 2), "width": (1, 3), "pool_batches": (1, 3),
    "max_steps": (1, 2), "seed": (0, 1000), "max_chars": (1, 3000), "sample_tokens": (0, 5),
    "k": (1, 5), "top_k": (1, 5), "log_every": (1, 5), "sample_every": (1, 2),
    "eval_every": (1, 2), "patience": (1, 2), "checkpoint_every": (1, 2),
    "warmup_steps": (0, 3), "step_size": (1, 3), "start_epoch": (0, 2), "min_freq": (1, 2),
}
FLOAT_CLAMP = {"lr": (1e-4, 0.1), "max_seconds": (0.5, 60.0), "length_penalty": (-2.0, 2.0)}

PROMPT_CHARS = "the cat a."           # what the synthetic grammar and corpus.txt hold
CORPUS = ("the cat sees a dog. a red bird sings. the old cat sleeps. " * 40)
LINES = "\n".join(["anna", "bob", "carla", "dmitri", "eve", "fatima", "gus"] * 10) + "\n"
PAIRS = [("hello", "ohlol"), ("abc", "cba"), ("kitten", "nettik")]
GOOD_PATHS = {"text": ["corpus.txt", "corpus[1].txt", "c*s.txt"], "lines": ["lines.txt"],
              "pairs": ["pairs.tsv", "pairs.jsonl"]}
BAD_PATHS = ["*.txt", "missing.txt", "latin1.txt", "empty.txt", "fifo", "fifo.tsv", ".",
             "/dev/zero", "pairs.tsv", "lines.txt"]
LOGGER_PATHS = ["log.csv", "events.jsonl", "sub/log.csv"]


class Raw:
    """JSON text inserted verbatim when a spec is serialised (deep nesting, bad tokens)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''} " \
               f"[{len(self.text)} chars])"


def dumps(node) -> str:
    """Serialise a spec tree: Raw verbatim; NaN and infinities as Python's JSON writes them."""
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dumps(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(dumps(v) for v in node) + "]"
    return json.dumps(node)


# -- from the schema ---------------------------------------------------------------------
def _component_branches(schema: dict) -> dict[str, dict]:
    """name -> options schema, for a component slot expanded with if/then."""
    out = {}
    for branch in schema.get("allOf", []):
        const = branch.get("if", {}).get("properties", {}).get("type", {}).get("const")
        if const is not None:
            out[const] = branch.get("then", {})
    return out


@st.composite
def from_schema(draw, schema: dict, name: str = "", where: tuple = ()):
    """A value valid against `schema` (mostly: cross-field rules are not known here),
    small, with field-specific choices for names, paths and prompts."""
    if "x-seqgen-kind" in schema:
        names = schema.get("properties", {}).get("type", {}).get("enum", [])
        kind = draw(st.sampled_from(names))
        options = _component_branches(schema).get(kind, {"properties": {}})
        value = draw(_object(options, where + (kind,)))
        value["type"] = kind
        return value
    if "const" in schema:
        return schema["const"]
    if name == "device":       # mostly here; cuda and mps are refused where absent
        return draw(st.sampled_from(["cpu"] * 4 + ["auto"] * 4 + schema.get("enum", [])))
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    types = schema.get("type")
    if isinstance(types, list):
        types = draw(st.sampled_from(types))
    if types is None:
        if "properties" in schema:
            types = "object"
        else:       # no constraint at all ("$comment"): any small JSON value
            return draw(st.one_of(st.text(max_size=8), st.integers(-3, 3), st.none()))
    if types == "null":
        return None
    if types == "boolean":
        return draw(st.booleans())
    if types == "integer":
        return draw(_integer(schema, name))
    if types == "number":
        return draw(_number(schema, name))
    if types == "string":
        return draw(_string(schema, name, where))
    if types == "array":
        return draw(_array(schema, name, where))
    return draw(_object(schema, where + (name,)))


def _integer(schema, name):
    if name in INT_CLAMP:
        lo, hi = INT_CLAMP[name]
    else:
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        hi = lo + 3
    lo = max(lo, schema.get("minimum", lo))
    hi = min(hi, schema.get("maximum", hi))
    return st.integers(lo, max(lo, hi))


def _number(schema, name):
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    lo = -2.0 if lo is None else float(lo)
    hi = lo + 2.0 if hi is None else float(hi)
    if name in FLOAT_CLAMP:
        lo, hi = max(lo, FLOAT_CLAMP[name][0]), min(hi, FLOAT_CLAMP[name][1])
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                     exclude_min="exclusiveMinimum" in schema and lo == schema["exclusiveMinimum"],
                     exclude_max="exclusiveMaximum" in schema and hi == schema["exclusiveMaximum"])


def _string(schema, name, where):
    if name == "path" and "loggers" in where:
        return st.sampled_from(LOGGER_PATHS)
    if name in ("path", "paths"):      # mostly a file that fits the dataset
        good = GOOD_PATHS[next((w for w in reversed(where) if w in GOOD_PATHS), "text")]
        return st.sampled_from(good * 3 + BAD_PATHS)
    if name == "pattern":
        return st.sampled_from(["[a-z]+", r"\w+", "[a-z"])
    if name == "name":
        return st.sampled_from(["fuzz", "fuzz-run"])
    if name == "out":
        return st.just("out-from-spec")
    if name == "extends":
        return st.sampled_from(SELF_CONTAINED + ["base.json"])
    if name in ("prompts", "stop", "reference"):
        return st.text(PROMPT_CHARS, min_size=schema.get("minLength", 0), max_size=6)
    return st.text(min_size=schema.get("minLength", 0), max_size=8)


@st.composite
def _array(draw, schema, name, where):
    if name == "pairs":
        words = draw(st.lists(st.sampled_from(PAIRS), min_size=1, max_size=3))
        return [list(p) for p in words]
    lo = schema.get("minItems", 0)
    hi = min(schema.get("maxItems", lo + 2), lo + 2)
    if "prefixItems" in schema:
        return [draw(from_schema(s, name, where)) for s in schema["prefixItems"]][:hi]
    items = schema.get("items", {})
    if schema.get("uniqueItems") and "enum" in items:
        return draw(st.lists(st.sampled_from(items["enum"]), min_size=lo, max_size=hi,
                             unique=True))
    return draw(st.lists(from_schema(items, name, where + (name,)), min_size=lo, max_size=hi))


@st.composite
def _object(draw, schema, where):
    if where[-1:] == ("vars",):
        return draw(st.dictionaries(st.sampled_from(["x", "h"]), st.integers(1, 8), max_size=2))
    if where[-1:] == ("grid",):
        return {"model.cell.hidden_size": draw(st.lists(st.integers(1, 16), min_size=1,
                                                        max_size=2))}
    if where[-1:] == ("set",):
        return {"train.epochs": draw(st.integers(0, 1))}
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    out = {}
    for key, sub in props.items():
        if key == "type" and "const" in sub:
            continue                         # a component's own type: set by the caller
        if key in required or draw(st.booleans()):
            out[key] = draw(from_schema(sub, key, where))
    return out


@st.composite
def valid_specs(draw):
    """A spec drawn from the composed schema, nudged so that most of them validate:
    the sampler fits the dataset, a path is given where one is needed, no bidirectional
    cell on a language-modelling task."""
    spec = draw(from_schema(SCHEMA))
    if draw(st.booleans()):
        spec.pop("sweep", None)
    if draw(st.booleans()):
        spec.pop("extends", None)
    dataset = spec["dataset"]
    given = [k for k in ("paths", "pairs", "text", "path") if k in dataset]
    for key in given[1:]:                    # exactly one of them
        del dataset[key]
    if "pairs" in dataset:
        dataset.pop("format", None)
    if dataset["type"] in ("text", "lines") and not given:
        dataset["path"] = "lines.txt" if dataset["type"] == "lines" else "corpus.txt"
    if dataset["type"] == "pairs" and not given:
        dataset["pairs"] = [list(PAIRS[0])]
    sequences = dataset["type"] in ("lines", "pairs")
    sampler = spec.get("sampler")
    if sampler is not None and (sampler["type"] == "bucket") != sequences:
        spec["sampler"] = {"type": "bucket"} if sequences else {"type": "sequential"}
    elif sampler is None and sequences:
        spec["sampler"] = {"type": "bucket", "batch_size": 4}
    cell = spec.get("model", {}).get("cell")
    if cell is not None and dataset["type"] != "pairs":
        cell.pop("bidirectional", None)
    return spec


# -- perturbations -----------------------------------------------------------------------
def _paths(node, prefix=()):
    """Every path into a spec tree, root first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _get(node, path):
    for key in path:
        node = node[key]
    return node


def _set(root, path, value):
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


NAN, INF = float("nan"), float("inf")
WRONG_TYPES = ["8", 8, 8.0, True, False, None, [], {}, [1], {"type": "x"}, "", "lstm"]
HUGE = [2**31, 2**63, 2**64, 10**12, 10**400, -1, -(2**63), 0, 1e308, -1e308, 1e-320, -0.0,
        1.5, Raw("1e400"), Raw("-1E-400"), Raw("0.1e1"), Raw("-0")]
NONFINITE = [NAN, INF, -INF]
STRINGS = ["", " ", "x" * 10_000, "日本語🙂", "\x00", "a\x00b", "\ud800", "\udcff",
           "../../escape", "/", "a/../../b", "${", "$${x}", "a\nb", "\u202e", "*", "[", "CON",
           "a" * 300, "x/" * 2100]
FREE_TEXT = {"prompts", "stop", "name", "reference", "out", "path", "paths", "pattern",
             "extends", "$comment"}
UNKNOWN_TYPES = ["nope", "LSTM", "lstm ", "", " ", "synthetic", 3, None, ["lstm"]]
EXTRA_KEYS = ["extra", "typ", "hidden", "$comment", "$schema", "extends", "vars", "${vars.x}",
              "", "type"]
EXTENDS = PRESETS + ["nope", "", "base.json", "loop.json", "missing.json", ".", "/",
                     "../x.json", "corpus.txt", "lines.txt", "latin1.txt", "/dev/null", "\ud800",
                     "\ud800.json", "\udcff.json", "a\x00b.json", "a" * 300, "x/" * 2100 + "a.json",
                     "./fifo", "/dev/zero", "/proc/self/mem", 3, None, ["quickstart"], {}]
# What a spec may name that blocks or never ends when read: such cases run in a child.
HANG_RISK = ("fifo", "/dev/", "/proc/")
VARS = [{"x": 8}, {"x": "8"}, {"x": 8.0}, {"x": NAN}, {"x": [1]}, {"x": "${vars.x}"},
        {"a": "${vars.b}", "b": "${vars.a}"}, {"x": "${env:SEQGEN_FUZZ_UNSET}"}, 3, [], None,
        {"x": {"y": "${vars.x}"}}]
REFERENCES = ["${vars.x}", "${vars.nope}", "${env:SEQGEN_FUZZ_UNSET}",
              "${env:SEQGEN_FUZZ_UNSET:-4}", "${env:SEQGEN_FUZZ_UNSET:-NaN}", "${env:HOME}",
              "n${vars.x}", "$${vars.x}", "${", "${}", "${vars.x.y}", "${env:}", "${vars.a}",
              "${vars}", "${vars.x}${vars.x}"]


def deep(n: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * n + "]" * n)
    return Raw('{"a": ' * n + "1" + "}" * n)


@st.composite
def perturb(draw, spec):
    """One perturbation of a spec tree (a copy)."""
    spec = copy.deepcopy(spec)
    paths = list(_paths(spec))
    op = draw(st.sampled_from([
        "drop", "rename", "retype", "int_float", "huge", "nonfinite", "string", "deep",
        "unknown_type", "extra_key", "extends", "vars"]))
    note(f"perturbation: {op}")
    inner = [p for p in paths if p]
    if op == "drop" and inner:
        path = draw(st.sampled_from(inner))
        parent = _get(spec, path[:-1])
        del parent[path[-1]]
    elif op == "rename":
        keyed = [p for p in inner if isinstance(p[-1], str)]
        if keyed:
            path = draw(st.sampled_from(keyed))
            key = path[-1]
            new = draw(st.sampled_from([key.upper(), key + "s", key.replace("_", "-"), " " + key,
                                        key + "\x00", ""]))
            parent = _get(spec, path[:-1])
            parent[new] = parent.pop(key)
    elif op in ("retype", "huge", "nonfinite", "string", "deep"):
        if op in ("huge", "nonfinite"):
            numeric = [p for p in inner if isinstance(_get(spec, p), (int, float))
                       and not isinstance(_get(spec, p), bool)]
            candidates = numeric or inner or paths
        elif op == "string":     # free text (not a type or an enum) half of the time
            strings = [p for p in inner if isinstance(_get(spec, p), str)]
            free = [p for p in strings if FREE_TEXT & {str(k) for k in p}]
            candidates = (free if free and draw(st.booleans()) else strings) or inner or paths
        else:
            candidates = inner or paths
        path = draw(st.sampled_from(candidates))
        value = {"retype": lambda: draw(st.sampled_from(WRONG_TYPES)),
                 "huge": lambda: draw(st.sampled_from(HUGE)),
                 "nonfinite": lambda: draw(st.sampled_from(NONFINITE)),
                 "string": lambda: draw(st.sampled_from(STRINGS)),
                 "deep": lambda: deep(draw(st.sampled_from([3, 500, 5000, 100_000])),
                                      draw(st.sampled_from(["list", "dict"])))}[op]()
        spec = _set(spec, path, value)
    elif op == "int_float":
        ints = [p for p in inner if type(_get(spec, p)) is int and abs(_get(spec, p)) < 2**1000]
        if ints:
            path = draw(st.sampled_from(ints))
            spec = _set(spec, path, float(_get(spec, path)))
        else:
            spec.setdefault("train", {})
            if isinstance(spec["train"], dict):
                spec["train"]["epochs"] = 1.0
    elif op == "unknown_type":
        typed = [p for p in paths if isinstance(_get(spec, p), dict) and "type" in _get(spec, p)]
        if typed:
            path = draw(st.sampled_from(typed))
            _get(spec, path)["type"] = draw(st.sampled_from(UNKNOWN_TYPES))
    elif op == "extra_key":
        objects = [p for p in paths if isinstance(_get(spec, p), dict)]
        path = draw(st.sampled_from(objects))
        _get(spec, path)[draw(st.sampled_from(EXTRA_KEYS))] = draw(st.sampled_from(
            [1, "x", None, {}, "${vars.x}"]))
    elif op == "extends":
        spec["extends"] = draw(st.sampled_from(EXTENDS))
    elif op == "vars":
        spec["vars"] = draw(st.sampled_from(VARS))
        # the paths were found before "vars" was replaced: none under it still exists
        candidates = [p for p in inner or paths if p[:1] != ("vars",)]
        if candidates:
            spec = _set(spec, draw(st.sampled_from(candidates)), draw(st.sampled_from(REFERENCES)))
    return spec


@st.composite
def specs(draw, max_perturbations: int):
    spec = draw(valid_specs())
    for _ in range(draw(st.integers(0, max_perturbations))):
        spec = draw(perturb(spec))
    return spec


OVERRIDE_KEYS = ["train.epochs", "model.cell.hidden_size", "model.cell.type", "sampler",
                 "sampler.batch_size", "dataset", "dataset.num_chars", "extends", "vars.x",
                 "generate.num_samples", "generate.max_new_tokens", "seed",
                 "train.optimizer.lr", "generate.strategies.0.temperature", "generate.prompts.7",
                 "nope.deep.key", "", " ", ".", "a..b", "train.epochs.x", "$comment", "name",
                 "out"]
OVERRIDE_VALUES = ["1", "2.0", "-1", "0", "NaN", "Infinity", "-Infinity", "1e999",
                   "18446744073709551616", '"x"', "x", "", "null", "true", "[]", "{}",
                   '{"type": "nope"}', '{"type": "gru"}', "${vars.x}", "${env:SEQGEN_FUZZ_UNSET}",
                   "{", "[" * 100_000 + "]" * 100_000, "日本語", "../../escape",
                   "\udcff", "a" * 300]   # "\udcff": how Python decodes a non-UTF-8 byte in argv


@st.composite
def overrides(draw, spec, max_size: int):
    """`--set KEY=VALUE` texts: keys from the spec's own leaves and from a fixed list."""
    leaves = [".".join(str(k) for k in p) for p in _paths(spec) if p
              and all("." not in str(k) for k in p)]
    key = st.sampled_from(OVERRIDE_KEYS + leaves[:40])
    one = st.one_of(
        st.builds(lambda k, v: f"{k}={v}", key, st.sampled_from(OVERRIDE_VALUES)),
        st.sampled_from(["=", "noequals", "train.epochs", "=3"]))
    return draw(st.lists(one, max_size=max_size))


@st.composite
def spec_texts(draw, spec):
    """The spec as JSON text, mostly intact; sometimes damaged as a whole."""
    text = dumps(spec)
    how = draw(st.sampled_from(["as is"] * 6 + ["truncated", "bom", "bad utf-8", "not an object",
                                                 "empty", "trailing", "duplicate key"]))
    note(f"text: {how}")
    if how == "truncated":
        return text[:draw(st.integers(0, max(0, len(text) - 1)))]
    if how == "bom":
        return "\ufeff" + text
    if how == "bad utf-8":
        return text.encode("utf-8", "surrogatepass") + b"\xff\xfe"
    if how == "not an object":
        return draw(st.sampled_from(["[]", "null", "3", '"x"', "NaN", "[" + text + "]"]))
    if how == "empty":
        return draw(st.sampled_from(["", " ", "\n"]))
    if how == "trailing":
        return text + draw(st.sampled_from(["}", " x", "\x00", "\n{}"]))
    if how == "duplicate key" and text.startswith("{") and len(text) > 2:
        return '{"dataset": 5, ' + text[1:]
    return text


# -- running the CLI -----------------------------------------------------------------------
def _stdin(text):
    """CliRunner input: str as UTF-8, keeping lone surrogates (a real stdin can't hold
    them; the bytes surrogatepass gives are what a broken producer would write)."""
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")


def invoke(args, text):
    result = CliRunner().invoke(cli, args, input=_stdin(text))
    crashed = (None if result.exception is None or isinstance(result.exception, SystemExit)
               else "".join(traceback.format_exception(result.exception)))
    return result.exit_code, result.stdout, result.stderr, crashed


def _child(conn, args, text, memory):
    try:
        used = _address_space()
        limit = used + memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        conn.send(invoke(args, text))
    except BaseException:    # noqa: BLE001 - report whatever it is to the parent
        conn.send((None, "", "", traceback.format_exc()))
    finally:
        conn.close()
        os._exit(0)          # no pytest or atexit machinery in the child


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 2 * 2**30


def invoke_isolated(args, text, timeout=RUN_TIMEOUT_S, memory=RUN_MEMORY_LIMIT):
    """invoke() in a forked child (imports are warm: about 1 s a tiny run), killed after
    `timeout` s, its address space limited to `memory` bytes more than this process's.
    Returns invoke()'s tuple, or exit code "timeout" / "died"."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, args, text, memory), daemon=True)
    child.start()
    send.close()
    try:
        if receive.poll(timeout):
            try:
                return receive.recv()
            except EOFError:
                child.join(5)
                return "died", "", "", f"child exited with {child.exitcode} and no result"
        return "timeout", "", "", f"no result after {timeout} s"
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


def _note(text):
    try:
        note(text)
    except InvalidArgument:   # outside a Hypothesis test (the fixed cases below)
        pass


def validate(args, text):
    """`seqgen validate` in this process, or in a child when the spec names something
    that may block when read (a FIFO, a device)."""
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if any(marker in raw or marker in " ".join(args) for marker in HANG_RISK):
        return invoke_isolated(args, text, VALIDATE_TIMEOUT_S, VALIDATE_MEMORY_LIMIT)
    return invoke(args, text)


def assert_clean(outcome, allowed):
    code, out, err, crashed = outcome
    text = (out or "") + (err or "")
    _note(f"exit {code}\nstdout: {out[-2000:]!r}\nstderr: {err[-2000:]!r}")
    assert code not in ("timeout", "died"), f"{code}: {crashed} (a hang, or killed)"
    assert crashed is None, f"uncaught exception:\n{crashed}"
    for marker in BUG_MARKERS:
        assert marker not in text, f"output says {marker!r} (exit {code}):\n{text[-3000:]}"
    assert code in allowed, f"exit code {code!r}, expected one of {allowed}:\n{text[-3000:]}"
    if code != 0:
        assert (err or "").strip(), f"exit {code} with nothing on stderr"


class Budget:
    """After a property first fails, Hypothesis shrinks the failure; this caps the time
    spent on that, so that a class of hangs cannot shrink for ages: once `seconds` have
    passed, examples not already seen to fail are rejected (those are let through, so
    that Hypothesis can replay the one it reports)."""

    def __init__(self, seconds):
        self.seconds, self.failed_at, self.failing = seconds, None, set()

    def check(self, case):
        if (self.failed_at is not None and time.monotonic() - self.failed_at > self.seconds
                and hash(repr(case)) not in self.failing):
            assume(False)

    def failed(self, case):
        self.failing.add(hash(repr(case)))
        if self.failed_at is None:
            self.failed_at = time.monotonic()


BUDGETS: dict[tuple, Budget] = {}     # one per property and test call


def budget(property_name: str, workdir: Path) -> Budget:
    return BUDGETS.setdefault((property_name, workdir), Budget(SHRINK_BUDGET_S))


def make_files(where: Path) -> None:
    """Files the generated specs may name."""
    (where / "corpus.txt").write_text(CORPUS)
    (where / "lines.txt").write_text(LINES)
    (where / "pairs.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS))
    (where / "pairs.jsonl").write_text("".join(json.dumps({"input": a, "target": b}) + "\n"
                                               for a, b in PAIRS))
    (where / "base.json").write_text(json.dumps({
        "extends": "quickstart", "dataset": {"type": "synthetic", "num_chars": 2000},
        "model": {"embedding": {"size": 8}, "cell": {"hidden_size": 8}},
        "sampler": {"batch_size": 4, "num_steps": 8},
        "generate": {"max_new_tokens": 5}}))
    (where / "loop.json").write_text(json.dumps({"extends": "loop.json",
                                                 "dataset": {"type": "synthetic"}}))
    (where / "corpus[1].txt").write_text(CORPUS)
    (where / "latin1.txt").write_bytes("café au lait. ".encode("latin-1") * 100)
    (where / "empty.txt").write_text("")
    os.mkfifo(where / "fifo")
    os.mkfifo(where / "fifo.tsv")


def share_session(monkeypatch) -> None:
    """One plugin session for every invocation: building one checks every plugin's
    schema, a quarter of a second each time, which would be most of this file's time."""
    import seqgen.cli
    monkeypatch.setattr(seqgen.cli, "Session", lambda *args, **kwargs: SESSION)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_files(tmp_path)        # tmp_path is the working directory (conftest's _isolate)
    share_session(monkeypatch)
    return tmp_path


COMMON = dict(deadline=None, derandomize=True, database=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],   # no patch files
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                      HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much,
                                      HealthCheck.large_base_example])


@st.composite
def validate_cases(draw):
    spec = draw(specs(max_perturbations=3))
    text = draw(spec_texts(spec))
    sets = draw(overrides(spec if isinstance(spec, dict) else {}, max_size=3))
    mode = draw(st.sampled_from([[], [], ["--resolved"], ["--explain"], ["--explain", "--json"]]))
    return text, sets, mode


@settings(max_examples=300, **COMMON)
@given(case=validate_cases())
def test_validate_exits_0_or_2_and_never_reports_a_bug(workdir, case):
    limit = budget("validate", workdir)
    limit.check(case)
    text, sets, mode = case
    args = ["validate", "-", *(a for s in sets for a in ("--set", s)), *mode]
    note(f"seqgen {' '.join(args)} <<< {text[:3000]!r}")
    try:
        assert_clean(validate(args, text), allowed=(0, 2))
    except AssertionError:
        limit.failed(case)
        raise


@st.composite
def run_cases(draw):
    spec = draw(specs(max_perturbations=2))
    sets = draw(overrides(spec, max_size=2)) if draw(st.integers(0, 3)) == 0 else []
    return dumps(spec), sets


RUNS = iter(range(10**9))


@pytest.mark.slow
@settings(max_examples=15, **COMMON)
@given(case=run_cases())
def test_run_one_step_never_reports_a_bug(workdir, case):
    limit = budget("run", workdir)
    limit.check(case)
    text, sets = case
    set_args = [a for s in sets for a in ("--set", s)]
    validated = validate(["validate", "-", *set_args], text)
    assume(validated[0] == 0 and validated[3] is None)     # property 1 covers the rest
    out = workdir / f"run-{next(RUNS)}"
    args = ["run", "-", *set_args, "--set", "train.max_steps=1", "--out", str(out)]
    note(f"seqgen {' '.join(args)} <<< {text[:3000]!r}")
    try:
        outcome = invoke_isolated(args, text)
        assert_clean(outcome, allowed=(0, 1, 2))
        if outcome[0] == 0:
            assert "run directory:" in outcome[1]
    except AssertionError:
        limit.failed(case)
        raise


# -- the failures fuzzing found, kept as fixed cases -------------------------------------
SURROGATE = "\udcff"      # what Python makes of a non-UTF-8 byte in argv or a file name
TINY = {"dataset": {"type": "synthetic", "num_chars": 2000},
        "model": {"embedding": {"type": "learned", "size": 8},
                  "cell": {"type": "lstm", "hidden_size": 8}},
        "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 8},
        "train": {"epochs": 1}, "generate": {"prompts": ["the "], "max_new_tokens": 5}}


def _with(**fields):
    return dumps({**TINY, **fields})


FOUND = [   # (id, arguments, standard input): each a distinct failure fuzzing found
    ("stdin-not-utf8", ["validate", "-"], dumps(TINY).encode() + b"\xff"),
    ("extends-nul-byte", ["validate", "-"], _with(extends="a\x00b.json")),
    ("extends-name-too-long", ["validate", "-"], _with(extends="a" * 300)),
    ("extends-path-too-long", ["validate", "-"], _with(extends="x/" * 2100 + "a.json")),
    ("extends-unreadable", ["validate", "-"], _with(extends="/proc/self/mem")),
    ("extends-surrogate", ["validate", "-"], _with(extends="\ud800.json")),
    ("extends-fifo", ["validate", "-"], _with(extends="./fifo")),
    ("extends-dev-zero", ["validate", "-"], _with(extends="/dev/zero")),
    ("spec-file-fifo", ["validate", "./fifo"], ""),
    ("resolved-surrogate", ["validate", "-", "--resolved"], _with(name=SURROGATE)),
    ("explain-surrogate", ["validate", "-", "--explain"], _with(name=SURROGATE)),
    ("set-surrogate", ["validate", "-", "--set", f"name={SURROGATE}", "--resolved"],
     dumps(TINY)),
    ("run-name-surrogate", ["run", "-"], _with(name=SURROGATE)),
    ("run-stop-surrogate", ["run", "-"],
     _with(generate={**TINY["generate"], "stop": [SURROGATE]})),
    ("run-logger-path-surrogate", ["run", "-"],
     _with(train={"epochs": 1, "loggers": [{"type": "csv", "path": SURROGATE + ".csv"}]})),
]


@pytest.mark.parametrize("args, text", [
    pytest.param(a, t, id=i, marks=[pytest.mark.slow] if a[0] == "run" else [])
    for i, a, t in FOUND])
def test_found_by_fuzzing(workdir, args, text):
    """Each in a child: some of them hung (a FIFO or /dev/zero read as a spec)."""
    if args[0] == "validate":
        outcome = invoke_isolated(args, text, VALIDATE_TIMEOUT_S, VALIDATE_MEMORY_LIMIT)
        assert_clean(outcome, allowed=(0, 2))
    else:
        args = [*args, "--set", "train.max_steps=1", "--out", str(workdir / "r")]
        assert_clean(invoke_isolated(args, text), allowed=(0, 1, 2))
