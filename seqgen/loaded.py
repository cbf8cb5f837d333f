"""A trained model loaded from a checkpoint, for generating and scoring from Python.

    model = seqgen.load("runs/demo/model.safetensors")
    model.generate(["the cat"], strategy={"type": "top-k", "k": 5}, seed=1)
    model.score("the cat sees a dog.")
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import checkpoint as ckpt
from .data import TokenStream
from .errors import CheckpointError
from .evaluate import mean_nll, perplexity
from .generate import Sample, TextGenerator
from .vocab import Vocab

if TYPE_CHECKING:
    from .api import Session


class LoadedModel:
    def __init__(self, session: "Session", generator: TextGenerator, spec: dict, path: Path):
        self.session = session
        self.generator = generator
        self.spec = spec
        self.path = path

    @property
    def vocab(self) -> Vocab:
        return self.generator.vocab

    @property
    def model(self):
        return self.generator.model

    @classmethod
    def from_checkpoint(cls, session: "Session", path: str | Path) -> "LoadedModel":
        c = ckpt.load(path)
        spec = c.spec
        try:
            model = session.build_model(spec, len(c.vocab))
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: the spec stored in the checkpoint is damaged "
                                  f"({type(e).__name__}: {e})") from e
        try:
            model.load_state_dict(c.group("model"))
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"{path}: weights do not fit the model its spec describes "
                                  f"({first})") from e
        return cls(session, TextGenerator(model, c.vocab, c.task), spec,
                   ckpt.resolve_path(path))

    def generate(self, prompts: list[str] | str = "", strategy: dict | str = "greedy",
                 max_new_tokens: int = 100, num_samples: int = 1, seed: int = 0,
                 on_unknown: str = "error") -> list[Sample]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return self.generator.generate(prompts, self.session.strategy(copy.deepcopy(strategy)),
                                       max_new_tokens, num_samples, seed, on_unknown)

    def score(self, text: str, on_unknown: str = "error") -> dict:
        """Mean negative log-likelihood (nats per token) and perplexity of `text`."""
        ids = self.vocab.encode(text, on_unknown=on_unknown)
        if ids.numel() < 2:
            raise CheckpointError("scoring needs at least two tokens of text")
        device = next(self.model.parameters()).device
        nll = mean_nll(self.model, TokenStream(ids), device)
        return {"tokens": int(ids.numel()) - 1, "loss": nll, "perplexity": perplexity(nll)}
