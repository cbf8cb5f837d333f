"""A trained model loaded from a checkpoint, for generating and scoring from Python.

    model = seqgen.load("runs/demo")          # or runs/demo/last.safetensors
    model.generate(["the cat"], strategy={"type": "top-k", "k": 5}, seed=1)   # [Sample]
    for piece in model.stream("the cat", "greedy", stop=["."]):             # text as made
        print(piece, end="", flush=True)
    async for piece in model.astream("the cat", "greedy"):     # the same, in asyncio code
        await websocket.send(piece)
    model.score("the cat sees a dog.")                 # Score(tokens, loss, perplexity)
    model.generate("the ", {"type": "teacher-forcing", "reference": "cat sees"})[0].logprobs

Options that have no effect in the combination asked for are reported with
`warnings.warn(message, seqgen.GenerationWarning)`. One LoadedModel may serve many threads
at once: each call has its own random generator, so a call's text depends only on its
arguments and seed. `astream` runs the generation of each call in a thread of its own,
so an event loop serving many clients is never blocked by a model step.
"""
from __future__ import annotations

import asyncio
import copy
import queue
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterator

import torch

from . import checkpoint as ckpt
from .data import TokenStream
from .errors import CheckpointError, GenerationError, SeqgenError, UnknownComponentError
from .evaluate import mean_nll, perplexity, stream_chunks, token_nll
from .generate import Sample, TextGenerator, Translation
from .strategy import GenerationWarning, Strategy
from .missing import believable, missing_message
from .budget import check_generation
from .spec import check_arguments, resolve_model
from .vocab import Vocab

if TYPE_CHECKING:
    from .api import Session
    from .inspection import Inspection
    from .model import LanguageModel


@dataclass(frozen=True)
class Score:
    """How well a model predicts a text: what `LoadedModel.score` returns.

    tokens:         how many tokens were predicted: the text's tokens less the first,
                    which is context only
    loss:           mean negative log-likelihood, in nats per token
    perplexity:     exp(loss)
    token_logprobs: the log-probability of each predicted token, in text order, with
                    score(text, per_token=True); None otherwise

    to_dict() gives the same as JSON-able {"tokens", "loss", "perplexity"} (and
    "token_logprobs" when there are some), as `seqgen eval --json` prints it.
    """
    tokens: int
    loss: float
    perplexity: float
    token_logprobs: list[float] | None = None

    def to_dict(self) -> dict:
        out = {"tokens": self.tokens, "loss": self.loss, "perplexity": self.perplexity}
        if self.token_logprobs is not None:
            out["token_logprobs"] = list(self.token_logprobs)
        return out


class LoadedModel:
    """A trained model and its vocabulary, ready to generate and score.

    Made by `seqgen.load(path)` or `Session.load(path)` from a checkpoint file or a run
    directory (its best checkpoint, else its last). Needs only the plugin of the model's
    cell, and of each strategy you ask for.

    generate(prompts, strategy, max_new_tokens, num_samples, seed, on_unknown, stop=...)
        -> list[Sample]: num_samples per prompt, in prompt order; each has .text (the
        continuation), .logprobs (per token), .score and .perplexity.
    translate(sources, strategy, max_new_tokens, n_best, seed, on_unknown, attention=False)
        -> list[Translation] (encoder-decoder models): n_best per source, all decoded as
        one batch; with attention=True each holds its weights over the source.
    stream(prompt, strategy, max_new_tokens, seed, on_unknown, stop=...) -> iterator of
        text pieces; "".join(pieces) == generate(prompt, ...)[0].text for the same seed.
    astream(same arguments) -> async iterator of the same pieces, for asyncio code: each
        call generates in a worker thread of its own, so the event loop is never blocked;
        errors (argument errors too) are raised at `__anext__`; a consumer that stops
        early (break, cancellation) stops the worker at its next piece.
    score(text, on_unknown, per_token=False) -> Score: .tokens, .loss (nats/token),
        .perplexity, and with per_token .token_logprobs.
    inspect(text, on_unknown, top_k=5) -> Inspection: per token, every layer's gates and
        states, the probability of the actual next token and the top-k guesses;
        seqgen.write_inspection turns it into inspect.json, heatmaps and inspect.html.
    strategy(name | spec object | Strategy) -> Strategy, options validated.
    showing_unk_as(text) -> LoadedModel: the same model, generated <unk> shown as text.

    `strategy` is a name ("greedy"), a spec object ({"type": "top-k", "k": 5}) or a built
    Strategy. `on_unknown` decides what happens to prompt characters outside the
    vocabulary: "error" (GenerationError naming them), "skip" or "unk". A call's output
    depends only on its arguments and seed: one LoadedModel may serve many threads.
    Attributes: .vocab, .model (the torch module), .spec (as stored), .path (the
    checkpoint; None for the model of a run made with save=False).
    """

    def __init__(self, session: "Session", generator: TextGenerator, spec: dict,
                 path: Path | None,
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
    def model(self) -> "LanguageModel":
        return self.generator.model

    @classmethod
    def from_checkpoint(cls, session: "Session", path: str | Path) -> "LoadedModel":
        """Rebuild the model a checkpoint holds. Only the plugins of its model (the cell)
        are needed: the dataset, sampler and strategies it was trained with are not."""
        c = ckpt.load(path)      # its task and the shape of its spec are checked there
        components = believable(c.components)
        for kind, name in model_components(c.spec["model"]):
            if not session.registry.has(kind, name):
                raise CheckpointError(f"{path}: {missing_message(session, components, kind, name)}")
        try:   # the stored model section is re-checked like any spec
            spec = {**c.spec, "model": resolve_model(c.spec["model"], session.registry)}
        except SeqgenError as e:
            raise CheckpointError(f"{path}: the spec stored in the checkpoint cannot be used: "
                                  f"{e}") from e
        model = session.build_model(spec, len(c.vocab), None if c.source_vocab is None
                                    else len(c.source_vocab))
        try:
            model.load_state_dict(c.group("model"))
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights do not fit the model its spec describes "
                                  f"({ckpt.first_detail(e)})") from e
        generate = c.spec.get("generate")
        unk_text = generate.get("unk_text") if isinstance(generate, dict) else None
        vocab = c.vocab.showing_unk_as(unk_text) if isinstance(unk_text, str) else c.vocab
        return cls(session, TextGenerator(model, vocab, c.task, c.source_vocab), spec,
                   ckpt.resolve_path(path), components)

    def showing_unk_as(self, text: str) -> "LoadedModel":
        """The same model (weights shared), its generated <unk> reading as `text` (the
        run's generate.unk_text, "<unk>" unless set; "" drops it)."""
        generator = TextGenerator(self.model, self.vocab.showing_unk_as(text),
                                  self.generator.task, self.generator.source_vocab)
        return LoadedModel(self.session, generator, self.spec, self.path, self.components)

    def strategy(self, strategy: dict | str | Strategy) -> Strategy:
        """A strategy from its name or spec object (options validated), or as given."""
        if isinstance(strategy, Strategy):
            return strategy
        name = strategy if isinstance(strategy, str) else (
            strategy.get("type") if isinstance(strategy, dict) else None)
        if (isinstance(name, str) and not self.session.registry.has("strategy", name)
                and any(r["kind"] == "strategy" and r["name"] == name for r in self.components)):
            raise UnknownComponentError(
                f"{self.path or 'the model'}: "
                + missing_message(self.session, self.components, "strategy", name))
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

    def translate(self, sources: list[str] | str, strategy: dict | str | Strategy = "greedy",
                  max_new_tokens: int | None = None, n_best: int = 1, seed: int = 0,
                  on_unknown: str = "error", *, stop: list[str] | str = (),
                  attention: bool = False) -> list[Translation]:
        """Translate each source with an encoder-decoder model: n_best Translations per
        source, in order (n_best > 1 takes a strategy that finds several, e.g. beam
        search with width >= n_best, or a sampling one). All sources decode as one batch.

        max_new_tokens: the longest translation (None: twice the longest source plus 10
        tokens). stop: strings that end a translation (cut before them). attention=True
        also gives each Translation its attention weights over the source (read again
        with its tokens fed in, so any strategy can show them). on_unknown: source tokens
        outside the source vocabulary ("error", "skip", "unk")."""
        if self.generator.task != "seq2seq":
            raise GenerationError(f"translate needs an encoder-decoder model; this one is a "
                                  f"{self.generator.task!r} model: use generate")
        if isinstance(sources, str):
            sources = [sources]
        elif not isinstance(sources, (list, tuple)):
            raise GenerationError(f"sources must be a string or a list of strings, not "
                                  f"{type(sources).__name__}")
        if max_new_tokens is None:
            longest = max((len(self.generator.input_vocab.split(x)) for x in sources
                           if isinstance(x, str)), default=0)
            max_new_tokens = 2 * longest + 10
        args = check_arguments(prompts=list(sources), max_new_tokens=max_new_tokens,
                               num_samples=n_best, seed=seed, on_unknown=on_unknown)
        chosen = self.strategy(strategy)
        check_generation(self.model, len(self.vocab), args["prompts"], args["num_samples"],
                         args["max_new_tokens"], chosen)
        ids: list[list[int]] = []
        samples = self.generator.generate(args["prompts"], chosen, args["max_new_tokens"],
                                          args["num_samples"], args["seed"], on_unknown,
                                          stop=stop, warn=warn_user(sys._getframe(1)),
                                          token_ids=ids)
        found = [Translation(**vars(s)) for s in samples]
        if attention:
            self._attend(found, ids, on_unknown)
        return found

    @torch.no_grad()
    def _attend(self, found: list[Translation], ids: list[list[int]], on_unknown: str) -> None:
        """Fill each translation's attention weights: its source encoded, <bos> and its
        generated tokens fed in, each step's weights kept (one row per generated token,
        the one that ended it included)."""
        source_vocab, vocab = self.generator.input_vocab, self.vocab
        device = next(self.model.parameters()).device
        for t, output in zip(found, ids):
            source = source_vocab.encode(t.prompt, on_unknown=on_unknown).long()
            inputs = torch.tensor([vocab.bos_id] + output[:-1], device=device)    # [T]
            state = self.model.encode(source.to(device).unsqueeze(1))
            weights = self.model.attention_weights(state, inputs.unsqueeze(1))   # [T, 1, S]
            t.attention = weights[:, 0].float().cpu().tolist() if output else []
            t.source_tokens = [source_vocab.tokens[i] for i in source.tolist()]
            t.target_tokens = [vocab.tokens[i] for i in output]

    def stream(self, prompt: str = "", strategy: dict | str | Strategy = "greedy",
               max_new_tokens: int = 100, seed: int = 0, on_unknown: str = "error", *,
               stop: list[str] | str = ()) -> Iterator[str]:
        """One sample's text, piece by piece as it is generated; "".join(pieces) equals
        generate(prompt, ...)[0].text for the same arguments and seed."""
        return self._stream(prompt, strategy, max_new_tokens, seed, on_unknown, stop,
                            sys._getframe(1))

    def _stream(self, prompt, strategy, max_new_tokens, seed, on_unknown, stop,
                caller) -> Iterator[str]:
        args = check_arguments(prompts=[prompt], max_new_tokens=max_new_tokens, seed=seed,
                               on_unknown=on_unknown)
        chosen = self.strategy(strategy)
        check_generation(self.model, len(self.vocab), args["prompts"], 1,
                         args["max_new_tokens"], chosen)
        return self.generator.stream(prompt, chosen, args["max_new_tokens"], args["seed"],
                                     on_unknown, stop=stop, warn=warn_user(caller))

    async def astream(self, prompt: str = "", strategy: dict | str | Strategy = "greedy",
                      max_new_tokens: int = 100, seed: int = 0, on_unknown: str = "error", *,
                      stop: list[str] | str = ()) -> AsyncIterator[str]:
        """stream() for asyncio code: the same pieces for the same arguments, made in a
        worker thread of this call's own, one piece per request, so the event loop runs
        other tasks (other astream calls too) while the model works.

        Errors in the worker, argument errors included, are raised at `__anext__` (so
        the first one raises when the call's arguments are wrong). A consumer that stops
        early (breaks out of `async for`, or is cancelled) stops the worker at its next
        piece: the thread does not outlive the iteration. To stop it at once while still
        holding the iterator, close it: `await pieces.aclose()`, or iterate inside
        `contextlib.aclosing(model.astream(...))`.
        """
        caller = sys._getframe(1)
        loop = asyncio.get_running_loop()
        requests: queue.SimpleQueue = queue.SimpleQueue()   # futures to fill; None: stop
        worker = threading.Thread(
            target=_pull, name="seqgen-astream", daemon=True,
            args=(lambda: self._stream(prompt, strategy, max_new_tokens, seed, on_unknown,
                                       stop, caller), requests, loop))
        worker.start()
        try:
            while True:
                future = loop.create_future()
                requests.put(future)
                done, piece = await future
                if done:
                    return
                yield piece
        finally:
            requests.put(None)

    def score(self, text: str, on_unknown: str = "error", *, per_token: bool = False) -> Score:
        """Mean negative log-likelihood (nats per token) and perplexity of `text`, each
        token predicted from those before it (the first is context only), as a Score.
        Long texts are read as up to 16 parallel rows, for speed. per_token=True reads
        the text as one row instead, every token predicted from all those before it, and
        gives each one's log-probability in .token_logprobs. For the log-probabilities
        of a continuation given a prompt, use the teacher-forcing strategy with a
        reference: generate(prompt, {"type": "teacher-forcing", "reference": text})."""
        if self.generator.task == "seq2seq":
            raise GenerationError("score reads a language model over a text; this is an "
                                  "encoder-decoder model: use translate (its Samples carry "
                                  "each token's log-probability)")
        ids = self.vocab.encode(text, on_unknown=on_unknown)
        if ids.numel() < 2:
            raise CheckpointError("scoring needs at least two tokens of text")
        device = next(self.model.parameters()).device
        if not per_token:
            nll = mean_nll(self.model, TokenStream(ids), device)
            return Score(int(ids.numel()) - 1, nll, perplexity(nll))
        logprobs = token_logprobs(self.model, ids, device)
        nll = -sum(logprobs) / len(logprobs)
        return Score(len(logprobs), nll, perplexity(nll), logprobs)

    def inspect(self, text: str, on_unknown: str = "error", *, top_k: int = 5) -> "Inspection":
        """Read `text` through the model from its initial state and record, per token,
        every layer's gates and states (the cell's `inspect`; fused cells run their
        written-out recurrence on the same weights), the probability of the actual next
        token and the `top_k` most likely next tokens (seqgen/inspection/trace.py).
        The text is prepared as the training text was (newlines, lowercase)."""
        from .data import CAUSAL_TASKS
        from .inspection import MAX_TOKENS, MAX_VALUES, trace
        if self.generator.task not in CAUSAL_TASKS:
            raise GenerationError(
                f"inspect reads a language model over a text; this model maps inputs to "
                f"outputs (task {self.generator.task!r}): use "
                + ("translate(..., attention=True) to see what it reads"
                   if self.generator.task == "seq2seq" else "generate"))
        if not isinstance(text, str):
            raise GenerationError(f"text must be a string, not {type(text).__name__}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise GenerationError(f"top_k must be a positive integer, not {top_k!r}")
        ids = self.vocab.encode(text, on_unknown=check_arguments(on_unknown=on_unknown)[
            "on_unknown"])
        if ids.numel() == 0:
            raise GenerationError("inspect needs at least one token of text")
        if ids.numel() > MAX_TOKENS:
            raise GenerationError(f"the text has {ids.numel()} tokens; inspect reads at most "
                                  f"{MAX_TOKENS} (the page and JSON grow with tokens x units)")
        inspection = trace(self.model, self.vocab, ids, top_k, self.spec["model"]["cell"]["type"])
        per_token = sum(v.shape[1] for layer in inspection.layers for v in layer.series.values())
        if per_token * len(ids) > MAX_VALUES:  # the JSON and page would be too big to open
            raise GenerationError(
                f"the text has {len(ids)} tokens, and this model shows {per_token} values "
                f"per token (every unit of every gate and state): at most {MAX_VALUES:,} "
                f"values are written, so inspect at most {MAX_VALUES // per_token} tokens "
                f"with it")
        return inspection


def model_components(model: dict) -> list[tuple[str, str]]:
    """(kind, name) of every plugin component a stored model section names."""
    def named(kind: str, obj) -> list[tuple[str, str]]:
        name = obj.get("type") if isinstance(obj, dict) else None
        return [(kind, name)] if isinstance(name, str) else []
    if model.get("type") != "seq2seq":
        return named("cell", model.get("cell"))
    parts = [model.get(k) if isinstance(model.get(k), dict) else {} for k in ("encoder", "decoder")]
    return [c for part in parts for c in named("cell", part.get("cell"))] + named(
        "attention", model.get("attention"))


@torch.no_grad()
def token_logprobs(model: "LanguageModel", ids: torch.Tensor, device,
                   chunk: int = 256) -> list[float]:
    """log p of ids[1:], each from every id before it: one row, read `chunk` at a time
    with the state carried."""
    was_training = model.training
    model.eval()
    out: list[float] = []
    state = None
    try:
        for batch in stream_chunks(ids, 1, chunk):          # [chunk, 1]
            batch = batch.to(device)
            logits, state = model(batch.inputs, state)
            out += (-token_nll(logits, batch)).reshape(-1).tolist()
    finally:
        model.train(was_training)
    return out


_DONE = (True, None)


def _pull(make: Callable[[], Iterator[str]], requests: queue.SimpleQueue,
          loop: asyncio.AbstractEventLoop) -> None:
    """astream's worker: one piece of the iterator `make()` per future taken from
    `requests`, each settled through the loop; ends at the iterator's end, its first
    error, or a None request (the consumer has gone). The iterator is made, run and
    closed in this thread."""
    pieces = None
    try:
        while (future := requests.get()) is not None:
            error = None
            try:
                if pieces is None:
                    pieces = make()          # argument errors: at the first __anext__
                result = (False, next(pieces))
            except StopIteration:
                result = _DONE
            except BaseException as e:       # given to the consumer, raised there
                result, error = None, e
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:             # the loop is closed: nobody is waiting
                return
            if result is None or result is _DONE:
                return
    finally:
        if pieces is not None and hasattr(pieces, "close"):
            pieces.close()


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():                        # the consumer was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def warn_user(caller) -> Callable[[str], None]:
    """A `warn` for the generator: warnings.warn, attributed to the user's line `caller`
    (a frame), however deep in seqgen and its plugins the note is raised."""
    def warn(message: str) -> None:
        warnings.warn_explicit(message, GenerationWarning, caller.f_code.co_filename,
                               caller.f_lineno, module=caller.f_globals.get("__name__"),
                               registry=caller.f_globals.setdefault("__warningregistry__", {}))
    return warn
