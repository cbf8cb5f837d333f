"""Contract checks for decoding-strategy plugins: the rules of `seqgen.Strategy`.

    from seqgen.testing import check_strategy

    def test_my_strategy_keeps_the_contract():
        check_strategy(MyStrategy, options={"k": 5})

`choose` is checked for every strategy, including those that define `search`: the
generator calls `search` instead, but the trainer feeds a model through `choose` whenever
the training strategy's `teacher_ratio` is below 1 (and the base class's is 0), so any
strategy may have to pick one token per row (the built-in `beam` picks greedily, and
`teacher-forcing` with its `free` rule). A strategy with `search` also has that search
run on a tiny random model, and its hypotheses checked.

A broken property raises AssertionError whose message starts with its name, e.g.
"strategy contract 'masked' failed for MyStrategy(**{}): ...".
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..decoding import Decoding
from ..errors import SeqgenError
from ..state import select_batch
from ..strategy import Hypothesis, Strategy
from ..vocab import EOS, Vocab
from .contract import contract_property

Factory = Callable[..., Strategy]
# (batch, vocabulary) sizes that `choose` must handle: one row, one token, both, more.
SIZES = ((4, 7), (1, 7), (4, 1), (1, 1), (3, 50))
SEEDS = 16  # generator seeds tried where a choice is random


def check_strategy(factory: Factory, *, options: dict | None = None, seed: int = 0,
                   device: str | torch.device = "cpu") -> None:
    """Build `factory(**options)` and check every contract property.

    Properties:
      "type":          a seqgen.Strategy; `stochastic` and `needs_history` bools,
                       `search` None or callable
      "describe":      describe() returns a non-empty str
      "warnings":      warnings() returns a list of str
      "teacher_ratio": teacher_ratio(epoch) is a number in [0, 1] for epochs 0..20
      "choose":        choose(logits [B, V]) returns int64 ids [B] in 0..V-1 on the logits'
                       device, for B and V of 1 and more, with and without a generator,
                       and under torch.inference_mode (as generation calls it); with
                       `needs_history`, also when given a seqgen.History, and (as the
                       trainer calls it) without one
      "input":         choose leaves its logits (and history) unchanged: it may not edit
                       them in place
      "masked":        a token whose logit is -inf is never chosen (a row with one finite
                       logit gets that token), over 16 generator seeds
      "generator":     the same generator seed gives the same ids, whatever the global
                       RNG; a `stochastic` strategy gives different ids for some of 16
                       seeds on near-flat logits (it draws from the generator it is given)
      "determinism":   a strategy with `stochastic` False gives the same ids for any
                       generator, or none
      "search":        only for strategies with `search`: run on a tiny random model (2
                       prompts, 1 then 2 samples, a vocabulary with <eos>), it returns,
                       per prompt, `num_samples` Hypothesis objects, best (highest score)
                       first, whose tokens are in the vocabulary and end at the first
                       <eos>, whose logprobs are each token's log-probability under the
                       model, the same for the same generator seed, with the decoding's
                       logits and state left unchanged. A search may refuse options it
                       cannot serve with a seqgen.SeqgenError (teacher-forcing without a
                       `reference` does): pass options it can search with to check it.
    The global RNG is left as it was.
    """
    options = dict(options or {})
    label = f"{getattr(factory, '__name__', type(factory).__name__)}(**{options})"
    device = torch.device(device)
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        with _property("type", label):
            strategy = factory(**options)
            _check_type(strategy)
        with _property("describe", label):
            text = strategy.describe()
            assert isinstance(text, str) and text, (
                f"describe() returned {text!r}, not a non-empty str")
        with _property("warnings", label):
            notes = strategy.warnings()
            assert isinstance(notes, list) and all(isinstance(n, str) for n in notes), (
                f"warnings() returned {notes!r}, not a list of str")
        with _property("teacher_ratio", label):
            _check_teacher_ratio(strategy)
        with _property("choose", label):
            _check_choose(strategy, device, seed)
        with _property("input", label):
            _check_input(strategy, device, seed)
        with _property("masked", label):
            _check_masked(strategy, device, seed)
        with _property("generator", label):
            _check_generator(strategy, device, seed)
        if not strategy.stochastic:
            with _property("determinism", label):
                _check_determinism(strategy, device, seed)
        if strategy.search is not None:
            with _property("search", label):
                _check_search(strategy, device, seed)


def _property(name: str, label: str):
    return contract_property("strategy", name, label)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _logits(batch: int, vocab: int, device: torch.device, seed: int, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, vocab, generator=g) * scale).to(device)


def _histories(strategy: Strategy, batch: int, vocab: int, device: torch.device, seed: int):
    """The history arguments to try: None always, and a random History when needed."""
    if not strategy.needs_history:
        return [None]
    from ..processors import History
    g = torch.Generator().manual_seed(seed)
    return [None, History(seen=(torch.rand(batch, vocab, generator=g) < 0.4).to(device))]


def _choose(strategy: Strategy, logits: torch.Tensor, generator, history=None) -> torch.Tensor:
    """choose, with the result checked for type, shape, range and device."""
    if history is None:
        ids = strategy.choose(logits, generator)
    else:
        ids = strategy.choose(logits, generator, history)
    batch, vocab = logits.shape
    assert isinstance(ids, torch.Tensor), f"choose returned {type(ids).__name__}, not a tensor"
    assert ids.dtype == torch.int64, f"choose returned {ids.dtype} ids; they must be torch.int64"
    assert tuple(ids.shape) == (batch,), (
        f"choose returned ids of shape {tuple(ids.shape)} for logits [{batch}, {vocab}]; "
        f"expected [{batch}]")
    assert ids.device == logits.device, (
        f"choose returned ids on {ids.device} for logits on {logits.device}")
    bad = [i for i in ids.tolist() if not 0 <= i < vocab]
    assert not bad, f"choose returned ids {bad} outside 0..{vocab - 1}"
    return ids


def _check_type(strategy) -> None:
    assert isinstance(strategy, Strategy), (
        f"factory returned {type(strategy).__name__}, not a seqgen.Strategy")
    for flag in ("stochastic", "needs_history"):
        value = getattr(strategy, flag, None)
        assert isinstance(value, bool), f"{flag} is {value!r}, not a bool"
    assert strategy.search is None or callable(strategy.search), (
        f"search is {strategy.search!r}: None or a method search(decoding)")


def _check_teacher_ratio(strategy: Strategy) -> None:
    for epoch in range(21):
        ratio = strategy.teacher_ratio(epoch)
        assert isinstance(ratio, (int, float)) and not isinstance(ratio, bool), (
            f"teacher_ratio({epoch}) returned {ratio!r}, not a number")
        assert 0.0 <= ratio <= 1.0, f"teacher_ratio({epoch}) is {ratio}, outside [0, 1]"


def _check_choose(strategy: Strategy, device: torch.device, seed: int) -> None:
    for k, (batch, vocab) in enumerate(SIZES):
        logits = _logits(batch, vocab, device, seed + k)
        for history in _histories(strategy, batch, vocab, device, seed + k):
            _choose(strategy, logits, _generator(device, seed), history)
            _choose(strategy, logits, None, history)
            with torch.inference_mode():
                _choose(strategy, logits.clone(), _generator(device, seed), history)


def _check_input(strategy: Strategy, device: torch.device, seed: int) -> None:
    logits = _logits(4, 7, device, seed)
    logits[0, 3] = float("-inf")
    before = logits.clone()
    for history in _histories(strategy, 4, 7, device, seed):
        seen = None if history is None else history.seen.clone()
        for s in range(4):
            _choose(strategy, logits, _generator(device, seed + s), history)
            assert torch.equal(logits, before), (
                "choose changed the logits it was given; work on a copy (x / t, not "
                "x.div_(t))")
            assert history is None or torch.equal(history.seen, seen), (
                "choose changed the history it was given")


def _check_masked(strategy: Strategy, device: torch.device, seed: int) -> None:
    batch, vocab = 6, 9
    g = torch.Generator().manual_seed(seed)
    masked = torch.rand(batch, vocab, generator=g) < 0.5           # [B, V] True: -inf
    masked[:, 0] = False                                             # a finite one per row
    masked[1, :] = True                                              # row 1: only the last
    masked[1, -1] = False
    masked[2, :] = False                                             # row 2: nothing masked
    masked[2, 4] = True                                              # ...but one token
    logits = _logits(batch, vocab, device, seed, scale=1.0)
    logits = logits.masked_fill(masked.to(device), float("-inf"))
    for history in _histories(strategy, batch, vocab, device, seed):
        for s in range(SEEDS):
            ids = _choose(strategy, logits, _generator(device, seed + s), history).cpu()
            for row, token in enumerate(ids.tolist()):
                assert not masked[row, token], (
                    f"choose picked token {token} of row {row}, whose logit is -inf "
                    f"(generator seed {seed + s}{'' if history is None else ', with history'})")


def _check_generator(strategy: Strategy, device: torch.device, seed: int) -> None:
    logits = _logits(8, 7, device, seed, scale=0.1)                 # near-flat: all likely
    runs = []
    for s in range(SEEDS):
        torch.manual_seed(1000 + s)                                 # the global RNG moves
        first = _choose(strategy, logits, _generator(device, seed + s))
        torch.manual_seed(2000 + s)
        again = _choose(strategy, logits, _generator(device, seed + s))
        assert torch.equal(first, again), (
            f"generator seed {seed + s} gave {first.tolist()}, then {again.tolist()}; "
            "draw random numbers only from the generator passed to choose, never from "
            "the global RNG")
        runs.append(first)
    if strategy.stochastic:
        assert any(not torch.equal(runs[0], r) for r in runs[1:]), (
            f"stochastic is True but {SEEDS} generator seeds give the same ids "
            f"{runs[0].tolist()} on near-flat logits; draw with the generator passed to "
            "choose (or set stochastic False for a deterministic strategy)")


def _check_determinism(strategy: Strategy, device: torch.device, seed: int) -> None:
    logits = _logits(8, 7, device, seed, scale=1.0)
    reference = _choose(strategy, logits, None)
    for s in range(4):
        torch.manual_seed(3000 + s)
        ids = _choose(strategy, logits, _generator(device, seed + s))
        assert torch.equal(ids, reference), (
            f"stochastic is False, but generator seed {seed + s} gave {ids.tolist()} and no "
            f"generator gave {reference.tolist()}; set stochastic True if choose draws "
            "random numbers")


# -- search ---------------------------------------------------------------------------------
class _TinyModel(nn.Module):
    """A seeded random recurrent language model: ids [T, N] -> logits [T, N, V], with a
    state [1, N, H] (rows on dim 1, as the built-in cells' states)."""

    def __init__(self, vocab_size: int, hidden: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = nn.Parameter(torch.randn(vocab_size, hidden, generator=g))
        self.recur = nn.Parameter(torch.randn(hidden, hidden, generator=g) / hidden ** 0.5)
        self.out = nn.Parameter(torch.randn(hidden, vocab_size, generator=g) * 2)

    def forward(self, ids: torch.Tensor, state: torch.Tensor | None = None):
        steps, rows = ids.shape
        h = state[0] if state is not None else self.embed.new_zeros(rows, self.recur.shape[0])
        outputs = []
        for t in range(steps):
            h = torch.tanh(self.embed[ids[t].long()] + h @ self.recur)   # [N, H]
            outputs.append(h @ self.out)                                 # [N, V]
        return torch.stack(outputs), h[None]


SEARCH_TOKENS = list("abcde")   # with <eos>: V = 6; teacher-forcing references use these


def _decoding(model, vocab, device, seed, num_samples, warnings: list) -> Decoding:
    prompts = torch.tensor([[1, 2, 3], [4, 5, 1]], device=device).t()   # [T=3, B=2]
    with torch.inference_mode():
        logits, state = model(prompts)
    return Decoding(model, vocab, logits[-1], state, num_samples=num_samples,
                    max_new_tokens=6, generator=_generator(device, seed), on_unknown="error",
                    stops=(), warn=warnings.append)


def _check_search(strategy: Strategy, device: torch.device, seed: int) -> None:
    vocab = Vocab(SEARCH_TOKENS, specials=(EOS,))
    model = _TinyModel(len(vocab), seed=seed).to(device)
    for num_samples in (1, 2):
        found = _search(strategy, model, vocab, device, seed, num_samples)
        if found is None:
            continue   # refused with a SeqgenError: these options cannot search
        again = _search(strategy, model, vocab, device, seed, num_samples)
        assert again is not None and _summary(found) == _summary(again), (
            f"num_samples={num_samples}: two searches with the same generator seed found "
            f"{_summary(found)} and {_summary(again)}")


def _search(strategy, model, vocab, device, seed, num_samples):
    warnings: list[str] = []
    decoding = _decoding(model, vocab, device, seed, num_samples, warnings)
    logits, state = decoding.logits.clone(), decoding.state.clone()
    try:
        with torch.inference_mode():
            found = strategy.search(decoding)
    except SeqgenError:
        return None
    where = f"num_samples={num_samples}"
    assert torch.equal(decoding.logits, logits) and torch.equal(decoding.state, state), (
        f"{where}: search changed decoding.logits or decoding.state in place")
    assert all(isinstance(w, str) for w in warnings), f"{where}: warned {warnings!r}, not str"
    assert isinstance(found, list) and len(found) == 2, (
        f"{where}: search returned {type(found).__name__} of "
        f"{len(found) if hasattr(found, '__len__') else '?'} item(s); expected a list with "
        "one list of hypotheses per prompt (2 prompts)")
    for b, hypotheses in enumerate(found):
        assert isinstance(hypotheses, list) and len(hypotheses) == num_samples, (
            f"{where}: prompt {b} got {hypotheses!r}; expected a list of {num_samples} "
            "Hypothesis objects")
        scores = []
        for h in hypotheses:
            _check_hypothesis(h, model, decoding, b, len(vocab), vocab.eos_id, where)
            scores.append(h.score)
        assert scores == sorted(scores, reverse=True), (
            f"{where}: prompt {b}'s hypotheses have scores {scores}; best (highest) first")
    return found


def _check_hypothesis(h, model, decoding: Decoding, row: int, vocab_size: int, eos: int,
                      where: str) -> None:
    where = f"{where}, prompt {row}"
    assert isinstance(h, Hypothesis), f"{where}: found a {type(h).__name__}, not a Hypothesis"
    tokens, logprobs = list(h.tokens), list(h.logprobs)
    assert all(isinstance(t, int) and 0 <= t < vocab_size for t in tokens), (
        f"{where}: tokens {tokens} must be ints in 0..{vocab_size - 1}")
    assert eos not in tokens[:-1], f"{where}: tokens {tokens} go on after <eos> (id {eos})"
    assert len(logprobs) == len(tokens), (
        f"{where}: {len(logprobs)} logprobs for {len(tokens)} tokens; one per token")
    assert isinstance(h.score, (int, float)) and not math.isnan(h.score), (
        f"{where}: score {h.score!r} is not a number")
    # Replay the tokens: each logprob is log p(token | prompt, earlier tokens).
    with torch.inference_mode():
        logits = decoding.logits[row:row + 1]                           # [1, V]
        state = select_batch(decoding.state, torch.tensor([row], device=logits.device))
        for i, token in enumerate(tokens):
            want = float(logits.float().log_softmax(-1)[0, token])
            assert abs(logprobs[i] - want) <= 1e-4 * max(1.0, abs(want)), (
                f"{where}: logprobs[{i}] is {logprobs[i]:.6g} but token {token} has "
                f"log-probability {want:.6g} under the model")
            step, state = model(torch.tensor([[token]], device=logits.device), state)
            logits = step[0]


def _summary(found) -> list:
    return [[(list(h.tokens), round(float(h.score), 6)) for h in hs] for hs in found]
