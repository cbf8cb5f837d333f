"""`seqgen plugins new KIND NAME`: write an installable plugin package that works as is.

    seqgen-NAME/
      pyproject.toml          setuptools; the `seqgen` entry point; depends on seqgen
      README.md               install, test, use it in a spec
      seqgen_NAME/__init__.py a minimal working KIND, its options schema (built from
                              `seqgen.options` fragments) and the hook that registers it
      tests/test_NAME.py      the kind's contract kit (`seqgen.testing`), and a check that
                              the hook registers it

The stubs are small but real: an Elman RNN cell, a dataset of a short built-in poem, a
sampler of consecutive windows, a top-k sampling strategy. Each passes its contract kit,
so the package's tests pass before the author changes a line. Templates are the string
constants below (no package data).
"""
from __future__ import annotations

import re
from pathlib import Path
from string import Template

from . import __version__
from .components import KIND_BY_NAME, PLURAL
from .errors import ScaffoldError

SCAFFOLD_KINDS = ("cell", "dataset", "sampler", "strategy")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
MAX_NAME = 40


def scaffold(kind: str, name: str, out: str | Path | None = None) -> Path:
    """Write a plugin package for one `kind` of component named `name`; return its folder.

    kind: "cell", "dataset", "sampler" or "strategy".
    name: the component's registered name (used in specs): lowercase letters and digits,
          words joined by single "-" or "_", starting with a letter, e.g. "my-cell". The
          distribution is "seqgen-NAME", the import package "seqgen_NAME" ("-" -> "_").
    out:  the package folder to create (default: ./seqgen-NAME). It may exist if empty.

    Raises seqgen.ScaffoldError (a PluginError) for an unknown kind, an invalid name, a name a built-in
    component of that kind already has, or an `out` that exists and is not an empty
    folder; nothing is written then.
    """
    if kind not in SCAFFOLD_KINDS:
        raise ScaffoldError(f"can't scaffold a plugin of kind {kind!r}: choose one of "
                          f"{', '.join(SCAFFOLD_KINDS)}")
    check_name(kind, name)
    target = Path(out) if out is not None else Path.cwd() / f"seqgen-{name}"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        what = "a folder that is not empty" if target.is_dir() else "a file"
        raise ScaffoldError(f"{target} already exists and is {what}; nothing was written. "
                          "Give another folder (-o DIR) or remove it.")
    files = render(kind, name)
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target.resolve()


def check_name(kind: str, name: str) -> None:
    """Raise ScaffoldError unless `name` can name a new component of `kind` and its package."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or len(name) > MAX_NAME:
        raise ScaffoldError(
            f"{name!r} is not a valid plugin name: use lowercase letters and digits, words "
            f"joined by single '-' or '_', starting with a letter, at most {MAX_NAME} "
            "characters (e.g. 'my-cell'). It names the component in specs, the distribution "
            "seqgen-NAME and the package seqgen_NAME.")
    from .api import Session  # the built-in names; imported here to keep this module light
    taken = Session(entry_points=False).registry.names(kind)
    if name in taken:
        raise ScaffoldError(
            f"{name!r} is already the name of a built-in {kind}; pick another name (a plugin "
            f"that takes over {name!r} on purpose registers it with replaces={name!r})")


def render(kind: str, name: str) -> dict[str, str]:
    """{relative path: text} of every file of the package (nothing written)."""
    ident = name.replace("-", "_")
    words = {
        "name": name,
        "kind": kind,
        "plural": PLURAL[kind],
        "hook": KIND_BY_NAME[kind].hook,
        "dist": f"seqgen-{name}",
        "module": f"seqgen_{ident}",
        "ident": ident,
        "cls": class_name(kind, name),
        "kit": KIT[kind],
        "version": __version__,
    }
    fill = lambda template: Template(template).substitute(words)  # noqa: E731
    words["spec"] = fill(SPEC[kind])
    words["summary"] = fill(SUMMARY[kind])
    return {
        "pyproject.toml": fill(PYPROJECT),
        "README.md": fill(README),
        f"seqgen_{ident}/__init__.py": fill(MODULE[kind]),
        f"tests/test_{ident}.py": fill(TEST[kind]),
    }


def class_name(kind: str, name: str) -> str:
    """"my-sampler" -> "MySampler", "elman" -> "ElmanCell": CamelCase ending in the kind."""
    camel = "".join(part.capitalize() for part in re.split(r"[-_]", name))
    suffix = kind.capitalize()
    return camel if camel.endswith(suffix) else camel + suffix


KIT = {"cell": "check_cell", "dataset": "check_dataset", "sampler": "check_sampler",
       "strategy": "check_strategy"}

# -- package files ----------------------------------------------------------------------------
PYPROJECT = '''\
[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A seqgen $kind plugin: $name."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["seqgen>=$version"]

[project.optional-dependencies]
test = ["pytest>=7"]

# How seqgen finds the plugin: the `seqgen` entry-point group, pointing at the module
# whose @seqgen.hookimpl functions register components.
[project.entry-points.seqgen]
"$name" = "$module"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''\
# $dist

A seqgen plugin that adds one $kind, `$name`:
$summary

## Install

```bash
pip install -e .             # from this folder
seqgen plugins               # lists $name among the $plural
seqgen schema                # its options, with their defaults
```

## Test

```bash
pip install -e ".[test]"
pytest
```

The tests hold the $kind to seqgen's contract with `seqgen.testing.$kit`, the same
checks the built-in $plural pass, and check that the plugin registers it.

## Use it in a spec

```json
$spec
```

```bash
seqgen run spec.json
```

## Change it

Everything is in `$module/__init__.py`: the implementation, its options schema (built
from the shared fragments in `seqgen.options`, plus its own), and the `$hook` hook
implementation that registers it under the name `$name`. The entry point in
`pyproject.toml` is how seqgen finds the module. Keep `pytest` passing as you go.
'''

SUMMARY = {
    "cell": "an Elman RNN, h_t = tanh(W x_t + b + U h_{t-1}), one layer after another.",
    "dataset": "a short built-in poem as a language-modelling corpus (task lm), char or "
               "word level.",
    "sampler": "consecutive windows of a token stream; row i of each batch continues row i "
               "of the previous one, so the hidden state is carried.",
    "strategy": "sampling among the k most likely tokens, after dividing the logits by a "
                "temperature.",
}

SPEC = {
    "cell": '''{
  "dataset": {"type": "synthetic"},
  "model": {"cell": {"type": "$name", "hidden_size": 64, "num_layers": 1}},
  "train": {"epochs": 2}
}''',
    "dataset": '''{
  "dataset": {"type": "$name", "level": "char"},
  "model": {"cell": {"type": "lstm", "hidden_size": 64}},
  "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 16},
  "train": {"epochs": 5},
  "generate": {"prompts": ["Twinkle"]}
}''',
    "sampler": '''{
  "dataset": {"type": "synthetic"},
  "sampler": {"type": "$name", "batch_size": 16, "num_steps": 32},
  "train": {"epochs": 2}
}''',
    "strategy": '''{
  "dataset": {"type": "synthetic"},
  "train": {"epochs": 2},
  "generate": {"prompts": ["the "], "strategies": [{"type": "$name", "k": 5}]}
}''',
}

# -- implementations ----------------------------------------------------------------------------
MODULE = {}
TEST = {}

MODULE["cell"] = '''\
"""seqgen plugin: the `$name` cell, an Elman RNN written out step by step.

    h_t = act(W x_t + b + U h_{t-1})      per layer; layer k+1 reads layer k's outputs

The contract (shapes, state, lengths, stepping) is `seqgen.Cell`'s docstring; the
tests (tests/) hold the cell to it with `seqgen.testing.check_cell`.
"""
from __future__ import annotations

import torch
from torch import nn

import seqgen
from seqgen.options import HIDDEN_SIZE, NONLINEARITY, NUM_LAYERS, options_schema

NAME = "$name"   # what specs and `seqgen plugins` call it
SCHEMA = options_schema(
    title=f"{NAME} cell options",
    hidden_size=HIDDEN_SIZE, num_layers=NUM_LAYERS, nonlinearity=NONLINEARITY,
)
DESCRIPTION = "Elman RNN written out step by step (plugin $dist)."


class $cls(seqgen.Cell):
    def __init__(self, input_size: int, hidden_size: int = 128, num_layers: int = 1,
                 nonlinearity: str = "tanh"):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.act = torch.tanh if nonlinearity == "tanh" else torch.relu
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.inputs = nn.ModuleList(nn.Linear(size, hidden_size) for size in sizes)
        self.recurrent = nn.ModuleList(nn.Linear(hidden_size, hidden_size, bias=False)
                                       for _ in sizes)

    def initial_state(self, batch_size, device=None):
        return torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)

    def forward(self, x, state=None, lengths=None):
        # x [T, B, I]; state [L, B, H]; lengths [B] or None
        steps, batch = x.shape[:2]
        if state is None:
            state = self.initial_state(batch, x.device)
        valid = None                                       # [T, B, 1]: row still has input
        if lengths is not None:
            valid = (torch.arange(steps)[:, None] < lengths[None, :]).to(x.device)[..., None]
        finals = []
        for layer, (w, u) in enumerate(zip(self.inputs, self.recurrent)):
            xw, h, outputs = w(x), state[layer], []        # xw [T, B, H]: all steps at once
            for t in range(steps):
                new = self.act(xw[t] + u(h))               # [B, H]
                if valid is None:
                    h = new
                    outputs.append(new)
                else:                                      # padding: keep h, output zeros
                    h = torch.where(valid[t], new, h)
                    outputs.append(new * valid[t])
            x = torch.stack(outputs)                       # [T, B, H]: the next layer's input
            finals.append(h)
        return x, torch.stack(finals)                      # [T, B, H], [L, B, H]


@seqgen.hookimpl
def $hook(register):
    register(NAME, $cls, SCHEMA, DESCRIPTION)
'''

TEST["cell"] = '''\
"""The plugin's cell keeps seqgen's cell contract, and the plugin registers it."""
import pytest

import seqgen
import $module
from seqgen.testing import check_cell
from $module import $cls


@pytest.mark.parametrize("options", [
    {"hidden_size": 6},
    {"hidden_size": 4, "num_layers": 2, "nonlinearity": "relu"},
])
def test_the_cell_keeps_the_contract(options):
    check_cell($cls, input_size=5, options=options)


def test_the_plugin_registers_it():
    session = seqgen.Session(plugins=[$module], entry_points=False)
    component = session.component("cell", "$name")
    cell = session.build("cell", {"type": "$name", "hidden_size": 8}, 5)
    assert isinstance(cell, $cls) and cell.hidden_size == 8
    assert set(component.schema["properties"]) == {"hidden_size", "num_layers", "nonlinearity"}
'''

MODULE["dataset"] = '''\
"""seqgen plugin: the `$name` dataset, a short built-in poem as a language-modelling
corpus (task "lm"), char or word level.

The contract (vocabulary, task, splits) is `seqgen.Dataset`'s docstring; the tests
(tests/) hold the dataset to it with `seqgen.testing.check_dataset`.
Replace TEXT with a reader of your own source (raise seqgen.DataError for bad data).
"""
from __future__ import annotations

import seqgen
from seqgen.options import LEVEL, LOWERCASE, options_schema, valid_fraction_option

TEXT = """\\
Twinkle, twinkle, little star,
How I wonder what you are!
Up above the world so high,
Like a diamond in the sky.

When the blazing sun is gone,
When he nothing shines upon,
Then you show your little light,
Twinkle, twinkle, all the night.

Then the traveller in the dark
Thanks you for your tiny spark;
He could not see which way to go,
If you did not twinkle so.
"""  # Jane Taylor, "The Star" (1806), public domain

NAME = "$name"   # what specs and `seqgen plugins` call it
SCHEMA = options_schema(
    title=f"{NAME} dataset options",
    level=LEVEL, lowercase=LOWERCASE, valid_fraction=valid_fraction_option(0.1),
)
DESCRIPTION = "A short built-in poem (plugin $dist)."


def build_$ident(level: str = "char", lowercase: bool = False,
        valid_fraction: float = 0.1) -> seqgen.Dataset:
    text = TEXT.lower() if lowercase else TEXT
    if level == "char":
        vocab = seqgen.Vocab.from_text(text, lowercase=lowercase)
    else:                              # words split on whitespace, as Vocab.encode does
        vocab = seqgen.Vocab(text.split(), level="word", lowercase=lowercase)
    ids = vocab.encode(text)           # [N], the smallest integer dtype that fits
    n_valid = int(len(ids) * valid_fraction)
    if valid_fraction > 0 and n_valid == 0:
        raise seqgen.DataError(f"{NAME}: valid_fraction {valid_fraction} of {len(ids)} "
                               "tokens holds out nothing; raise it or use 0")
    train = seqgen.TokenStream(ids[:len(ids) - n_valid])
    valid = seqgen.TokenStream(ids[len(ids) - n_valid:]) if n_valid else None
    return seqgen.Dataset(vocab, "lm", train, valid, source=f"{NAME} (built-in poem)",
                          info={"tokens": len(ids), "vocab_size": len(vocab)})


@seqgen.hookimpl
def $hook(register):
    register(NAME, build_$ident, SCHEMA, DESCRIPTION, task="lm")
'''

TEST["dataset"] = '''\
"""The plugin's dataset keeps seqgen's dataset contract, and the plugin registers it."""
import pytest

import seqgen
import $module
from seqgen.testing import check_dataset
from $module import build_$ident


@pytest.mark.parametrize("options", [
    {},
    {"level": "word", "valid_fraction": 0.2},
    {"lowercase": True, "valid_fraction": 0},
])
def test_the_dataset_keeps_the_contract(options):
    check_dataset(build_$ident, options=options, task="lm")


def test_the_plugin_registers_it():
    session = seqgen.Session(plugins=[$module], entry_points=False)
    component = session.component("dataset", "$name")
    assert component.extra["task"] == "lm"
    dataset = session.build("dataset", {"type": "$name", "level": "word"})
    assert dataset.vocab.level == "word"
'''

MODULE["sampler"] = '''\
"""seqgen plugin: the `$name` sampler, consecutive windows of a token stream.

From a random offset in [0, num_steps), the stream is cut into batch_size rows laid end
to end, and batch k holds steps [k*T, (k+1)*T) of every row. Row i of batch k+1 then
continues row i of batch k, so the trainer carries the hidden state (state_rule "carry").

The contract (batches, determinism, sharding) is `seqgen.Sampler`'s docstring; the
tests (tests/) hold the sampler to it with `seqgen.testing.check_sampler`.
"""
from __future__ import annotations

import torch

import seqgen
from seqgen.options import STREAM_OPTIONS, options_schema

NAME = "$name"   # what specs and `seqgen plugins` call it
SCHEMA = options_schema(STREAM_OPTIONS, title=f"{NAME} sampler options")
DESCRIPTION = "Consecutive windows, state carried (plugin $dist)."


class $cls(seqgen.Sampler):
    state_rule = "carry"

    def __init__(self, split, *, seed, rank=0, world_size=1, batch_size=32, num_steps=35):
        if not isinstance(split, seqgen.TokenStream):
            raise seqgen.DataError(f"{NAME} sampler batches a token stream, not a "
                                   f"{type(split).__name__}")
        if not 0 <= rank < world_size <= batch_size:
            raise seqgen.DataError(f"{NAME} sampler: rank {rank} of {world_size} needs "
                                   f"0 <= rank < world_size <= batch_size ({batch_size})")
        self.ids, self.seed = split.ids, seed
        self.batch_size, self.num_steps = batch_size, num_steps
        self.rows = slice(rank, None, world_size)   # this rank's rows of every global batch
        # Room for the largest offset (num_steps - 1) and the last target, so that len()
        # is the same every epoch.
        self.num_batches = (len(split) - num_steps) // (batch_size * num_steps)
        if self.num_batches < 1:
            raise seqgen.DataError(
                f"{NAME} sampler: one batch of {batch_size} x {num_steps} needs "
                f"{batch_size * num_steps + num_steps} tokens, the split has {len(split)}; "
                "lower batch_size or num_steps")

    def __len__(self):
        return self.num_batches

    def epoch(self, epoch):
        # Random numbers from (seed, epoch) only: a resumed run sees the same batches.
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        offset = int(torch.randint(self.num_steps, (), generator=g))
        length = self.num_batches * self.num_steps                        # steps per row
        end = offset + self.batch_size * length
        xs = self.ids[offset:end].reshape(self.batch_size, length)[self.rows]  # [b, length]
        ys = self.ids[offset + 1:end + 1].reshape(self.batch_size, length)[self.rows]
        for k in range(0, length, self.num_steps):
            cols = slice(k, k + self.num_steps)
            yield seqgen.Batch(xs[:, cols].t().long().contiguous(),      # [T, b] int64
                               ys[:, cols].t().long().contiguous())


@seqgen.hookimpl
def $hook(register):
    register(NAME, $cls, SCHEMA, DESCRIPTION, accepts="stream")
'''

TEST["sampler"] = '''\
"""The plugin's sampler keeps seqgen's sampler contract, and the plugin registers it."""
import pytest
import torch

import seqgen
import $module
from seqgen.testing import check_sampler
from $module import $cls

# Distinct tokens: each names its position, which makes every check exact.
STREAM = seqgen.TokenStream(torch.arange(300, dtype=torch.int16))


@pytest.mark.parametrize("options", [
    {"batch_size": 4, "num_steps": 5},
    {"batch_size": 6, "num_steps": 7},
])
def test_the_sampler_keeps_the_contract(options):
    check_sampler($cls, STREAM, options=options)


def test_the_plugin_registers_it():
    session = seqgen.Session(plugins=[$module], entry_points=False)
    component = session.component("sampler", "$name")
    assert component.extra["accepts"] == "stream"
    sampler = session.build("sampler", {"type": "$name", "batch_size": 2, "num_steps": 3},
                            STREAM, seed=0)
    assert len(list(sampler.epoch(0))) == len(sampler)
'''

MODULE["strategy"] = '''\
"""seqgen plugin: the `$name` strategy, sampling among the k most likely tokens after
dividing the logits by a temperature (temperature 0, or k 1, is greedy).

The contract (choose, stochastic, teacher_ratio, warnings, describe) is
`seqgen.Strategy`'s docstring; the tests (tests/) hold the strategy to it with
`seqgen.testing.check_strategy`.
"""
from __future__ import annotations

import torch

import seqgen
from seqgen.options import TEMPERATURE, options_schema

NAME = "$name"   # what specs and `seqgen plugins` call it
SCHEMA = options_schema(
    title=f"{NAME} strategy options",
    k={"type": "integer", "minimum": 1, "default": 5,
       "description": "How many of the most likely tokens to sample from."},
    temperature=TEMPERATURE,
)
DESCRIPTION = "Sample among the k most likely tokens (plugin $dist)."


class $cls(seqgen.Strategy):
    def __init__(self, k: int = 5, temperature: float = 1.0):
        self.k, self.temperature = int(k), float(temperature)
        self.stochastic = self.temperature > 0 and self.k > 1   # else it is greedy

    def choose(self, logits, generator=None):
        # logits [B, V] -> ids [B] int64; never edit logits in place.
        if not self.stochastic:
            return logits.argmax(dim=-1)
        top = logits.float().topk(min(self.k, logits.shape[-1]), dim=-1)  # [B, k]
        probs = torch.softmax(top.values / self.temperature, dim=-1)      # -inf -> 0
        pick = torch.multinomial(probs, 1, generator=generator)           # [B, 1]
        return top.indices.gather(-1, pick).squeeze(-1)

    def warnings(self):
        if self.temperature == 0 and self.k != 1:
            return [f"temperature 0 is greedy decoding: k={self.k} has no effect"]
        return []

    def describe(self):
        return f"{NAME}(k={self.k}, temperature={self.temperature:g})"


@seqgen.hookimpl
def $hook(register):
    register(NAME, $cls, SCHEMA, DESCRIPTION)
'''

TEST["strategy"] = '''\
"""The plugin's strategy keeps seqgen's strategy contract, and the plugin registers it."""
import pytest

import seqgen
import $module
from seqgen.testing import check_strategy
from $module import $cls


@pytest.mark.parametrize("options", [{}, {"k": 1}, {"k": 3, "temperature": 0.7},
                                     {"temperature": 0}])
def test_the_strategy_keeps_the_contract(options):
    check_strategy($cls, options=options)


def test_the_plugin_registers_it():
    session = seqgen.Session(plugins=[$module], entry_points=False)
    strategy = session.strategy({"type": "$name", "k": 2})   # options validated
    assert isinstance(strategy, $cls) and strategy.k == 2
    assert strategy.describe() == "$name(k=2, temperature=1)"
'''
