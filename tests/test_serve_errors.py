"""seqgen serve: every bad request is a 4xx OpenAI error naming the field, never a 500."""
from __future__ import annotations

import sys

import httpx
import pytest
from click.testing import CliRunner

import seqgen
from seqgen.serve import create_app
from seqgen.serve.command import MISSING, serve
from test_serve import LiveServer, write_checkpoint


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("serve-errors") / "model.safetensors")


@pytest.fixture(scope="module")
def model(path):
    return seqgen.Session(entry_points=False).load(path)


@pytest.fixture(scope="module")
def client(model):
    server = LiveServer(create_app(model, max_n=4, max_tokens=100, max_body_bytes=2000,
                                   max_prompt_chars=50))
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
    server.close()


BAD_COMPLETIONS = [
    # (body, status, param)
    ({"strategy": "nope"}, 400, "strategy"),
    ({"model": "gpt-3.5-turbo-instruct"}, 404, "model"),
    ({"strategy": {"type": "top-k", "k": -1}}, 400, "strategy"),
    ({"strategy": {"k": 3}}, 400, "strategy"),
    ({"strategy": 5}, 400, "strategy"),
    ({"strategy": "greedy", "temperature": 0.5}, 400, "strategy"),
    ({"strategy": "greedy", "top_p": 0.5}, 400, "strategy"),
    ({"strategy": {"type": "beam", "width": 2}, "n": 3}, 400, "n"),
    ({"prompt": "snow \u2603"}, 400, "prompt"),
    ({"prompt": ["ok", "ABC"]}, 400, "prompt"),
    ({"prompt": 3}, 400, "prompt"),
    ({"prompt": [1, 2, 3]}, 400, "prompt"),
    ({"prompt": []}, 400, "prompt"),
    ({"prompt": "a" * 51}, 400, "prompt"),
    ({"max_tokens": -1}, 400, "max_tokens"),
    ({"max_tokens": 101}, 400, "max_tokens"),
    ({"max_tokens": "5"}, 400, "max_tokens"),
    ({"max_tokens": 2.5}, 400, "max_tokens"),
    ({"max_tokens": True}, 400, "max_tokens"),
    ({"n": 5}, 400, "n"),
    ({"n": 0}, 400, "n"),
    ({"temperature": "hot"}, 400, "temperature"),
    ({"temperature": 3}, 400, "temperature"),
    ({"temperature": 1e-9}, 400, "temperature"),
    ({"top_p": 1.5}, 400, "top_p"),
    ({"top_p": 0}, 400, "top_p"),
    ({"stop": 3}, 400, "stop"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"stop": [""]}, 400, "stop"),
    ({"seed": "x"}, 400, "seed"),
    ({"seed": 2**70}, 400, "seed"),
    ({"stream": "yes"}, 400, "stream"),
    ({"stream_options": {"include_usage": "y"}}, 400, "stream_options"),
    ({"logprobs": 6}, 400, "logprobs"),
    ({"logprobs": True}, 400, "logprobs"),
    ({"echo": True}, 400, "echo"),
    ({"suffix": "x"}, 400, "suffix"),
    ({"presence_penalty": 0.5}, 400, "presence_penalty"),
    ({"logit_bias": {"1": 5}}, 400, "logit_bias"),
    ({"best_of": 3}, 400, "best_of"),
    ({"user": 5}, 400, "user"),
    ({"model": 5}, 400, "model"),
]


@pytest.mark.parametrize("body, status, param", BAD_COMPLETIONS)
@pytest.mark.parametrize("stream", [False, True])
def test_bad_completions_are_4xx_naming_the_field(client, body, status, param, stream):
    r = client.post("/v1/completions", json={**body, "stream": stream} if "stream" not in body
                    else body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]
    assert "Traceback" not in r.text


@pytest.mark.parametrize("content, status", [
    (b"{", 400), (b"", 400), (b"[1]", 400), (b'"text"', 400), (b"\xff\xfe", 400),
    (b'{"max_tokens": NaN}', 400), (b'{"prompt": "' + b"a" * 3000 + b'"}', 413),
])
def test_malformed_bodies(client, content, status):
    r = client.post("/v1/completions", content=content)
    assert r.status_code == status and r.json()["error"]["param"] is None


def test_unknown_fields_are_ignored(client):
    r = client.post("/v1/completions", json={"max_tokens": 2, "user": "me", "whatever": [1],
                                             "echo": False, "best_of": 1, "logit_bias": {},
                                             "frequency_penalty": 0})
    assert r.status_code == 200


@pytest.mark.parametrize("body, param", [
    ({}, "text"), ({"text": 3}, "text"), ({"text": "a"}, "text"), ({"text": "A b"}, "text"),
    ({"text": "a" * 51}, "text"), ([], None),
])
def test_bad_score_requests(client, body, param):
    r = client.post("/v1/score", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_unknown_routes_and_methods(client):
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/nothing").json()["error"]["type"] == "not_found_error"
    assert client.get("/v1/completions").status_code == 405
    assert client.get("/v1/models/other").status_code == 404


def test_create_app_refuses_unknown_limits(model):
    with pytest.raises(TypeError, match="max_tokenz"):
        create_app(model, max_tokenz=3)
    with pytest.raises(ValueError, match="max_n"):
        create_app(model, max_n=0)


def test_command_without_the_serve_extra(monkeypatch, path):
    monkeypatch.setitem(sys.modules, "uvicorn", None)      # import uvicorn -> ImportError
    result = CliRunner().invoke(serve, [path])
    assert result.exit_code == 2 and MISSING in result.output
