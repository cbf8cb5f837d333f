"""A trained model loaded from a checkpoint, for generating and scoring from Python.

    model = seqgen.load("runs/demo")          # or runs/demo/last.safetensors
    model.generate(["the cat"], strategy={"type": "top-k", "k": 5}, seed=1)   # [Sample]
    for piece in model.stream("the cat", "greedy", stop=["."]):             # text as made
        print(piece, end="", flush=True)
    model.score("the cat sees a dog.")                 # {'tokens', 'loss', 'perplexity'}
    model.generate("the ", {"type": "teacher-forcing", "reference": "cat sees"})[0].logprobs

Options that have no effect in the combination asked for are reported with
`warnings.warn(message, seqgen.GenerationWarning)`. One LoadedModel may serve many threads
at once: each call has its own random generator, so a call's text depends only on its
arguments and seed.
"""
from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from . import checkpoint as ckpt
from .data import TokenStream
from .errors import CheckpointError, SeqgenError, UnknownComponentError
from .evaluate import mean_nll, perplexity
from .generate import Sample, TextGenerator
from .strategy import GenerationWarning, Strategy
from .missing import believable, missing_message
from .budget import check_generation
from .spec import check_arguments, resolve_model
from .vocab import Vocab

if TYPE_CHECKING:
    from .api import Session


class LoadedModel:
    """A trained model and its vocabulary, ready to generate and score.

    Made by `seqgen.load(path)` or `Session.load(path)` from a checkpoint file or a run
    directory (its best checkpoint, else its last). Needs only the plugin of the model's
    cell, and of each strategy you ask for.

    generate(prompts, strategy, max_new_tokens, num_samples, seed, on_unknown, stop=...)
        -> list[Sample]: num_samples per prompt, in prompt order; each has .text (the
        continuation), .logprobs (per token), .score and .perplexity.
    stream(prompt, strategy, max_new_tokens, seed, on_unknown, stop=...) -> iterator of
        text pieces; "".join(pieces) == generate(prompt, ...)[0].text for the same seed.
    score(text, on_unknown) -> {"tokens", "loss" (nats/token), "perplexity"}.
    strategy(name | spec object | Strategy) -> Strategy, options validated.

    `strategy` is a name ("greedy"), a spec object ({"type": "top-k", "k": 5}) or a built
    Strategy. `on_unknown` decides what happens to prompt characters outside the
    vocabulary: "error" (GenerationError naming them), "skip" or "unk". A call's output
    depends only on its arguments and seed: one LoadedModel may serve many threads.
    Attributes: .vocab, .model (the torch module), .spec (as stored), .path.
    """

    def __init__(self, session: "Session", generator: TextGenerator, spec: dict, path: Path,
                 components: list[dict] = ()):
        self.session = session
        self.generator = generator
        self.spec = spec
        self.path = path
        self.components = list(components)   # what the checkpoint recorded (missing.py)

    @property
    def vocab(self) -> Vocab:
        return self.generator.vocab

    @property
    def model(self):
        return self.generator.model

    @classmethod
    def from_checkpoint(cls, session: "Session", path: str | Path) -> "LoadedModel":
        """Rebuild the model a checkpoint holds. Only the plugins of its model (the cell)
        are needed: the dataset, sampler and strategies it was trained with are not."""
        c = ckpt.load(path)      # its task and the shape of its spec are checked there
        cell = c.spec["model"].get("cell")
        name = cell.get("type") if isinstance(cell, dict) else None
        components = believable(c.components)
        if isinstance(name, str) and not session.registry.has("cell", name):
            raise CheckpointError(f"{path}: {missing_message(session, components, 'cell', name)}")
        try:   # the stored model section is re-checked like any spec
            spec = {**c.spec, "model": resolve_model(c.spec["model"], session.registry)}
        except SeqgenError as e:
            raise CheckpointError(f"{path}: the spec stored in the checkpoint cannot be used: "
                                  f"{e}") from e
        model = session.build_model(spec, len(c.vocab))
        try:
            model.load_state_dict(c.group("model"))
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights do not fit the model its spec describes "
                                  f"({ckpt.first_detail(e)})") from e
        return cls(session, TextGenerator(model, c.vocab, c.task), spec,
                   ckpt.resolve_path(path), components)

    def strategy(self, strategy: dict | str | Strategy) -> Strategy:
        """A strategy from its name or spec object (options validated), or as given."""
        if isinstance(strategy, Strategy):
            return strategy
        name = strategy if isinstance(strategy, str) else (
            strategy.get("type") if isinstance(strategy, dict) else None)
        if (isinstance(name, str) and not self.session.registry.has("strategy", name)
                and any(r["kind"] == "strategy" and r["name"] == name for r in self.components)):
            raise UnknownComponentError(
                f"{self.path}: " + missing_message(self.session, self.components, "strategy", name))
        return self.session.strategy(copy.deepcopy(strategy))

    def generate(self, prompts: list[str] | str = "", strategy: dict | str | Strategy = "greedy",
                 max_new_tokens: int = 100, num_samples: int = 1, seed: int = 0,
                 on_unknown: str = "error", *, stop: list[str] | str = ()) -> list[Sample]:
        """num_samples Samples (text, per-token log-probs, score) for each prompt, in order.

        stop: strings that end a sample; its text is cut before the first one.
        on_unknown: prompt characters outside the vocabulary: "error", "skip" or "unk".
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        args = check_arguments(prompts=prompts, max_new_tokens=max_new_tokens,
                               num_samples=num_samples, seed=seed, on_unknown=on_unknown)
        chosen = self.strategy(strategy)
        check_generation(self.model, len(self.vocab), args["prompts"], args["num_samples"],
                         args["max_new_tokens"], chosen)
        return self.generator.generate(args["prompts"], chosen, args["max_new_tokens"],
                                       args["num_samples"], args["seed"], on_unknown, stop=stop,
                                       warn=warn_user(sys._getframe(1)))

    def stream(self, prompt: str = "", strategy: dict | str | Strategy = "greedy",
               max_new_tokens: int = 100, seed: int = 0, on_unknown: str = "error", *,
               stop: list[str] | str = ()) -> Iterator[str]:
        """One sample's text, piece by piece as it is generated; "".join(pieces) equals
        generate(prompt, ...)[0].text for the same arguments and seed."""
        args = check_arguments(prompts=[prompt], max_new_tokens=max_new_tokens, seed=seed,
                               on_unknown=on_unknown)
        chosen = self.strategy(strategy)
        check_generation(self.model, len(self.vocab), args["prompts"], 1,
                         args["max_new_tokens"], chosen)
        return self.generator.stream(prompt, chosen, args["max_new_tokens"], args["seed"],
                                     on_unknown, stop=stop, warn=warn_user(sys._getframe(1)))

    def score(self, text: str, on_unknown: str = "error") -> dict:
        """Mean negative log-likelihood (nats per token) and perplexity of `text`, each
        token predicted from those before it (the first is context only). Long texts are
        read as up to 16 parallel rows, for speed. For the log-probability of every token
        of a continuation, use the teacher-forcing strategy with a reference:
        generate(prompt, {"type": "teacher-forcing", "reference": text})."""
        ids = self.vocab.encode(text, on_unknown=on_unknown)
        if ids.numel() < 2:
            raise CheckpointError("scoring needs at least two tokens of text")
        device = next(self.model.parameters()).device
        nll = mean_nll(self.model, TokenStream(ids), device)
        return {"tokens": int(ids.numel()) - 1, "loss": nll, "perplexity": perplexity(nll)}



def warn_user(caller) -> Callable[[str], None]:
    """A `warn` for the generator: warnings.warn, attributed to the user's line `caller`
    (a frame), however deep in seqgen and its plugins the note is raised."""
    def warn(message: str) -> None:
        warnings.warn_explicit(message, GenerationWarning, caller.f_code.co_filename,
                               caller.f_lineno, module=caller.f_globals.get("__name__"),
                               registry=caller.f_globals.setdefault("__warningregistry__", {}))
    return warn
