"""Generating text from a trained model: one batch, carried state, no re-run prefix.

All prompts x num_samples rows run together. The prompts (padded, with their lengths)
go through the model in one whole-sequence call; after that the loop feeds one token
per step to the model's stepper, which carries the state (the cell may keep it in its
own form between steps), so the cost per new token does not grow with the text.

One step: logits [B, V] -> strategy.choose -> token [B]; a strategy that reads history
(`needs_history`, e.g. a repetition penalty) also gets each row's seen tokens.
A row ends at <eos> or at the token that completes a stop string (its text is cut before
the stop); the loop ends when every row has, or after max_new_tokens. Strategies with
their own loop (`Strategy.search`: beam search, teacher forcing) get one row per prompt
and a `Decoding` instead (seqgen/decoding.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

import torch

from .data import CAUSAL_TASKS
from .decoding import Decoding
from .diversity import distinct_n
from .errors import GenerationError
from .evaluate import perplexity
from .model import LanguageModel
from .state import State
from .stopping import RowText, finish
from .processors import History
from .strategy import Strategy
from .vocab import Vocab

Warn = Callable[[str], None]


@dataclass
class Sample:
    """One generated text (LoadedModel.generate, RunResult.samples).

    prompt: the text it continues. text: the continuation only (aligned tasks: the
    mapping). strategy: the strategy that made it, described. logprobs: log p of each
    token of text. score: the strategy's ranking (see the field's comment); None for
    aligned tasks. perplexity (property): exp(-mean logprobs), None without tokens.
    distinct_1, distinct_2: the share of the text's tokens (and token pairs) that are
    distinct (seqgen/diversity.py); None for aligned tasks or too short a text.
    to_dict(): all of it, JSON-able."""
    prompt: str
    text: str                       # the continuation only (aligned tasks: the mapping)
    strategy: str
    logprobs: list[float] = field(default_factory=list)  # log p of each token of `text`
    # How the strategy ranks the sequence: the total log-probability of every generated
    # token, an ending <eos> or stop string included; beam search divides it by
    # length ** length_penalty. None for aligned tasks.
    score: float | None = None
    distinct_1: float | None = None
    distinct_2: float | None = None

    @property
    def perplexity(self) -> float | None:
        """exp(-mean log p) over the tokens of `text`; None when it has none."""
        return perplexity(-sum(self.logprobs) / len(self.logprobs)) if self.logprobs else None

    def to_dict(self) -> dict:
        return {**asdict(self), "perplexity": self.perplexity}


@dataclass
class Translation(Sample):
    """One translation (LoadedModel.translate): a Sample whose prompt is the source.

    prompt: the source. text: its translation. strategy, logprobs, score, distinct_1,
    distinct_2: as a Sample's. With attention=True: attention [T][S], the decoder's
    weights over the source at each output step (rows: target_tokens, the generated
    tokens, the <eos> that ended it included; columns: source_tokens, the source's tokens);
    seqgen.write_attention_heatmap draws them. None otherwise."""
    attention: list[list[float]] | None = None
    source_tokens: list[str] | None = None
    target_tokens: list[str] | None = None


def start_token(vocab: Vocab) -> int:
    """What an empty prompt is primed with: <bos>, else a newline, else a space."""
    for token in ("<bos>", "\n", " "):
        if token in vocab.stoi:
            return vocab.stoi[token]
    raise GenerationError("an empty prompt needs a start token (<bos>, newline or space), "
                          "and this vocabulary has none; give a non-empty prompt")


def check_stops(stop: Iterable[str] | str) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if any(not isinstance(s, str) or not s for s in stops):
        raise GenerationError(f"stop strings must be non-empty text, got {list(stops)!r}")
    return stops


def _ignore(message: str) -> None:
    pass


class LogProbs:
    """Each generated token's log-probability under the model, computed a chunk of steps
    at a time: one log_softmax and one gather over [steps, B, V] instead of three small
    ops a step (at batch 1 each op after the recurrent step costs 15-20 us: the step's
    weights have pushed torch's code out of the CPU caches). Same numbers as per step.
    A chunk holds up to CHUNK logits, so memory stays bounded for any batch and vocab."""
    CHUNK = 1 << 20

    def __init__(self):
        self.logits, self.tokens, self.done = [], [], []      # pending [n, B, V] / [n, B]
        self.pending = 0                                        # logits held

    def add(self, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        """logits [n, B, V] of n steps (not changed afterwards: the stepper returns new
        ones), tokens [n, B] chosen from them."""
        self.logits.append(logits)
        self.tokens.append(tokens)
        self.pending += logits.numel()
        if self.pending >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self.logits:
            logits = torch.cat(self.logits).float()                          # [n, B, V]
            tokens = torch.cat(self.tokens)[..., None]                       # [n, B, 1]
            self.done.append(torch.log_softmax(logits, -1).gather(2, tokens)[..., 0])
            self.logits, self.tokens, self.pending = [], [], 0

    def rows(self) -> list[list[float]]:
        """[B][T] log-probabilities, or [] when nothing was added."""
        self._flush()
        return torch.cat(self.done).T.tolist() if self.done else []


class TextGenerator:
    """A loaded model and its vocabulary; safe to share between threads (it is never
    mutated: every call uses its own torch.Generator).

    For a seq2seq model (task "seq2seq") the prompts are sources, read with
    `source_vocab` (None: the shared `vocab`): each row starts from its source's encoding
    and <bos>, and every strategy decodes the target exactly as it continues a prompt."""

    def __init__(self, model: LanguageModel, vocab: Vocab, task: str = "lm",
                 source_vocab: Vocab | None = None):
        self.model = model.eval()
        self.vocab = vocab
        self.task = task
        self.source_vocab = source_vocab

    @property
    def input_vocab(self) -> Vocab:
        """What prompts (a seq2seq model's sources) are read with."""
        return self.source_vocab if self.source_vocab is not None else self.vocab

    @property
    def input_name(self) -> str:
        """What messages call `input_vocab`."""
        return "vocabulary" if self.source_vocab is None else "source vocabulary"

    @property
    def decodes(self) -> bool:
        """Whether the model writes text token by token (lm, lines, seq2seq), rather than
        mapping each input position to an output (aligned)."""
        return self.task in CAUSAL_TASKS or self.task == "seq2seq"

    # -- public -----------------------------------------------------------------------------
    def generate(self, prompts: list[str], strategy: Strategy, max_new_tokens: int = 100,
                 num_samples: int = 1, seed: int = 0, on_unknown: str = "error",
                 name: str | None = None, *, stop: Iterable[str] | str = (),
                 warn: Warn | None = None, token_ids: list | None = None) -> list[Sample]:
        """num_samples samples for each prompt, all in one batch, prompt by prompt.

        stop: strings that end a row (its text is cut before the stop). warn: called with
        each note about options that have no effect (default: ignored). token_ids: a list
        that receives each sample's generated ids, in sample order, up to and including
        the one that ended it (<eos>, or a stop string's last token) when one did.
        """
        name, warn = name or strategy.describe(), warn or _ignore
        if not self.decodes:
            for note in self.mapping_notes(strategy, num_samples, stop):
                warn(note)
            return self.map(prompts, on_unknown)
        samples = self._generate(prompts, strategy, max_new_tokens, num_samples, seed,
                                 on_unknown, name, stop, warn,
                                 token_ids if token_ids is not None else [])
        for s in samples:
            tokens = self.vocab.split(s.text)
            s.distinct_1, s.distinct_2 = distinct_n(tokens, 1), distinct_n(tokens, 2)
        return samples

    def _generate(self, prompts, strategy, max_new_tokens, num_samples, seed, on_unknown,
                  name, stop, warn, token_ids: list) -> list[Sample]:
        stops = check_stops(stop)
        encoded = self.encode_prompts(prompts, on_unknown)
        for note in self.notes(strategy, num_samples):
            warn(note)
        if strategy.search is not None:
            return self._search(prompts, encoded, strategy, max_new_tokens, num_samples, seed,
                                on_unknown, stops, warn, name, token_ids)
        rows = [ids for ids in encoded for _ in range(num_samples)]
        texts = [RowText(self.vocab, stops) for _ in rows] if stops else None
        tokens, logps = [], LogProbs()
        for chunk, logits in self._steps(rows, strategy, max_new_tokens, seed, texts):
            tokens.append(chunk)
            logps.add(logits, chunk)
        tokens = torch.cat(tokens).T.tolist() if tokens else [[] for _ in rows]     # [B, T]
        logps = logps.rows() or [[] for _ in rows]
        samples = []
        for row, (toks, lps) in enumerate(zip(tokens, logps)):
            text, kept, used = texts[row].final() if texts else finish(self.vocab, toks, ())
            token_ids.append(toks[:used])
            samples.append(Sample(prompts[row // num_samples], text, name, lps[:kept],
                                  sum(lps[:used])))
        return samples

    def stream(self, prompt: str, strategy: Strategy, max_new_tokens: int = 100,
               seed: int = 0, on_unknown: str = "error", *, stop: Iterable[str] | str = (),
               warn: Warn | None = None) -> Iterator[str]:
        """The text of one sample, piece by piece as it is generated; the pieces join to
        what `generate([prompt], ...)` gives with the same seed. Text that may still turn
        out to start a stop string is held back until it cannot. Where a native loop
        generates (a batch-1 LSTM on CPU) the pieces come a chunk of 8 to 64 tokens at a
        time. Strategies with their own search yield their text once, at the end. Errors
        and notes come at once."""
        if not self.decodes or strategy.search is not None:
            sample = self.generate([prompt], strategy, max_new_tokens, 1, seed, on_unknown,
                                   stop=stop, warn=warn)[0]
            return iter([sample.text] if sample.text else [])
        stops = check_stops(stop)
        encoded = self.encode_prompts([prompt], on_unknown)
        for note in self.notes(strategy, 1):
            (warn or _ignore)(note)
        return self._stream(encoded, strategy, max_new_tokens, seed, RowText(self.vocab, stops))

    def mapping_notes(self, strategy: Strategy, num_samples: int, stop) -> list[str]:
        """What a mapping (aligned) model ignores: it gives the most likely output at
        each input position, one per input, whatever the strategy, count and stops."""
        ignored = []
        if strategy.describe() != "greedy":            # what the mapping does anyway
            ignored.append(f"strategy {strategy.describe()}")
        if num_samples > 1:
            ignored.append(f"num_samples {num_samples}")
        if stop:
            ignored.append("stop strings")
        if not ignored:
            return []
        return [f"this model maps each input position to an output (task {self.task!r}): "
                f"it gives the most likely output at every position, once per input, so "
                f"{', '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect"]

    def notes(self, strategy: Strategy, num_samples: int) -> list[str]:
        """Options that have no effect in this call: the strategy's own, and the call's."""
        notes = list(strategy.warnings())
        if strategy.search is None and not strategy.stochastic and num_samples > 1:
            notes.append(f"{strategy.describe()} is deterministic: the {num_samples} samples "
                         f"of each prompt are identical (num_samples has no effect)")
        return notes

    def encode_prompts(self, prompts: list[str], on_unknown: str) -> list[torch.Tensor]:
        """Each prompt's ids [T_i] int64 (errors name the prompt, tokens and positions)."""
        what = "source" if self.task == "seq2seq" else "prompt"
        if not prompts:
            raise GenerationError("no sources to translate (give at least one)" if what == "source"
                                  else "no prompts to continue (give at least one, \"\" is fine)")
        encoded = []
        for i, prompt in enumerate(prompts):
            try:
                ids = self.input_vocab.encode(prompt, on_unknown=on_unknown,
                                              name=self.input_name).long()
            except GenerationError as e:
                raise GenerationError(f"{what} {i + 1} ({prompt!r}): {e}") from None
            if what == "source" and ids.numel() == 0:
                raise GenerationError(f"source {i + 1} ({prompt!r}) has no tokens: the "
                                      f"encoder needs at least one")
            encoded.append(ids)
        return encoded

    def prompt_problems(self, prompts: list[str], on_unknown: str) -> list[tuple[int | None, str]]:
        """What generating from these prompts would refuse, found without generating (a
        run checks its prompts before training): (index, problem) for a prompt holding
        tokens outside the vocabulary (on_unknown "error", or "unk" without <unk>) or
        empty where the vocabulary has no start token; (None, problem) for no prompts."""
        if self.decodes and not prompts:
            return [(None, "no prompts to continue (give at least one, \"\" is fine)"
                     if self.task != "seq2seq" else "no sources to translate")]
        problems = []
        for i, prompt in enumerate(prompts):
            try:
                ids = self.input_vocab.encode(prompt, on_unknown=on_unknown,
                                              name=self.input_name)
                if self.task == "seq2seq" and ids.numel() == 0:
                    problems.append((i, "has no tokens: the encoder needs at least one"))
                if self.task in CAUSAL_TASKS and (ids.numel() == 0 or self.task == "lines"
                                                  and self.vocab.bos_id is not None):
                    start_token(self.vocab)
            except GenerationError as e:
                problems.append((i, str(e)))
        return problems

    def map(self, inputs: list[str], on_unknown: str) -> list[Sample]:
        """Aligned tasks: the most likely target at every input position."""
        out = []
        with torch.inference_mode():
            for text in inputs:
                ids = self.vocab.encode(text, on_unknown=on_unknown).long()
                if ids.numel() == 0:
                    out.append(Sample(text, "", "argmax"))
                    continue
                logits, _ = self.model(ids.unsqueeze(1))                     # [T, 1, V]
                best = logits[:, 0].log_softmax(-1).max(-1)
                out.append(Sample(text, self.vocab.decode(best.indices), "argmax",
                                  best.values.tolist()))
        return out

    # -- the loops --------------------------------------------------------------------------
    def _prime(self, encoded: list[torch.Tensor]) -> tuple[torch.Tensor, State]:
        """One whole-sequence call over every prompt -> (next-token logits [B, V], state).

        An empty prompt, and every prompt of a "lines" model with <bos>, starts with the
        start token, as the model saw in training."""
        if self.task == "seq2seq":
            return self._prime_source(encoded)
        always = self.task == "lines" and self.vocab.bos_id is not None
        rows = [torch.cat([torch.tensor([start_token(self.vocab)]), ids])
                if always or ids.numel() == 0 else ids for ids in encoded]
        device = next(self.model.parameters()).device
        lengths = torch.tensor([len(r) for r in rows])                       # [B]
        ids = torch.nn.utils.rnn.pad_sequence(rows).to(device)               # [Tp, B]
        same = bool((lengths == lengths[0]).all())
        logits, state = self.model(ids, None, None if same else lengths)     # [Tp, B, V]
        return logits[(lengths - 1).to(device), torch.arange(len(rows), device=device)], state

    def _prime_source(self, encoded: list[torch.Tensor]) -> tuple[torch.Tensor, State]:
        """Seq2seq: encode every source in one call, then feed <bos> -> (logits of the
        first target token [B, V], state)."""
        device = next(self.model.parameters()).device
        lengths = torch.tensor([len(r) for r in encoded])                    # [B]
        source = torch.nn.utils.rnn.pad_sequence(encoded).to(device)         # [S, B]
        state = self.model.encode(source, lengths)
        bos = torch.full((1, len(encoded)), self.vocab.bos_id, dtype=torch.long, device=device)
        logits, state = self.model(bos, state)                               # [1, B, V]
        return logits[0], state

    @torch.inference_mode()
    def _steps(self, rows: list[torch.Tensor], strategy: Strategy, max_new_tokens: int,
               seed: int, texts: list[RowText] | None) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield (tokens [n, B] int64, the logits [n, B, V] they were chosen from) for the
        next n steps (one, or a chunk where a native loop runs them: _native_steps),
        until max_new_tokens or every row has ended. `texts` (one per row, when stop
        strings or a stream need the text) are fed each row's tokens until that row ends.
        Log-probabilities are the caller's to compute, if it wants them (LogProbs)."""
        logits, state = self._prime(rows)                                    # [B, V]
        step = self.model.stepper(state)
        device = logits.device
        generator = torch.Generator(device=device).manual_seed(seed)
        choice = strategy.plain_choice
        native = getattr(step, "native_loop", None)
        loop = (native() if native is not None and choice is not None and len(rows) == 1
                and not strategy.needs_history
                and logits.dtype == torch.float32 == torch.get_default_dtype() else None)
        if loop is not None:
            yield from self._native_steps(loop, choice, logits[0], max_new_tokens,
                                          generator, texts[0] if texts else None)
            return
        history = None
        if strategy.needs_history:  # seen [B, V]: which tokens each row's prompt and output hold
            history = History(torch.zeros(logits.shape, dtype=torch.bool, device=device))
            for row, ids in enumerate(rows if self.task != "seq2seq" else ()):  # sources:
                history.seen[row, ids.to(device)] = True          # another vocabulary
        eos = self.vocab.eos_id
        done = torch.zeros(len(rows), dtype=torch.bool, device=device)
        for t in range(max_new_tokens):
            token = (strategy.choose(logits, generator) if history is None      # [B]
                     else strategy.choose(logits, generator, history))
            yield token[None], logits[None]
            if history is not None:
                history.seen.scatter_(1, token[:, None], True)
            if texts is not None:
                for row, tok in enumerate(token.tolist()):
                    if not texts[row].ended:
                        texts[row].add(tok)
                if all(text.ended for text in texts):
                    return
            elif eos is not None:
                if len(rows) == 1:                     # batch 1: one op, not three
                    if int(token) == eos:
                        return
                else:
                    done |= token == eos
                    if bool(done.all()):
                        return
            if t + 1 < max_new_tokens:
                logits = step(token)                                         # [B, V]

    # native chunks double from the first to the last; with stop strings or a stream the
    # last is smaller: a row that ends mid-chunk has stepped on to the chunk's end
    FIRST_CHUNK, LAST_CHUNK, LAST_CHUNK_WITH_TEXT = 8, 256, 64

    def _native_steps(self, loop, choice, logits: torch.Tensor, max_new_tokens: int,
                      generator: torch.Generator, text: RowText | None):
        """_steps at batch 1 through the model's native loop (TokenStepper.native_loop):
        chunks of steps and choices, each one call. The chunks start small, so a stream
        shows its first text soon, and double. A draw takes one uniform number per step, drawn a
        chunk at a time from the same generator: the numbers the per-step path would
        draw (a chunk's unused ones are never needed: the generator serves only this
        loop). logits [V] (the prompt's next-token logits)."""
        logits = logits.clone()                     # [V]; the loop writes the next ones in
        eos, done, size = self.vocab.eos_id, 0, self.FIRST_CHUNK
        while done < max_new_tokens:
            count = min(size, max_new_tokens - done)
            uniforms = (torch.rand(count, generator=generator)                # [count]
                        if choice.temperature > 0 else None)
            tokens, chosen_from = loop.run(logits, count, choice.temperature, uniforms, eos,
                                           done + count < max_new_tokens)  # [n], [n, V]
            done += count
            ended = eos is not None and int(tokens[-1]) == eos
            if text is not None:
                for i, token in enumerate(tokens.tolist()):
                    if text.add(token):
                        tokens, chosen_from, ended = tokens[:i + 1], chosen_from[:i + 1], True
                        break
            yield tokens[:, None], chosen_from[:, None]
            if ended:
                return
            size = min(2 * size, self.LAST_CHUNK if text is None else self.LAST_CHUNK_WITH_TEXT)

    def _stream(self, encoded, strategy, max_new_tokens, seed, row: RowText) -> Iterator[str]:
        shown = 0
        for _ in self._steps(encoded, strategy, max_new_tokens, seed, [row]):
            settled = row.settled()
            if len(settled) > shown:
                yield settled[shown:]
                shown = len(settled)
        text = row.final()[0]
        if len(text) > shown:
            yield text[shown:]

    @torch.inference_mode()
    def _search(self, prompts, encoded, strategy, max_new_tokens, num_samples, seed,
                on_unknown, stops, warn, name, token_ids: list) -> list[Sample]:
        logits, state = self._prime(encoded)
        generator = torch.Generator(device=logits.device).manual_seed(seed)
        decoding = Decoding(self.model, self.vocab, logits, state, num_samples=num_samples,
                            max_new_tokens=max_new_tokens, generator=generator,
                            on_unknown=on_unknown, stops=stops, warn=warn)
        found = strategy.search(decoding)
        if len(found) != len(prompts) or any(len(h) != num_samples for h in found):
            raise GenerationError(f"strategy {name!r} returned {[len(h) for h in found]} "
                                  f"hypotheses per prompt; expected {num_samples} for each of "
                                  f"{len(prompts)} prompt(s) (a bug in the strategy)")
        samples = []
        for prompt, hypotheses in zip(prompts, found):
            for h in hypotheses:
                text, kept, used = finish(self.vocab, h.tokens, stops)
                token_ids.append(list(h.tokens[:used]))
                samples.append(Sample(prompt, text, name, h.logprobs[:kept], h.score))
        return samples
