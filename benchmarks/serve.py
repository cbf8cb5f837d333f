"""Serving benchmark: 64 concurrent streaming clients vs the same 64 requests one at a time.

    python benchmarks/serve.py                       # torch's default threads
    python benchmarks/serve.py --threads 1 --server-cpu 1   # server on core 1, clients on
                                                            # the others (stable)
    python benchmarks/serve.py --max-tokens 1000     # longer completions

A real `seqgen serve` app (uvicorn, in a child process, on a socket bound here to a free
127.0.0.1 port) serves a random-weight 2-layer LSTM (hidden 512, one-hot input, the 65
characters of Tiny Shakespeare) written as a checkpoint. Each request streams
(`stream: true`) `--max-tokens` characters sampled at temperature 0.8 with its own seed.
The same 64 requests are sent one after another (each waits for the last), then all at
once from an httpx async client; the texts must be identical for the same seeds. Prints
one JSON object: tokens/s of both, the ratio (target >= 10; the median of --rounds
alternated pairs, each listed) and the largest batch the engine stepped. All traffic goes to 127.0.0.1; everything is bounded by --timeout.

It also reports the model's own ceiling, measured in this process with the server's
thread count before the server starts: 64 x (one step of 1 row) / (one step of 64 rows),
the most batching could gain if HTTP, sampling and streaming cost nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402

import seqgen  # noqa: E402
from seqgen import checkpoint as ckpt  # noqa: E402

CHARS = "\n !$&',-.3:;?" + "".join(map(chr, range(65, 91))) + "".join(map(chr, range(97, 123)))
PROMPTS = ["ROMEO:\n", "First Citizen:\n", "KING RICHARD", "O, ", "What say you"]

SERVER = """
import os, sys, torch, uvicorn
from seqgen.serve import create_app
from seqgen.serve.command import SWITCH_INTERVAL
sys.setswitchinterval(SWITCH_INTERVAL)      # as `seqgen serve` does
if int(sys.argv[3]):
    torch.set_num_threads(int(sys.argv[3]))
if sys.argv[5]:                               # --server-cpu: the server's own core
    os.sched_setaffinity(0, {int(sys.argv[5])})
uvicorn.run(create_app(sys.argv[1], max_tokens=100000, stream_interval=float(sys.argv[4])),
            fd=int(sys.argv[2]),
            log_level="warning", access_log=False)
"""


def write_model(path: Path, cell: str, hidden: int, layers: int) -> str:
    session = seqgen.Session(entry_points=False)
    spec = session.resolve({"name": "serve-bench", "dataset": {"type": "synthetic"},
                            "model": {"cell": {"type": cell, "hidden_size": hidden,
                                               "num_layers": layers}}})
    vocab = seqgen.Vocab.from_text(CHARS)
    torch.manual_seed(0)
    model = session.build_model(spec, len(vocab))
    ckpt.save(path, ckpt.Checkpoint(spec=spec, vocab=vocab, task="lm", tensors={
        "model." + k: v for k, v in model.state_dict().items()}))
    return str(path)


async def one(client: httpx.AsyncClient, body: dict) -> tuple[str, int]:
    """Stream one completion -> (text, completion tokens from the usage chunk)."""
    text, used = [], 0
    async with client.stream("POST", "/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                text += [c["text"] for c in chunk["choices"]]
                used = (chunk.get("usage") or {}).get("completion_tokens", used)
    return "".join(text), used


async def measure(url: str, bodies: list[dict], concurrent: bool) -> dict:
    limits = httpx.Limits(max_connections=len(bodies) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await one(client, {**bodies[0], "max_tokens": 8})              # warm up
        start = time.perf_counter()
        if concurrent:
            results = await asyncio.gather(*(one(client, b) for b in bodies))
        else:
            results = [await one(client, b) for b in bodies]
        seconds = time.perf_counter() - start
        health = (await client.get("/health")).json()
    tokens = sum(used for _, used in results)
    return {"seconds": round(seconds, 3), "tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 1),
            "largest_batch": health["largest_batch"], "texts": [t for t, _ in results]}


def step_ceiling(path: str, threads: int) -> dict:
    """Model steps alone: ms per step at 1 and 64 rows, and 64 * t1 / t64."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model = seqgen.Session(entry_points=False).load(path).model
        times = {}
        with torch.inference_mode():
            for rows in (1, 64):
                step = model.stepper(model.initial_state(rows))
                token = torch.zeros(rows, dtype=torch.long)
                for _ in range(20):
                    step(token)
                best = float("inf")
                for _ in range(3):
                    start = time.perf_counter()
                    for _ in range(100):
                        step(token)
                    best = min(best, (time.perf_counter() - start) / 100)
                times[rows] = best
    finally:
        torch.set_num_threads(before)
    return {"step_ms_1_row": round(times[1] * 1e3, 3), "step_ms_64_rows": round(times[64] * 1e3, 3),
            "ratio": round(64 * times[1] / times[64], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the server "
                        "(0: torch's default)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--stream-interval", type=float, default=0.02,
                        help="the server's least seconds between two chunks of a stream")
    parser.add_argument("--rounds", type=int, default=3,
                        help="sequential/concurrent pairs; the median speedup is reported")
    parser.add_argument("--server-cpu", type=int, default=None,
                        help="pin the server to this core, and the clients to the others")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (s)")
    args = parser.parse_args()
    if args.server_cpu is not None:       # the load generator must not share the server's core
        others = os.sched_getaffinity(0) - {args.server_cpu}
        if not others:
            raise SystemExit("--server-cpu needs another core for the clients")
        os.sched_setaffinity(0, others)
    bodies = [{"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": args.max_tokens, "seed": i,
               "temperature": 0.8, "stream": True, "stream_options": {"include_usage": True}}
              for i in range(args.requests)]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_model(Path(tmp) / "model.safetensors", args.cell, args.hidden, args.layers)
        ceiling = step_ceiling(path, args.threads)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        child = subprocess.Popen([sys.executable, "-c", SERVER, path, str(sock.fileno()),
                                  str(args.threads), str(args.stream_interval),
                                  "" if args.server_cpu is None else str(args.server_cpu)],
                                 pass_fds=(sock.fileno(),),
                                 env={**os.environ, "SEQGEN_PLUGINS": ""})
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(url + "/health", timeout=2).raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise SystemExit("the server did not start")
                    time.sleep(0.2)

            async def rounds():                  # alternated: drifting load hits both
                pairs = []
                for _ in range(args.rounds):
                    pairs.append((await measure(url, bodies, concurrent=False),
                                  await measure(url, bodies, concurrent=True)))
                return pairs

            pairs = asyncio.run(asyncio.wait_for(rounds(), args.timeout))
        finally:
            child.terminate()
            child.wait(10)
            sock.close()
    alone = pairs[0][0]["texts"]
    differ = [next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
              for _, c in pairs for a, b in zip(alone, c["texts"]) if a != b]  # where they fork
    identical = not differ and all(s["texts"] == alone for s, _ in pairs)
    speedups = [c["tokens_per_s"] / s["tokens_per_s"] for s, c in pairs]
    middle = sorted(range(len(pairs)), key=lambda i: speedups[i])[len(pairs) // 2]
    sequential, concurrent = pairs[middle]           # the round with the median speedup
    for part in (sequential, concurrent):
        part.pop("texts")
    sequential.pop("largest_batch")
    emit({"benchmark": "serve", "model": {"cell": args.cell, "hidden": args.hidden,
                                          "layers": args.layers, "vocab": len(CHARS)},
          "server_threads": args.threads or "default", "server_cpu": args.server_cpu,
          "requests": args.requests,
          "max_tokens": args.max_tokens, "sequential": sequential, "concurrent": concurrent,
          "rounds": args.rounds, "speedup": round(statistics.median(speedups), 1),
          "speedups": [round(x, 1) for x in speedups],
          "target": 10, "model_step_ceiling": ceiling, "identical_texts": identical,
          "differing_texts": len(differ), "first_differences_at": sorted(differ)[:8]})
    if not identical:
        raise SystemExit("texts differ between sequential and concurrent serving")


if __name__ == "__main__":
    main()
