"""The browser playground (seqgen/serve/playground.html), driven in headless Chromium
against a real `seqgen serve` of a tiny trained run.

Client: Selenium with Debian's chromium (tests/browser.py).

The screenshot is kept at .test-artifacts/playground.png under the repository root."""
from __future__ import annotations

import colorsys
import json
import math
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from browser import chromium, screenshot

pytestmark = pytest.mark.slow

CORPUS = ("the cat sat on the mat.\nthe dog sat on the log.\n"
          "a cat and a dog met on the mat and sat.\n") * 30
SPEC = {"name": "playground", "seed": 0,
        "dataset": {"type": "text", "path": "corpus.txt"},
        "model": {"embedding": {"type": "learned", "size": 8},
                  "cell": {"type": "gru", "hidden_size": 32}},
        "sampler": {"type": "sequential", "batch_size": 8, "num_steps": 16},
        "train": {"epochs": 100, "max_steps": 100,
                  "optimizer": {"type": "adam", "lr": 0.01}},
        "generate": {"prompts": ["the "], "max_new_tokens": 5}}
BOUND = 20.0   # seconds: server start-up, and one generation in the page


@pytest.fixture
def browser(monkeypatch):
    yield from chromium(monkeypatch, BOUND)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = BOUND) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=BOUND) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def server(session, tmp_path):
    """`seqgen serve` of a tiny run, on a free local port; yields its base URL."""
    (tmp_path / "corpus.txt").write_text(CORPUS)
    session.run(SPEC, out=tmp_path / "run")
    port = free_port()
    log = open(tmp_path / "serve.log", "w+b")
    proc = subprocess.Popen([sys.executable, "-m", "seqgen", "serve", str(tmp_path / "run"),
                             "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        log.flush()
        log.seek(0)
        return log.read().decode(errors="replace")

    try:
        deadline = time.monotonic() + BOUND
        while True:                                  # bounded poll: up, exited, or too slow
            if proc.poll() is not None:
                pytest.fail(f"seqgen serve exited with {proc.returncode}:\n{output()}")
            try:
                if get(base + "/health", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"seqgen serve did not answer /health in {BOUND} s:\n{output()}")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# Wraps fetch so the test can replay the page's exact request body without streaming.
RECORD_REQUESTS = """
window.__requests = [];
const original = window.fetch;
window.fetch = function (url, init) {
  if (init && init.body) window.__requests.push({url: String(url), body: JSON.parse(init.body)});
  return original.apply(this, arguments);
};"""

SPANS = """
const out = document.getElementById("output");
return {
  text: out.textContent,
  loose: Array.from(out.childNodes).filter(n => !(n.nodeType === 1 && n.tagName === "SPAN"
                                                  && n.classList.contains("tok")))
                                   .map(n => n.nodeName),
  spans: Array.from(out.querySelectorAll("span.tok")).map(s => ({
    text: s.textContent, p: s.dataset.p, colour: getComputedStyle(s).backgroundColor,
    title: s.title})),
};"""


def expected_rgb(p: float) -> tuple[int, int, int]:
    """The page's colour formula: hsl(120 * p, 75%, 80%)."""
    r, g, b = colorsys.hls_to_rgb(120 * min(1.0, max(0.0, p)) / 360, 0.80, 0.75)
    return round(r * 255), round(g * 255), round(b * 255)


def rgb(css: str) -> tuple[int, ...]:
    match = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", css)
    assert match, css
    return tuple(int(x) for x in match.groups())


def wait_for_status(driver, statuses=("done",)):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    status = WebDriverWait(driver, BOUND).until(
        lambda d: d.find_element(By.ID, "status").text in (*statuses, "error")
        and d.find_element(By.ID, "status").text)
    return status


def test_the_playground_streams_greedy_text_coloured_by_probability(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    assert get(server + "/")[0] == 200
    browser.get(server + "/")
    browser.execute_script(RECORD_REQUESTS)
    find = browser.find_element
    find(By.ID, "prompt").send_keys("the c")
    Select(find(By.ID, "strategy")).select_by_value("greedy")
    assert not find(By.ID, "temperature").is_displayed()       # greedy has no knobs
    for field, value in (("max-tokens", "60"), ("seed", "7")):
        find(By.ID, field).clear()
        find(By.ID, field).send_keys(value)
    find(By.ID, "generate").click()
    status = wait_for_status(browser)
    assert status == "done", find(By.ID, "error").text
    assert find(By.ID, "error").text == ""

    (request,) = browser.execute_script("return window.__requests")
    body = request["body"]
    assert request["url"].endswith("v1/completions")
    assert body == {"prompt": "the c", "max_tokens": 60, "seed": 7,
                    "strategy": {"type": "greedy"}, "stream": True, "logprobs": 1}
    code, api = post(server + "/v1/completions", {**body, "stream": False})
    assert code == 200, api
    (choice,) = api["choices"]
    page = browser.execute_script(SPANS)

    assert page["text"] == choice["text"] and page["text"]    # streamed == non-streamed
    assert page["loose"] == []                                 # every character is in a .tok
    assert "".join(s["text"] for s in page["spans"]) == page["text"]
    api_tokens = [(t, lp) for t, lp in zip(choice["logprobs"]["tokens"],
                                            choice["logprobs"]["token_logprobs"]) if t]
    assert [s["text"] for s in page["spans"]] == [t for t, _ in api_tokens]
    for span, (_, logprob) in zip(page["spans"], api_tokens):
        p = float(span["p"])
        assert p == pytest.approx(math.exp(logprob), abs=1e-4)
        got, want = rgb(span["colour"]), expected_rgb(p)
        assert all(abs(a - b) <= 1 for a, b in zip(got, want)), (span, want)
        assert span["title"].startswith(f"p = {p:.4f}")

    screenshot(browser, "playground.png")

    # A request the server refuses: its error message is shown in #error.
    Select(find(By.ID, "strategy")).select_by_value("top-k")
    find(By.ID, "k").clear()
    find(By.ID, "k").send_keys("0")
    find(By.ID, "generate").click()
    assert wait_for_status(browser, statuses=()) == "error"
    refused = browser.execute_script("return window.__requests")[-1]["body"]
    assert refused["strategy"] == {"type": "top-k", "k": 0, "temperature": 0.8}
    code, api = post(server + "/v1/completions", {**refused, "stream": False})
    assert 400 <= code < 500 and api["error"]["message"]
    assert find(By.ID, "error").is_displayed()
    assert find(By.ID, "error").text == api["error"]["message"].strip()
