"""LoadedModel.astream: stream()'s pieces for asyncio code, made in a worker thread per call.

Plain `asyncio.run` in each test. Waits are bounded waits on a condition, never sleeps
that hope something has happened by then.
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

import seqgen
from test_generate_models import random_checkpoint

WAIT = 20.0      # seconds any condition below may take before the test fails


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from conftest import TINY_SPEC
    path = random_checkpoint(tmp_path_factory.mktemp("c") / "model.safetensors", TINY_SPEC)
    return seqgen.load(path, entry_points=False)


async def collect(pieces) -> list[str]:
    return [piece async for piece in pieces]


async def until(condition, what: str) -> None:
    """Let the loop run until `condition()` holds; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.005)


def workers() -> list[threading.Thread]:
    """astream's worker threads still alive, after a bounded wait for each to end (one
    that has handed over its last piece may take a moment to return)."""
    alive = [t for t in threading.enumerate() if t.name == "seqgen-astream"]
    for t in alive:
        t.join(WAIT)
    return [t for t in alive if t.is_alive()]


def instrument(model, monkeypatch, before_piece=None) -> list[int]:
    """Count the pieces the worker pulls from the synchronous stream (and run
    `before_piece()` in the worker before making each one)."""
    pulled = []
    stream = model.generator.stream

    def counted(*args, **kwargs):
        for i, piece in enumerate(stream(*args, **kwargs)):
            if before_piece is not None:
                before_piece()
            pulled.append(i)
            yield piece
    monkeypatch.setattr(model.generator, "stream", counted)
    return pulled


@pytest.mark.parametrize("args, kwargs", [
    (("the ", "greedy", 40), {}),
    (("a", {"type": "top-k", "k": 5}, 60, 3), {}),
    (("the ", "random", 80, 7), {"stop": ["e d"]}),
    (("", "beam", 10), {}),                       # a search strategy: one piece, at the end
])
def test_pieces_are_streams_pieces(model, args, kwargs):
    expected = list(model.stream(*args, **kwargs))
    assert expected
    assert asyncio.run(collect(model.astream(*args, **kwargs))) == expected
    assert not workers()


def test_the_loop_runs_while_a_piece_is_made(model, monkeypatch):
    """Each piece waits, in the worker, for a tick of a coroutine on the event loop: were
    the piece made on the loop's thread, the loop could not tick and the wait would fail."""
    ticked = threading.Event()

    def wait_for_a_tick():
        assert ticked.wait(WAIT), "the event loop was blocked while a piece was made"
        ticked.clear()
    instrument(model, monkeypatch, before_piece=wait_for_a_tick)

    async def main():
        stream = asyncio.ensure_future(collect(model.astream("the ", "greedy", 30)))
        ticks = 0
        while not stream.done():
            ticked.set()
            ticks += 1
            await asyncio.sleep(0)
        return await stream, ticks

    pieces, ticks = asyncio.run(main())
    monkeypatch.undo()
    assert pieces == list(model.stream("the ", "greedy", 30))
    assert ticks > len(pieces)


def test_two_calls_interleave_in_one_loop(model):
    """Lockstep: each consumer takes its piece i only once the other has taken its piece
    i - 1, so both calls are open and advancing at once."""
    a_args, b_args = ("the ", "random", 25, 1), ("a", "greedy", 25)
    expected = {"a": list(model.stream(*a_args)), "b": list(model.stream(*b_args))}
    order = []

    async def consume(name, args, other):
        got = []
        async for piece in model.astream(*args):
            i = len(got)
            await until(lambda: i == 0 or len([o for o in order if o[0] == other]) >= min(
                i, len(expected[other])), f"{other}'s piece {i - 1}")
            got.append(piece)
            order.append((name, i))
        return got

    async def main():
        return await asyncio.gather(consume("a", a_args, "b"), consume("b", b_args, "a"))

    a, b = asyncio.run(main())
    assert (a, b) == (expected["a"], expected["b"])
    names = [name for name, _ in order]
    first_b, last_a = names.index("b"), len(names) - 1 - names[::-1].index("a")
    assert first_b < last_a                      # b started before a was done: interleaved
    assert not workers()


def test_breaking_out_early_stops_the_worker(model, monkeypatch):
    pulled = instrument(model, monkeypatch)
    baseline = threading.active_count()

    async def main():
        taken = 0
        async for _ in model.astream("the ", "random", 2000, 5):
            taken += 1
            if taken == 3:
                break
        await until(lambda: threading.active_count() == baseline, "the worker to end")
        return taken

    assert asyncio.run(main()) == 3
    assert len(pulled) <= 4                      # made on demand: at most one piece ahead
    assert not workers()


def test_cancelling_the_consumer_stops_the_worker(model, monkeypatch):
    pulled = instrument(model, monkeypatch)
    baseline = threading.active_count()
    got = []

    async def consume():
        async for piece in model.astream("the ", "random", 2000, 5):
            got.append(piece)

    async def main():
        task = asyncio.ensure_future(consume())
        await until(lambda: len(got) >= 2, "two pieces")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: threading.active_count() == baseline, "the worker to end")

    asyncio.run(main())
    assert len(pulled) <= len(got) + 1 < 2000
    assert not workers()


def test_an_error_in_the_worker_reaches_the_consumer(model, monkeypatch):
    def failing(*args, **kwargs):
        yield "ab"
        yield "c"
        raise RuntimeError("the model fell over")
    monkeypatch.setattr(model.generator, "stream", failing)
    got = []

    async def main():
        with pytest.raises(RuntimeError, match="the model fell over"):
            async for piece in model.astream("the "):
                got.append(piece)

    asyncio.run(main())
    assert got == ["ab", "c"]
    assert not workers()


def test_argument_errors_raise_at_the_first_anext(model):
    async def main():
        pieces = model.astream("the \x00", "greedy", 10)       # no error yet: nothing ran
        with pytest.raises(seqgen.GenerationError, match="prompt 1"):
            await pieces.__anext__()
        bad_strategy = model.astream("the ", "no-such-strategy")
        with pytest.raises(seqgen.SpecError, match="no-such-strategy"):
            await bad_strategy.__anext__()
        with pytest.raises(seqgen.SeqgenError):
            await model.astream("the ", "greedy", -1).__anext__()

    asyncio.run(main())
    assert not workers()
