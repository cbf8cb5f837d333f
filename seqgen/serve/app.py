"""The Starlette app: routes, request binding, and turning results into responses.

    POST /v1/completions    OpenAI completions (stream, logprobs, n, stop, seed) + "strategy"
    POST /v1/score          {"text"} -> per-token log-probs, mean loss, perplexity
    GET  /v1/models         the one model, OpenAI list shape (id = the run's name)
    GET  /health            {"status": "ok", "active_rows", "waiting", ...}
    GET  /                  the playground page (seqgen/serve/playground.html)

Every refusal is a 4xx OpenAI error naming the field; anything unexpected is a 500 JSON
error without a traceback.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from seqgen import GenerationError, LoadedModel, SeqgenError, Session
from seqgen.data import CAUSAL_TASKS
from seqgen.generate import start_token

from . import direct, shapes
from .engine import Engine, Job
from .errors import RequestError, error_body
from .limits import Limits
from .requests import Completion, parse_completion, parse_json, parse_score
from .rows import Piece
from .sse import DONE, EventStream, event

PLAYGROUND = Path(__file__).with_name("playground.html")
log = logging.getLogger("seqgen.serve")


class Pacing:
    """How often a stream may send a chunk. Framing and sending a chunk costs the event
    loop about as much as generating a few tokens, so the more streams are open, the
    longer each waits between chunks: max(interval, per_stream * open streams), e.g. 20 ms
    for one stream and 64 ms for 64. The first chunk and the last go at once."""

    PER_STREAM = 0.001

    def __init__(self, interval: float):
        self.base, self.open = interval, 0

    def interval(self) -> float:
        return max(self.base, self.PER_STREAM * self.open) if self.base else 0.0


class Server:
    """One loaded model, its limits and its batching engine; the routes' shared state."""

    def __init__(self, loaded: LoadedModel, limits: Limits, stream_interval: float = 0.02):
        if loaded.generator.task == "seq2seq":
            raise GenerationError(
                f"{loaded.path}: seqgen serve serves language models (completions of a "
                f"prompt); this is an encoder-decoder model: translate with seqgen generate "
                f"{loaded.path} --source TEXT, or LoadedModel.translate in Python")
        self.loaded, self.limits, self.stream_interval = loaded, limits, stream_interval
        self.pacing = Pacing(stream_interval)
        self.engine = Engine(loaded.model, limits)
        name = loaded.spec.get("name")
        self.name = name if isinstance(name, str) and name else Path(loaded.path).parent.name
        self.created = int(Path(loaded.path).stat().st_mtime)

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.engine.start()
        try:
            yield
        finally:
            await run_in_threadpool(self.engine.stop)

    # -- routes -------------------------------------------------------------------------------
    async def completions(self, request: Request):
        req = parse_completion(await read_json(request, self.limits), self.limits)
        if req.model is not None and req.model != self.name:
            raise RequestError(f"no model {req.model!r}: this server serves {self.name!r} "
                               f"(GET /v1/models)", "model", 404, "model_not_found")
        strategy, prompt_ids = self.bind(req)
        ident, created = shapes.completion_id(), shapes.now()
        prompt_tokens = sum(int(ids.numel()) for ids in prompt_ids)
        reply = Reply(ident, created, self.name, req, prompt_tokens, self.pacing)
        if req.max_tokens == 0:
            pieces = [Piece(i, finish_reason="length")
                      for i in range(len(req.prompts) * req.n)]
            return reply.whole(pieces) if not req.stream else EventStream(reply.once(pieces))
        if strategy.search is not None or self.loaded.generator.task not in CAUSAL_TASKS:
            try:
                pieces, _ = await run_in_threadpool(direct.searched, self.loaded, req,
                                                    strategy, prompt_ids)
            except SeqgenError as e:
                raise RequestError(str(e), "n" if "num_samples" in str(e) else "strategy",
                                   code="invalid_strategy") from None
            return reply.whole(pieces) if not req.stream else EventStream(reply.once(pieces))
        job = Job(req, strategy, prompt_ids, self.loaded.vocab, self.loaded.generator.task,
                  asyncio.get_running_loop())
        self.engine.submit(job)
        if req.stream:
            return EventStream(reply.stream(job))
        watcher = asyncio.create_task(cancel_on_disconnect(request, job))
        try:
            return reply.whole(await collect(job))
        finally:
            watcher.cancel()

    async def score(self, request: Request):
        text = parse_score(await read_json(request, self.limits), self.limits)
        try:
            ids = self.loaded.vocab.encode(text)
        except GenerationError as e:
            raise RequestError(f"text: {e}", "text", code="unknown_characters") from None
        if ids.numel() < 2:
            raise RequestError("'text' must hold at least two tokens (the first is context "
                               "only)", "text", code="invalid_value")
        result = await run_in_threadpool(direct.score, self.loaded, ids)
        n = len(result["tokens"])
        return JSONResponse({"object": "score", "model": self.name, **result,
                             "usage": {"prompt_tokens": n, "total_tokens": n}})

    async def models(self, request: Request):
        return JSONResponse(shapes.models(self.name, self.created))

    async def model(self, request: Request):
        if request.path_params["model"] != self.name:
            raise RequestError(f"no model {request.path_params['model']!r}: this server "
                               f"serves {self.name!r}", "model", 404, "model_not_found")
        return JSONResponse(shapes.model(self.name, self.created))

    async def health(self, request: Request):
        e = self.engine
        return JSONResponse({"status": "ok", "model": self.name, "active_rows": e.active_rows,
                             "waiting": e.waiting_count, "steps": e.steps,
                             "largest_batch": e.largest_batch})

    async def playground(self, request: Request):
        if not PLAYGROUND.is_file():
            raise RequestError("the playground page is not installed", None, 404, "not_found")
        return FileResponse(PLAYGROUND, media_type="text/html")

    # -- helpers ------------------------------------------------------------------------------
    def bind(self, req: Completion):
        """The request's Strategy and prompt ids, or a 400 naming the field at fault."""
        try:
            strategy = self.loaded.strategy(req.strategy)
        except SeqgenError as e:
            raise RequestError(str(e), req.strategy_param, code="invalid_strategy") from None
        vocab, prompt_ids = self.loaded.vocab, []
        for i, prompt in enumerate(req.prompts):
            try:
                prompt_ids.append(vocab.encode(prompt).long())
                if not prompt:
                    start_token(vocab)
            except GenerationError as e:
                where = f"prompt {i}" if len(req.prompts) > 1 else "prompt"
                raise RequestError(f"{where}: {e}", "prompt",
                                   code="unknown_characters") from None
        return strategy, prompt_ids


class Reply:
    """Builds one request's responses: whole JSON, or server-sent chunks."""

    def __init__(self, ident: str, created: int, model: str, req: Completion,
                 prompt_tokens: int, pacing: Pacing | None = None):
        self.ident, self.created, self.model, self.req = ident, created, model, req
        self.prompt_tokens, self.pacing = prompt_tokens, pacing or Pacing(0.0)

    def whole(self, pieces: list[Piece]) -> JSONResponse:
        pieces = sorted(pieces, key=lambda p: p.index)
        used = sum(p.completion_tokens for p in pieces)
        choices = [shapes.choice(p, self.req.logprobs is not None) for p in pieces]
        return JSONResponse(shapes.completion(self.ident, self.created, self.model, choices,
                                              shapes.usage(self.prompt_tokens, used)))

    def chunk(self, piece: Piece) -> str:
        return event(shapes.completion(self.ident, self.created, self.model,
                                       [shapes.choice(piece, self.req.logprobs is not None)],
                                       None))

    def ending(self, used: int) -> str:
        tail = ""
        if self.req.include_usage:
            tail = event({**shapes.completion(self.ident, self.created, self.model, [], None),
                          "usage": shapes.usage(self.prompt_tokens, used)})
        return tail + DONE

    async def once(self, pieces: list[Piece]):
        yield "".join(self.chunk(p) for p in pieces) + self.ending(
            sum(p.completion_tokens for p in pieces))

    async def stream(self, job: Job):
        """Chunks as the engine makes them, pieces waiting together merged per choice. The
        first and last chunks go at once; the others as `Pacing` allows, so a busy server
        sends fewer, longer chunks instead of spending its time on framing."""
        used, last, loop = 0, float("-inf"), asyncio.get_running_loop()
        self.pacing.open += 1
        try:
            while True:
                items = [await job.outbox.get()]
                wait = last + self.pacing.interval() - loop.time()
                if wait > 0 and not job.ended.is_set():   # the last chunk goes at once
                    try:
                        await asyncio.wait_for(job.ended.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                while not job.outbox.empty():
                    items.append(job.outbox.get_nowait())
                merged: dict[int, Piece] = {}
                ended, error = False, None
                for item in items:
                    if item is None or isinstance(item, Exception):
                        ended, error = True, item
                        break
                    used += item.completion_tokens
                    if item.index in merged:
                        merged[item.index].merge(item)
                    else:
                        merged[item.index] = item
                frames = "".join(self.chunk(p) for p in merged.values())
                if not ended:
                    yield frames
                    last = loop.time()
                    continue
                yield frames + (self.ending(used) if error is None
                                else event(failure_body(error)) + DONE)
                return
        finally:
            self.pacing.open -= 1
            job.cancel()


async def cancel_on_disconnect(request: Request, job: Job) -> None:
    """A client that hangs up while its (unstreamed) completion is generated frees its
    rows at once. The body is read by now, so the next message is the disconnect."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel()
            return


async def collect(job: Job) -> list[Piece]:
    """Every piece of a job, merged per choice (for a response that is not streamed)."""
    merged: dict[int, Piece] = {}
    try:
        while True:
            item = await job.outbox.get()
            if item is None:
                return list(merged.values())
            if isinstance(item, RequestError):
                raise item
            if isinstance(item, Exception):
                raise Failure(item)
            if item.index in merged:
                merged[item.index].merge(item)
            else:
                merged[item.index] = item
    finally:
        job.cancel()


class Failure(Exception):
    """An unexpected error inside the engine, answered with a 500."""


def failure_body(error: Exception) -> dict:
    if isinstance(error, RequestError):
        return error.body()
    log.error("generation failed", exc_info=error)
    return error_body("the server failed to generate this completion (see its log)", 500)


async def read_json(request: Request, limits: Limits):
    """The body as JSON, at most limits.max_body_bytes (413 beyond)."""
    too_big = RequestError(f"the request body exceeds {limits.max_body_bytes} bytes", None,
                           413, "body_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_body_bytes:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise too_big
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


async def _request_error(request, exc: RequestError):
    return exc.response()


async def _http_error(request, exc: HTTPException):
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed "
               f"on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return JSONResponse(error_body(message, exc.status_code), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _server_error(request, exc: Exception):
    if isinstance(exc, Failure):
        return JSONResponse(failure_body(exc.args[0]), status_code=500)
    log.error("unexpected error", exc_info=exc)
    return JSONResponse(error_body("internal server error (see the server's log)", 500),
                        status_code=500)


def create_app(model_or_run_dir, *, session: Session | None = None,
               stream_interval: float = 0.02, **limits) -> Starlette:
    """The Starlette app serving a LoadedModel, or the checkpoint / run directory given.

    stream_interval: least seconds between two chunks of one stream (0: every step).
    limits: the fields of `Limits` (max_tokens, max_n, max_prompt_chars, max_body_bytes,
    max_active_rows, max_waiting). Unknown names are a TypeError."""
    unknown = sorted(set(limits) - set(Limits.names()))
    if unknown:
        raise TypeError(f"unknown limit(s) {', '.join(unknown)}; known: "
                        f"{', '.join(Limits.names())}")
    loaded = (model_or_run_dir if isinstance(model_or_run_dir, LoadedModel)
              else (session or Session()).load(model_or_run_dir))
    server = Server(loaded, Limits(**limits), stream_interval)
    routes = [Route("/", server.playground, methods=["GET"]),
              Route("/v1/completions", server.completions, methods=["POST"]),
              Route("/v1/score", server.score, methods=["POST"]),
              Route("/v1/models", server.models, methods=["GET"]),
              Route("/v1/models/{model:path}", server.model, methods=["GET"]),
              Route("/health", server.health, methods=["GET"])]
    app = Starlette(routes=routes, lifespan=server.lifespan,
                    exception_handlers={RequestError: _request_error,
                                        HTTPException: _http_error,
                                        Exception: _server_error})
    app.state.server = server
    return app
