"""Shared fixtures: sessions without third-party plugins, tiny specs, a clean cwd."""
from __future__ import annotations

import copy

import pytest
import torch

import seqgen

TINY_SPEC = {
    "name": "tiny",
    "seed": 0,
    "dataset": {"type": "synthetic", "num_chars": 3000},
    "model": {"embedding": {"type": "learned", "size": 8},
              "cell": {"type": "lstm", "hidden_size": 16}},
    "sampler": {"type": "sequential", "batch_size": 4, "num_steps": 16},
    "train": {"epochs": 2, "log_every": 10},
    "generate": {"prompts": ["the "], "max_new_tokens": 12},
}


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test runs in its own empty directory, with few threads and no
    third-party plugins unless it asks for them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQGEN_PLUGINS", "")
    torch.set_num_threads(1)


@pytest.fixture
def session() -> seqgen.Session:
    return seqgen.Session(entry_points=False)


@pytest.fixture
def tiny_spec() -> dict:
    return copy.deepcopy(TINY_SPEC)
