"""seqgen serve: a real uvicorn server on a free 127.0.0.1 port, real HTTP clients.

The model is a tiny random-weight GRU written as a checkpoint (no training), so the
whole file runs in seconds. Bad input is in test_serve_errors.py.
"""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time

import httpx
import openai
import pytest
import torch
import uvicorn

import seqgen
from seqgen import checkpoint as ckpt
from seqgen.serve import create_app

CHARS = "\n .,abcdefghijklmnopqrstuvwxyz"
NAME = "tiny-serve"


def write_checkpoint(path, cell: str = "gru", hidden: int = 16) -> str:
    """A random-weight model saved as a seqgen checkpoint (as a finished run's)."""
    session = seqgen.Session(entry_points=False)
    spec = session.resolve({"name": NAME, "dataset": {"type": "synthetic"},
                            "model": {"cell": {"type": cell, "hidden_size": hidden}}})
    vocab = seqgen.Vocab.from_text(CHARS)
    torch.manual_seed(0)
    model = session.build_model(spec, len(vocab))
    ckpt.save(path, ckpt.Checkpoint(spec=spec, vocab=vocab, task="lm", tensors={
        "model." + k: v for k, v in model.state_dict().items()}))
    return str(path)


class LiveServer:
    """uvicorn serving `app` in a thread, on a socket bound here (no port race)."""

    def __init__(self, app):
        self.app = app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)

    @property
    def engine(self):
        return self.app.state.server.engine

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("serve") / "model.safetensors")


@pytest.fixture(scope="module")
def loaded(checkpoint_path):
    return seqgen.Session(entry_points=False).load(checkpoint_path)


@pytest.fixture(scope="module")
def live(loaded):
    server = LiveServer(create_app(loaded, max_tokens=200_000))
    yield server
    server.close()


@pytest.fixture
def client(live):
    with httpx.Client(base_url=live.url, timeout=30) as c:
        yield c


def sse(lines) -> list:
    """Parse `data: ...` lines: JSON chunks, then the literal [DONE]."""
    out = []
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def stream(client, body) -> list:
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return sse(r.iter_lines())


def streamed_text(chunks) -> dict:
    texts = {}
    for c in chunks[:-1]:
        for choice in c["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    return texts


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- completions ----------------------------------------------------------------------------
def test_completion_has_the_openai_shape(client):
    body = client.post("/v1/completions", json={"model": NAME, "prompt": "the ",
                                                "max_tokens": 12, "seed": 1, "user": "x"}).json()
    assert body["object"] == "text_completion" and body["model"] == NAME
    assert body["id"].startswith("cmpl-") and isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["logprobs"] is None
    assert choice["finish_reason"] == "length" and len(choice["text"]) == 12
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 12, "total_tokens": 16}


def test_defaults_to_16_tokens_and_an_empty_prompt(client):
    choice = client.post("/v1/completions", json={}).json()["choices"][0]
    assert len(choice["text"]) == 16


@pytest.mark.parametrize("fields, strategy", [
    ({}, "random"),
    ({"temperature": 0}, "greedy"),
    ({"temperature": 0.7, "top_p": 0.9}, {"type": "temperature", "temperature": 0.7, "top_p": 0.9}),
    ({"strategy": {"type": "top-k", "k": 3}}, {"type": "top-k", "k": 3}),
    ({"strategy": {"type": "top-p", "p": 0.8, "repetition_penalty": 1.3}},
     {"type": "top-p", "p": 0.8, "repetition_penalty": 1.3}),
    ({"strategy": {"type": "beam", "width": 3}}, {"type": "beam", "width": 3}),
])
def test_text_is_what_loaded_model_generates_with_the_same_seed(client, loaded, fields, strategy):
    body = {"prompt": "a cat", "max_tokens": 30, "seed": 7, **fields}
    got = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert got == loaded.generate("a cat", strategy, 30, seed=7)[0].text


def test_streaming_chunks(client):
    body = {"prompt": "the ", "max_tokens": 25, "seed": 3, "logprobs": 2,
            "stream_options": {"include_usage": True}}
    chunks = stream(client, body)
    assert chunks[-1] == "[DONE]"
    usage = chunks[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 25
    text = ""
    for c in chunks[:-2]:
        assert c["object"] == "text_completion" and c["model"] == NAME
        [choice] = c["choices"]
        lp = choice["logprobs"]
        assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
        assert "".join(lp["tokens"]) == choice["text"]
        assert all(len(t) == 2 for t in lp["top_logprobs"])
        text += choice["text"]
    assert chunks[-3]["choices"][0]["finish_reason"] == "length"
    whole = client.post("/v1/completions", json=body).json()["choices"][0]
    assert text == whole["text"]


def test_logprobs(client, loaded):
    body = {"prompt": "ab", "max_tokens": 10, "temperature": 0, "logprobs": 3}
    lp = client.post("/v1/completions", json=body).json()["choices"][0]["logprobs"]
    assert lp["text_offset"] == list(range(2, 12))
    for token, logprob, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        best = max(top, key=top.get)             # greedy: the chosen token is the best one
        assert len(top) == 3 and best == token and top[best] == pytest.approx(logprob)
    sample = loaded.generate("ab", "greedy", 10)[0]
    assert lp["token_logprobs"] == pytest.approx(sample.logprobs, abs=1e-5)
    zero = client.post("/v1/completions", json={**body, "logprobs": 0}).json()
    assert zero["choices"][0]["logprobs"]["top_logprobs"] == [{}] * 10


def test_stop_strings_cut_the_text(client):
    body = {"prompt": "x", "max_tokens": 300, "seed": 5, "stop": ["e", "a"], "logprobs": 1}
    choice = client.post("/v1/completions", json=body).json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "e" not in choice["text"] and "a" not in choice["text"]
    assert "".join(choice["logprobs"]["tokens"]) == choice["text"]
    chunks = stream(client, body)
    assert streamed_text(chunks)[0] == choice["text"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_n_and_several_prompts(client):
    body = {"prompt": ["the ", "a "], "n": 3, "max_tokens": 20, "seed": 11}
    choices = client.post("/v1/completions", json=body).json()["choices"]
    assert [c["index"] for c in choices] == list(range(6))
    assert len({c["text"] for c in choices}) == 6       # each choice its own generator
    streamed = streamed_text(stream(client, body))
    assert streamed == {c["index"]: c["text"] for c in choices}
    # choice i of a request draws with seed + i: choice 1 is the next seed's choice 0
    one = client.post("/v1/completions", json={"prompt": "the ", "max_tokens": 20,
                                               "seed": 12}).json()["choices"][0]["text"]
    assert one == choices[1]["text"]


def test_beam_streams_as_one_chunk_per_choice(client, loaded):
    body = {"prompt": "the ", "max_tokens": 15, "n": 2, "strategy": {"type": "beam", "width": 3},
            "logprobs": 1}
    chunks = stream(client, body)
    assert len(chunks) == 3 and chunks[-1] == "[DONE]"
    want = [s.text for s in loaded.generate("the ", {"type": "beam", "width": 3}, 15, 2)]
    assert [c["choices"][0]["text"] for c in chunks[:2]] == want
    assert all(len(c["choices"][0]["logprobs"]["top_logprobs"]) == 15 for c in chunks[:2])


def test_same_text_alone_or_batched_with_63_others(live, client):
    """64 requests of mixed strategies and seeds at once: each gives the text it gives
    when served alone, and they did share forward steps."""
    strategies = [{}, {"temperature": 0.8}, {"temperature": 0},
                  {"strategy": {"type": "top-k", "k": 4}},
                  {"strategy": {"type": "top-p", "p": 0.9, "repetition_penalty": 1.5}}]
    bodies = [{"prompt": ["the ", "a", "", "cat "][i % 4], "max_tokens": 40 + i % 7,
               "seed": i, **strategies[i % 5]} for i in range(64)]
    alone = [client.post("/v1/completions", json=b).json()["choices"][0]["text"]
             for b in bodies]
    before = live.engine.largest_batch

    async def together():
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as c:
            async def one(i, b):
                if i % 2:
                    async with c.stream("POST", "/v1/completions",
                                        json={**b, "stream": True}) as r:
                        return streamed_text(sse([l async for l in r.aiter_lines()]))[0]
                return (await c.post("/v1/completions", json=b)).json()["choices"][0]["text"]
            return await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))

    assert asyncio.run(together()) == alone
    assert live.engine.largest_batch > max(before, 8)


def test_disconnect_frees_the_rows(live, client):
    before = live.engine.steps
    with client.stream("POST", "/v1/completions",
                       json={"prompt": "the ", "max_tokens": 200_000, "stream": True}) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: {") for line in got)
        wait_for(lambda: live.engine.active_rows == 1)
    wait_for(lambda: client.get("/health").json()["active_rows"] == 0)
    assert live.engine.steps - before < 200_000


def test_a_client_that_hangs_up_before_its_whole_completion_frees_the_rows(live, client):
    before = live.engine.steps
    with pytest.raises(httpx.ReadTimeout):             # the client gives up and closes
        client.post("/v1/completions", json={"prompt": "the ", "max_tokens": 200_000},
                    timeout=httpx.Timeout(30, read=1.0))
    wait_for(lambda: client.get("/health").json()["active_rows"] == 0)
    assert live.engine.steps - before < 200_000


def test_rows_beyond_the_limit_wait_and_then_429(loaded):
    server = LiveServer(create_app(loaded, max_active_rows=2, max_waiting=1, max_tokens=10**6))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            long = {"prompt": "a", "max_tokens": 10**6, "n": 2, "stream": True}
            with c.stream("POST", "/v1/completions", json=long) as first:
                lines = first.iter_lines()     # (dropping the iterator closes the connection)
                next(lines)
                results = {}
                waiter = threading.Thread(target=lambda: results.update(
                    r=c.post("/v1/completions", json={"max_tokens": 3})))
                waiter.start()
                wait_for(lambda: server.engine.waiting_count == 1)
                busy = c.post("/v1/completions", json={"max_tokens": 3})
                assert busy.status_code == 429
                assert busy.json()["error"]["type"] == "rate_limit_error"
            waiter.join(20)       # the long stream left: the waiting request ran
            assert results["r"].status_code == 200
            assert len(results["r"].json()["choices"][0]["text"]) == 3
    finally:
        server.close()


# -- other endpoints ------------------------------------------------------------------------
def test_score(client, loaded):
    body = client.post("/v1/score", json={"text": "the cat sat."}).json()
    assert body["tokens"] == list("the cat sat.") and body["token_logprobs"][0] is None
    lps = body["token_logprobs"][1:]
    assert body["loss"] == pytest.approx(-sum(lps) / len(lps))
    assert body["perplexity"] == pytest.approx(2.718281828 ** body["loss"])
    score = loaded.score("the cat sat.")
    loss = score["loss"] if isinstance(score, dict) else score.loss
    assert body["loss"] == pytest.approx(loss, abs=1e-4)
    forced = loaded.generate("t", {"type": "teacher-forcing", "reference": "he cat sat."}, 11)
    assert lps == pytest.approx(forced[0].logprobs, abs=1e-4)


def test_models_health_and_playground(client):
    assert client.get("/v1/models").json()["data"][0]["id"] == NAME
    assert client.get(f"/v1/models/{NAME}").json()["object"] == "model"
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["active_rows"] == 0
    page = client.get("/")
    from seqgen.serve.app import PLAYGROUND
    if PLAYGROUND.is_file():
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    else:
        assert page.status_code == 404 and "error" in page.json()


# -- real clients ---------------------------------------------------------------------------
def test_openai_client(live, loaded):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == [NAME]
    done = client.completions.create(model=NAME, prompt="the ", max_tokens=8, seed=2,
                                     temperature=0, logprobs=2)
    assert done.choices[0].text == loaded.generate("the ", "greedy", 8)[0].text
    assert len(done.choices[0].logprobs.top_logprobs) == 8 and done.usage.completion_tokens == 8
    pieces = client.completions.create(model=NAME, prompt="the ", max_tokens=8, seed=2,
                                       stream=True, extra_body={"strategy": "greedy"})
    assert "".join(p.choices[0].text for p in pieces) == done.choices[0].text
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=NAME, prompt="the ", extra_body={"strategy": "nope"})
    assert e.value.body["param"] == "strategy" and "nope" in e.value.body["message"]


def test_curl(live):
    body = json.dumps({"prompt": "the ", "max_tokens": 5, "stream": True, "seed": 1})
    out = subprocess.run(["curl", "-sS", "-N", "-H", "Content-Type: application/json",
                          "-d", body, live.url + "/v1/completions"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    chunks = sse(out.splitlines())
    assert chunks[-1] == "[DONE]" and len(streamed_text(chunks)[0]) == 5
